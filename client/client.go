package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
)

// maxResponseBytes bounds how much of a response body the client reads.
const maxResponseBytes = 64 << 20

// Client calls the Sightline REST API. It is safe for concurrent use.
type Client struct {
	base  string // scheme://host[/prefix], no trailing slash
	hc    *http.Client
	ua    string
	auth  string // "Bearer <key>", or ""
	retry RetryPolicy
}

// Error is a non-2xx answer from the server, decoded from its RFC 9457
// application/problem+json body (or synthesized from the status line when
// the body is not a problem).
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Type is the problem type URI, e.g.
	// "https://sightline.dev/problems/invalid-request".
	Type string
	// Title is the short summary of the problem type.
	Title string
	// Detail says what went wrong with this request and what to fix.
	Detail string
	// RetryAfter is how long the server asked the client to wait before
	// trying again (its Retry-After header), zero when it did not say.
	RetryAfter time.Duration
	// Attempts is how many times the request was sent (more than one when
	// the Client retried it; see [WithRetry]).
	Attempts int
}

// Error returns the status, title and detail of the problem.
func (e *Error) Error() string {
	title := e.Title
	if title == "" {
		title = http.StatusText(e.Status)
	}
	if e.Detail == "" {
		return fmt.Sprintf("sightline: %d %s", e.Status, title)
	}
	return fmt.Sprintf("sightline: %d %s: %s", e.Status, title, e.Detail)
}

// Temporary reports whether retrying the same request later may succeed
// (429 and 5xx answers).
func (e *Error) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// New returns a Client for the server at baseURL, such as
// "http://localhost:8080". baseURL must be an absolute http or https URL.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: parse base url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: base url %q: want an absolute http or https URL", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""

	o := options{userAgent: "sightline-go-client"}
	for _, opt := range opts {
		if opt != nil {
			opt.apply(&o)
		}
	}
	hc := o.httpClient
	if hc == nil {
		hc = &http.Client{Transport: defaultTransport()}
	}
	if o.tp != nil {
		cp := *hc
		base := cp.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		cp.Transport = otelhttp.NewTransport(base,
			otelhttp.WithTracerProvider(o.tp),
			otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator(
				propagation.TraceContext{}, propagation.Baggage{})),
		)
		hc = &cp
	}
	c := &Client{base: u.String(), hc: hc, ua: o.userAgent, retry: o.retry.withDefaults()}
	if o.apiKey != "" {
		c.auth = "Bearer " + o.apiKey
	}
	return c, nil
}

