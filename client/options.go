package client

import (
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Option configures a [Client]. Options are created by the With* functions
// of this package; the interface is sealed so that new options can be added
// without breaking callers.
type Option interface {
	apply(*options)
}

type options struct {
	httpClient *http.Client
	userAgent  string
	tp         trace.TracerProvider
	apiKey     string
	retry      RetryPolicy
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithHTTPClient makes the Client send its requests with hc instead of a
// client with a transport tuned for a high request rate. A nil hc is ignored.
// The Client never modifies hc; with [WithTracerProvider] it uses a copy of
// hc whose transport is wrapped.
func WithHTTPClient(hc *http.Client) Option {
	return optionFunc(func(o *options) {
		if hc != nil {
			o.httpClient = hc
		}
	})
}

// WithUserAgent sets the User-Agent header sent with every request. The
// default is "sightline-go-client".
func WithUserAgent(ua string) Option {
	return optionFunc(func(o *options) { o.userAgent = ua })
}

// WithTracerProvider makes every call a client span created by tp, and
// injects the W3C traceparent (and tracestate) header into the request so the
// server's span becomes its child. A nil tp, or no such option, means no
// tracing and no propagation.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(o *options) { o.tp = tp })
}

// WithAPIKey sends key as "Authorization: Bearer <key>" with every request:
// a node started with --api-keys-file answers only requests with a key
// holding the route's scope (recommend, ingest, read or admin). The key
// appears in no error the Client returns.
func WithAPIKey(key string) Option {
	return optionFunc(func(o *options) { o.apiKey = key })
}

// RetryPolicy says how a [Client] retries a request answered 429 Too Many
// Requests (the node refused it before doing any work) or 503 Service
// Unavailable with a Retry-After (the node could not finish it and says
// when to come back; every route is safe to repeat: events carry ids,
// profiles and items are replaced whole). A 503 without Retry-After is
// returned at once. The zero value of each field means its default.
type RetryPolicy struct {
	// MaxAttempts is the most times a request is sent, the first included
	// (default 3; 1 disables retries).
	MaxAttempts int
	// BaseDelay is the backoff before the first retry of an answer without
	// Retry-After (default 100ms); it doubles for each further retry, and
	// each wait is drawn uniformly between zero and it (full jitter), so
	// clients refused together do not come back together.
	BaseDelay time.Duration
	// MaxDelay caps each wait (default 10s). An answer whose Retry-After
	// asks for longer is returned instead of waited for.
	MaxDelay time.Duration
}

// WithRetry sets how the Client retries 429 and 503 answers (see
// [RetryPolicy] for which). Without this
// option it retries with the defaults of [RetryPolicy]: up to 3 attempts,
// waiting what Retry-After says (plus up to half as much again, at
// random) or, without it, a jittered exponential backoff from 100ms. A wait that would
// outlast the context's deadline is not begun: the answer is returned at
// once. A request whose body cannot be read again (an import from a
// reader that is not an io.Seeker) is never retried.
func WithRetry(p RetryPolicy) Option {
	return optionFunc(func(o *options) { o.retry = p })
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 3
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 100 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 10 * time.Second
	}
	return p
}
