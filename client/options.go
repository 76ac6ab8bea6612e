package client

import (
	"net/http"

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