// defaultTransport is tuned for a high request rate to one host: many idle
// keep-alive connections so bursts don't pay for new handshakes.
func defaultTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// CloseIdleConnections closes the idle keep-alive connections of the
// underlying transport.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Recommend asks for recommendations for req.UserID.
func (c *Client) Recommend(ctx context.Context, req RecommendRequest) (*Recommendation, error) {
	var out Recommendation
	if err := c.do(ctx, http.MethodPost, "/v1/recommendations", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SendEvents posts a batch of at most 1000 events. Invalid events are listed
// in EventsResult.Rejected while the valid ones are accepted. An error means
// the batch was not accepted as a whole: send it again. Some of its events
// may already be durable (a 503 when the Kafka brokers acknowledged only part
// of it); the node remembers event ids, so a retry learns each event once.
func (c *Client) SendEvents(ctx context.Context, evs []Event) (*EventsResult, error) {
	if evs == nil {
		evs = []Event{}
	}
	var out EventsResult
	if err := c.do(ctx, http.MethodPost, "/v1/events", evs, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PutUser creates or replaces the profile of u.UserID.
func (c *Client) PutUser(ctx context.Context, u User) error {
	if u.UserID == "" {
		return errors.New("client: put user: empty user id")
	}
	return c.do(ctx, http.MethodPut, "/v1/users/"+url.PathEscape(u.UserID), u, nil)
}

// PutItem creates or replaces the catalog item it.ItemID.
func (c *Client) PutItem(ctx context.Context, it Item) error {
	if it.ItemID == "" {
		return errors.New("client: put item: empty item id")
	}
	return c.do(ctx, http.MethodPut, "/v1/items/"+url.PathEscape(it.ItemID), it, nil)
}

// User returns what the server's feature store holds of the user id: the
// profile and the recent activity. A user the store knows nothing of (never
// stored, or erased) is an [*Error] with Status 404.
func (c *Client) User(ctx context.Context, id string) (*UserProfile, error) {
	if id == "" {
		return nil, errors.New("client: user: empty user id")
	}
	var out UserProfile
	if err := c.do(ctx, http.MethodGet, "/v1/users/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// EraseUser erases the user id (a right-to-erasure request): the profile and
// recent activity from the feature store and the user's recent decisions,
// on every node of a cluster. It is idempotent: erasing a user the server
// knows nothing of succeeds and reports nothing erased. docs/security.md
// says what is erased and what remains.
func (c *Client) EraseUser(ctx context.Context, id string) (*Erasure, error) {
	if id == "" {
		return nil, errors.New("client: erase user: empty user id")
	}
	var out Erasure
	if err := c.do(ctx, http.MethodDelete, "/v1/users/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ImportUsers streams r, NDJSON with one [User] per line, to the server.
func (c *Client) ImportUsers(ctx context.Context, r io.Reader) (*ImportResult, error) {
	return c.importNDJSON(ctx, "/v1/users:import", r)
}

// ImportItems streams r, NDJSON with one [Item] per line, to the server.
func (c *Client) ImportItems(ctx context.Context, r io.Reader) (*ImportResult, error) {
	return c.importNDJSON(ctx, "/v1/items:import", r)
}

func (c *Client) importNDJSON(ctx context.Context, path string, r io.Reader) (*ImportResult, error) {
	var out ImportResult
	if err := c.send(ctx, http.MethodPost, path, "application/x-ndjson", r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Decision returns the decision record of a recent request as raw JSON. The
// server keeps only recent decisions; an older one is an [*Error] with
// Status 404.
func (c *Client) Decision(ctx context.Context, requestID string) (json.RawMessage, error) {
	if requestID == "" {
		return nil, errors.New("client: decision: empty request id")
	}
	var out json.RawMessage
	if err := c.do(ctx, http.MethodGet, "/v1/decisions/"+url.PathEscape(requestID), nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Stats returns the server's rolling summary.
func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	var out Stats
	if err := c.do(ctx, http.MethodGet, "/v1/stats", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Health returns nil when the server answers its liveness check.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/healthz", nil, nil)
}

// do sends in (when non-nil) as JSON and decodes a 2xx answer into out (when
// non-nil).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	ctype := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("client: encode request: %w", err)
		}
		body, ctype = bytes.NewReader(b), "application/json"
	}
	return c.send(ctx, method, path, ctype, body, out)
}

// send sends the request, again while the answer is a 429 or a 503 and the
// retry policy, the context and the body allow, and decodes the last
// answer.
func (c *Client) send(ctx context.Context, method, path, ctype string, body io.Reader, out any) error {
	attempts := c.retry.MaxAttempts
	var rewind func() error
	if body != nil {
		if sk, ok := body.(io.Seeker); ok {
			start, err := sk.Seek(0, io.SeekCurrent)
			rewind = func() error { _, err := sk.Seek(start, io.SeekStart); return err }
			if err != nil {
				attempts = 1
			}
		} else {
			attempts = 1
		}
	}
	for attempt := 1; ; attempt++ {
		err := c.sendOnce(ctx, method, path, ctype, body, out)
		e, ok := errors.AsType[*Error](err)
		if !ok {
			return err
		}
		e.Attempts = attempt
		if !retryable(e) || attempt >= attempts {
			return err
		}
		wait, ok := c.backoff(attempt, e.RetryAfter)
		if !ok {
			return err
		}
		if dl, has := ctx.Deadline(); has && time.Until(dl) < wait {
			return err // the wait would outlast the caller's deadline
		}
		if rewind != nil {
			if rerr := rewind(); rerr != nil {
				return err
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// retryable reports whether e says the request may succeed later: a 429
// (the node refused it before doing any work), or a 503 that says when to
// come back (a node's 503s do; one without Retry-After, such as a proxy's
// with no upstream, is not taken for a transient state).
func retryable(e *Error) bool {
	return e.Status == http.StatusTooManyRequests || (e.Status == http.StatusServiceUnavailable && e.RetryAfter > 0)
}

// backoff returns the wait before retry number attempt: what retryAfter
// says plus up to half as much again, or full jitter over the doubling
// backoff; false when the server asks for longer than MaxDelay.
func (c *Client) backoff(attempt int, retryAfter time.Duration) (time.Duration, bool) {
	p := c.retry
	if retryAfter > 0 {
		if retryAfter > p.MaxDelay {
			return 0, false
		}
		return min(retryAfter+rand.N(retryAfter/2+1), p.MaxDelay), true //nolint:gosec // jitter spreads retries; it guards nothing
	}
	d := p.BaseDelay << min(attempt-1, 20)
	if d <= 0 || d > p.MaxDelay {
		d = p.MaxDelay
	}
	return rand.N(d + 1), true //nolint:gosec // jitter spreads retries; it guards nothing
}

func (c *Client) sendOnce(ctx context.Context, method, path, ctype string, body io.Reader, out any) error {
	// path is already escaped (ids go through url.PathEscape).
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, routeOf(path), err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	if c.ua != "" {
		req.Header.Set("User-Agent", c.ua)
	}
	if c.auth != "" {
		req.Header["Authorization"] = []string{c.auth}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// *url.Error repeats the URL, which may hold a user id.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return fmt.Errorf("client: %s %s: %w", method, routeOf(path), err)
	}
	defer func() {
		// Drain a little so the connection can be reused.
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		_ = resp.Body.Close() // a read body: nothing to report
	}()
	lr := io.LimitReader(resp.Body, maxResponseBytes)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := decodeError(resp.StatusCode, lr)
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(lr).Decode(out); err != nil {
		return fmt.Errorf("client: decode %s %s response: %w", method, routeOf(path), err)
	}
	return nil
}

// routeOf strips ids from path so that errors don't carry user ids.
func routeOf(path string) string {
	for _, p := range []string{"/v1/users/", "/v1/items/", "/v1/decisions/"} {
		if strings.HasPrefix(path, p) {
			return p + "{id}"
		}
	}
	return path
}

// parseRetryAfter reads a Retry-After header: a whole number of seconds
// or an HTTP date; zero when absent or invalid.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func decodeError(status int, r io.Reader) *Error {
	e := &Error{Status: status}
	b, _ := io.ReadAll(io.LimitReader(r, 1<<20))
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(b, &p) == nil && (p.Title != "" || p.Detail != "" || p.Type != "") {
		e.Type, e.Title, e.Detail = p.Type, p.Title, p.Detail
	} else {
		e.Title = http.StatusText(status)
		if s := strings.TrimSpace(string(b)); s != "" && len(s) <= 512 {
			e.Detail = s
		}
	}
	return e
}
