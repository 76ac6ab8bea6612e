package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/sightline/sightline/internal/sim"
)

// StatusError is the error of a request answered outside 2xx. It matches
// [ErrStatus] with errors.Is.
type StatusError struct {
	// Code is the HTTP status code.
	Code int
	// RetryAfter is the answer's Retry-After header, if any.
	RetryAfter string
}

func (e *StatusError) Error() string { return "http status " + strconv.Itoa(e.Code) }

// Is reports whether target is [ErrStatus].
func (e *StatusError) Is(target error) bool { return target == ErrStatus }

// HTTPConfig configures [NewHTTP]. The zero value means the defaults.
type HTTPConfig struct {
	// Client sends the requests (default: a keep-alive client whose
	// transport keeps MaxConns idle connections to the host).
	Client *http.Client
	// MaxConns is the idle connections the default client keeps (default
	// 1024); match it to Config.MaxInFlight so connections are reused.
	MaxConns int
	// Body appends the body of request seq to dst and returns it. Nil sends
	// GET requests without a body; otherwise the method is POST.
	Body func(dst []byte, seq uint64) []byte
	// ContentType is the body's media type (default application/json).
	ContentType string
	// Header is sent with every request, such as an Authorization header
	// with an API key.
	Header http.Header
}

// HTTP is a [Target] that sends one HTTP request per arrival to a fixed URL
// and reads the whole answer. It is safe for concurrent use.
type HTTP struct {
	url   string
	cfg   HTTPConfig
	hc    *http.Client
	owned *http.Transport
}

var _ Target = (*HTTP)(nil)

// NewHTTP returns a target that sends to url.
func NewHTTP(url string, cfg HTTPConfig) (*HTTP, error) {
	if url == "" {
		return nil, fmt.Errorf("%w: empty url", ErrInvalidConfig)
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 1024
	}
	if cfg.ContentType == "" {
		cfg.ContentType = "application/json"
	}
	h := &HTTP{url: url, cfg: cfg, hc: cfg.Client}
	if h.hc == nil {
		h.owned = &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        cfg.MaxConns,
			MaxIdleConnsPerHost: cfg.MaxConns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		}
		h.hc = &http.Client{Transport: h.owned}
	}
	return h, nil
}

// Send sends request seq and reads the answer; a status outside 2xx is a
// [*StatusError].
func (h *HTTP) Send(ctx context.Context, seq uint64) error {
	method := http.MethodGet
	var body io.Reader
	if h.cfg.Body != nil {
		method = http.MethodPost
		body = bytes.NewReader(h.cfg.Body(make([]byte, 0, 512), seq))
	}
	req, err := http.NewRequestWithContext(ctx, method, h.url, body)
	if err != nil {
		return err
	}
	for k, vs := range h.cfg.Header {
		req.Header[k] = vs
	}
	if body != nil {
		req.Header.Set("Content-Type", h.cfg.ContentType)
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &StatusError{Code: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After")}
	}
	return err
}

// Close closes the idle connections of the target's own client.
func (h *HTTP) Close() {
	if h.owned != nil {
		h.owned.CloseIdleConnections()
	}
}

// mix is splitmix64's finaliser: it spreads consecutive sequence numbers
// over users and items.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// RecommendBody returns the body of POST /v1/recommendations for arrival
// seq: a user of the synthetic world ([sim.UserID]) drawn uniformly by a
// hash of seq from users users, count items, channel "web".
func RecommendBody(users, count int) func(dst []byte, seq uint64) []byte {
	users = max(users, 1)
	return func(dst []byte, seq uint64) []byte {
		dst = append(dst, `{"user_id":"`...)
		dst = append(dst, sim.UserID(int(mix(seq)%uint64(users)))...)
		dst = append(dst, `","count":`...)
		dst = strconv.AppendInt(dst, int64(count), 10)
		return append(dst, `,"context":{"channel":"web"}}`...)
	}
}

// EventsBody returns the body of POST /v1/events for arrival seq: a JSON
// array of batch events of world users and items, one click in twenty and impressions
// otherwise, with event ids unique per run (prefixed by run) so none is a
// duplicate.
func EventsBody(run string, users, items, batch int) func(dst []byte, seq uint64) []byte {
	users, items, batch = max(users, 1), max(items, 1), max(batch, 1)
	return func(dst []byte, seq uint64) []byte {
		dst = append(dst, '[')
		for k := range batch {
			n := seq*uint64(batch) + uint64(k)
			x := mix(n)
			if k > 0 {
				dst = append(dst, ',')
			}
			typ := "impression"
			if x%20 == 0 {
				typ = "click"
			}
			dst = append(dst, `{"event_id":"`...)
			dst = append(dst, run...)
			dst = append(dst, '-')
			dst = strconv.AppendUint(dst, n, 36)
			dst = append(dst, `","type":"`...)
			dst = append(dst, typ...)
			dst = append(dst, `","user_id":"`...)
			dst = append(dst, sim.UserID(int(x%uint64(users)))...)
			dst = append(dst, `","item_id":"`...)
			dst = append(dst, sim.ItemID(int((x>>32)%uint64(items)))...)
			dst = append(dst, `","channel":"web"}`...)
		}
		return append(dst, ']')
	}
}

// PaddedJSON returns a JSON object of exactly n bytes (at least 10), the
// body of the bare baseline handler.
func PaddedJSON(n int) []byte {
	const head, tail = `{"pad":"`, `"}`
	n = max(n, len(head)+len(tail))
	b := make([]byte, 0, n)
	b = append(b, head...)
	for len(b) < n-len(tail) {
		b = append(b, 'x')
	}
	return append(b, tail...)
}

// BareHandler returns the baseline of the benchmark suite: a plain
// net/http handler that reads the request body and answers 200 with body
// as application/json, whatever the route. It is what a server costs
// before it does any work.
func BareHandler(body []byte) http.Handler {
	size := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{size}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	})
}
