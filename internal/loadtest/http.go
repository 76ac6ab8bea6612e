package loadtest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
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
	// MaxConns is the idle connections kept for reuse (default 1024);
	// match it to Config.MaxInFlight so connections are reused.
	MaxConns int
	// Body appends the body of request seq to dst and returns it. Nil sends
	// GET requests without a body; otherwise the method is POST.
	Body func(dst []byte, seq uint64) []byte
	// ContentType is the body's media type (default application/json).
	ContentType string
	// Header is sent with every request, such as an Authorization header
	// with an API key.
	Header http.Header
	// TLS configures the connections of an https URL (default: Go's
	// defaults, verifying the server against the system roots).
	TLS *tls.Config
}

// HTTP is a [Target] that sends one HTTP/1.1 request per arrival to a fixed
// URL over keep-alive connections and reads the whole answer, all in the
// goroutine that sends: it writes the request bytes itself and reads the
// answer with net/http's parser. net/http's client hands every request to
// two goroutines of its connection, which cost a generator sharing the
// machine with the node about twice the CPU a request, and a generator that
// takes CPU from the node measures less than the node can do. It is safe
// for concurrent use.
type HTTP struct {
	cfg    HTTPConfig
	addr   string // host:port dialed
	tls    *tls.Config
	head   []byte // request line and fixed headers, up to the Content-Length value
	idle   chan *wireConn
	closed atomic.Bool
}

// wireConn is one keep-alive connection and its buffers.
type wireConn struct {
	c    net.Conn
	br   *bufio.Reader
	req  []byte // the request being written
	body []byte // scratch for the body
}

var _ Target = (*HTTP)(nil)

// NewHTTP returns a target that sends to rawURL (http or https).
func NewHTTP(rawURL string, cfg HTTPConfig) (*HTTP, error) {
	if rawURL == "" {
		return nil, fmt.Errorf("%w: empty url", ErrInvalidConfig)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%w: url %q is not http(s)://host/path", ErrInvalidConfig, rawURL)
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 1024
	}
	if cfg.ContentType == "" {
		cfg.ContentType = "application/json"
	}
	h := &HTTP{cfg: cfg, addr: u.Host, idle: make(chan *wireConn, cfg.MaxConns)}
	if u.Port() == "" {
		h.addr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	if u.Scheme == "https" {
		h.tls = cfg.TLS.Clone()
		if h.tls == nil {
			h.tls = &tls.Config{}
		}
		if h.tls.ServerName == "" {
			h.tls.ServerName = u.Hostname()
		}
		h.tls.NextProtos = []string{"http/1.1"}
	}
	method := http.MethodGet
	if cfg.Body != nil {
		method = http.MethodPost
	}
	head := fmt.Appendf(nil, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sightline-loadgen\r\n", method, u.RequestURI(), u.Host)
	for k, vs := range cfg.Header {
		for _, v := range vs {
			if strings.ContainsAny(k+v, "\r\n") {
				return nil, fmt.Errorf("%w: header %q holds a line break", ErrInvalidConfig, k)
			}
			head = fmt.Appendf(head, "%s: %s\r\n", http.CanonicalHeaderKey(k), v)
		}
	}
	if cfg.Body != nil {
		head = fmt.Appendf(head, "Content-Type: %s\r\nContent-Length: ", cfg.ContentType)
	}
	h.head = head
	return h, nil
}

// Send sends request seq and reads the answer; a status outside 2xx is a
// [*StatusError]. A connection the server closed while it was idle is
// replaced once, as net/http's client does.
func (h *HTTP) Send(ctx context.Context, seq uint64) error {
	c, reused, err := h.conn(ctx)
	if err != nil {
		return h.wrap(ctx, err)
	}
	code, retryAfter, keep, sent, err := h.exchange(ctx, c, seq)
	if err != nil && reused && !sent && ctx.Err() == nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		_ = c.c.Close()
		if c, err = h.dial(ctx); err != nil {
			return h.wrap(ctx, err)
		}
		code, retryAfter, keep, _, err = h.exchange(ctx, c, seq)
	}
	if err != nil || !keep {
		_ = c.c.Close()
	} else {
		h.put(c)
	}
	if err != nil {
		return h.wrap(ctx, err)
	}
	if code < 200 || code > 299 {
		return &StatusError{Code: code, RetryAfter: retryAfter}
	}
	return nil
}

// wrap makes a timeout or a cancellation match ctx's error, which is how
// [Run] tells a timeout from a broken connection.
func (h *HTTP) wrap(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return err
}

// conn returns an idle connection, or a new one when none is idle.
func (h *HTTP) conn(ctx context.Context) (c *wireConn, reused bool, err error) {
	select {
	case c := <-h.idle:
		return c, true, nil
	default:
	}
	c, err = h.dial(ctx)
	return c, false, err
}

func (h *HTTP) dial(ctx context.Context) (*wireConn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	var (
		nc  net.Conn
		err error
	)
	if h.tls != nil {
		nc, err = (&tls.Dialer{NetDialer: &d, Config: h.tls}).DialContext(ctx, "tcp", h.addr)
	} else {
		nc, err = d.DialContext(ctx, "tcp", h.addr)
	}
	if err != nil {
		return nil, err
	}
	return &wireConn{c: nc, br: bufio.NewReaderSize(nc, 16<<10)}, nil
}

// put keeps c for reuse, or closes it when the pool is full or closed.
func (h *HTTP) put(c *wireConn) {
	if !h.closed.Load() {
		select {
		case h.idle <- c:
			return
		default:
		}
	}
	_ = c.c.Close()
}

// exchange writes request seq on c and reads the answer. sent reports
// whether any of the answer arrived (a failure before that, on a reused
// connection, may be the server having closed it). keep reports whether c
// may carry another request.
func (h *HTTP) exchange(ctx context.Context, c *wireConn, seq uint64) (code int, retryAfter string, keep, sent bool, err error) {
	if d, ok := ctx.Deadline(); ok {
		if err := c.c.SetDeadline(d); err != nil {
			return 0, "", false, false, err
		}
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { _ = c.c.SetDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	req := append(c.req[:0], h.head...)
	if h.cfg.Body != nil {
		c.body = h.cfg.Body(c.body[:0], seq)
		req = strconv.AppendInt(req, int64(len(c.body)), 10)
		req = append(req, "\r\n\r\n"...)
		req = append(req, c.body...)
	} else {
		req = append(req, "\r\n"...)
	}
	c.req = req
	if _, err := c.c.Write(req); err != nil {
		return 0, "", false, false, err
	}
	return readResponse(c.br)
}

// readResponse reads one HTTP/1.1 answer from br with net/http's parser:
// its status, Retry-After, whether the connection stays open, and its
// whole body. sent reports whether any of it arrived.
func readResponse(br *bufio.Reader) (code int, retryAfter string, keep, sent bool, err error) {
	for {
		if _, err := br.Peek(1); err != nil {
			return 0, "", false, sent, err
		}
		sent = true
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return 0, "", false, sent, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		if cerr := resp.Body.Close(); err == nil {
			err = cerr
		}
		// An interim answer (100 Continue, 103 Early Hints) comes before
		// the one that answers the request.
		if err != nil || resp.StatusCode/100 != 1 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp.StatusCode, resp.Header.Get("Retry-After"), !resp.Close, sent, err
		}
	}
}

// Close closes the idle connections; connections in use close when their
// request ends.
func (h *HTTP) Close() {
	h.closed.Store(true)
	for {
		select {
		case c := <-h.idle:
			_ = c.c.Close()
		default:
			return
		}
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
