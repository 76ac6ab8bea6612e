package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sightline/sightline/client"
)

// inMemory sends requests to a handler in process, so retries can run on
// synctest's fake clock.
type inMemory struct{ h http.Handler }

func (m inMemory) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	m.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// script answers the i-th request with replies[i] (the last one again
// after the end) and records when and what it was sent.
type script struct {
	mu      sync.Mutex
	replies []reply
	times   []time.Time
	bodies  []string
	auth    []string
}

type reply struct {
	status     int
	retryAfter string
	body       string
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var b []byte
	if r.Body != nil { // a client request without a body has none
		b, _ = io.ReadAll(r.Body)
	}
	s.mu.Lock()
	i := min(len(s.times), len(s.replies)-1)
	s.times = append(s.times, time.Now())
	s.bodies = append(s.bodies, string(b))
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	rp := s.replies[i]
	s.mu.Unlock()
	if rp.retryAfter != "" {
		w.Header().Set("Retry-After", rp.retryAfter)
	}
	if rp.status >= 400 {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(rp.status)
		// A failed write is the client's error to report.
		_, _ = io.WriteString(w, `{"type":"https://sightline.dev/problems/overloaded","title":"`+http.StatusText(rp.status)+`","status":`+strconv.Itoa(rp.status)+`,"detail":"busy"}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rp.status)
	// A failed write is the client's error to report.
	_, _ = io.WriteString(w, rp.body)
}

const recBody = `{"request_id":"r1","variant":"b","model_version":"m","fallback":null,"items":[]}`

func scripted(t *testing.T, s *script, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New("http://node.test", append([]client.Option{client.WithHTTPClient(&http.Client{Transport: inMemory{s}})}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// gaps returns the time between consecutive requests.
func (s *script) gaps() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Duration
	for i := 1; i < len(s.times); i++ {
		out = append(out, s.times[i].Sub(s.times[i-1]))
	}
	return out
}

// TestRetryHonoursRetryAfter: a 429 with Retry-After is retried after at
// least that long (and at most half as much again), until the answer is
// a success.
func TestRetryHonoursRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{replies: []reply{{429, "2", ""}, {503, "1", ""}, {200, "", recBody}}}
		c := scripted(t, s)
		rec, err := c.Recommend(t.Context(), client.RecommendRequest{UserID: "u1"})
		if err != nil || rec.RequestID != "r1" {
			t.Fatalf("Recommend() = %+v, %v; want the third answer", rec, err)
		}
		g := s.gaps()
		if len(g) != 2 || g[0] < 2*time.Second || g[0] > 3*time.Second || g[1] < time.Second || g[1] > 1500*time.Millisecond {
			t.Errorf("waits between attempts = %v, want [2s, 3s] then [1s, 1.5s]", g)
		}
		for i, b := range s.bodies {
			if b != `{"user_id":"u1"}` {
				t.Errorf("attempt %d sent body %q, want the request again", i+1, b)
			}
		}
	})
}

// TestRetryGivesUp: after MaxAttempts the last answer is returned, with the
// attempts and Retry-After; a 429 without Retry-After is retried after a
// jittered exponential backoff.
func TestRetryGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{replies: []reply{{429, "", ""}}}
		c := scripted(t, s, client.WithRetry(client.RetryPolicy{MaxAttempts: 4, BaseDelay: time.Second}))
		_, err := c.SendEvents(t.Context(), []client.Event{{EventID: "e1", Type: client.TypeClick, UserID: "u", ItemID: "i"}})
		e, ok := errors.AsType[*client.Error](err)
		if !ok || e.Status != 429 || e.Attempts != 4 || e.RetryAfter != 0 {
			t.Fatalf("SendEvents() = %v (%+v), want the 429 after 4 attempts", err, e)
		}
		for i, g := range s.gaps() {
			if limit := time.Second << i; g > limit {
				t.Errorf("wait %d = %v, want at most %v", i+1, g, limit)
			}
		}
		if len(s.bodies) != 4 || s.bodies[0] != s.bodies[3] || !strings.Contains(s.bodies[3], `"event_id":"e1"`) {
			t.Errorf("bodies = %q, want the batch sent 4 times", s.bodies)
		}
	})
}

// TestRetryRespectsContext: a wait that would outlast the context's
// deadline is not begun, a Retry-After longer than MaxDelay is not waited
// for, and a context canceled during the wait ends it.
func TestRetryRespectsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{replies: []reply{{429, "1", ""}}}
		c := scripted(t, s)
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Recommend(ctx, client.RecommendRequest{UserID: "u1"})
		if e, ok := errors.AsType[*client.Error](err); !ok || e.Status != 429 || e.Attempts != 1 || e.RetryAfter != time.Second || time.Since(start) != 0 {
			t.Errorf("Recommend() with 500ms left = %v after %v, want the 429 at once after 1 attempt", err, time.Since(start))
		}

		long := &script{replies: []reply{{429, "60", ""}}}
		_, err = scripted(t, long).Recommend(t.Context(), client.RecommendRequest{UserID: "u1"})
		if e, ok := errors.AsType[*client.Error](err); !ok || e.Attempts != 1 || e.RetryAfter != time.Minute {
			t.Errorf("Recommend() with Retry-After 60 = %v, want the 429 at once (beyond MaxDelay)", err)
		}

		ctx2, cancel2 := context.WithCancel(t.Context())
		go func() {
			time.Sleep(300 * time.Millisecond)
			cancel2()
		}()
		start = time.Now()
		_, err = scripted(t, &script{replies: []reply{{503, "1", ""}}}).Recommend(ctx2, client.RecommendRequest{UserID: "u1"})
		if e, ok := errors.AsType[*client.Error](err); !ok || e.Status != 503 || time.Since(start) != 300*time.Millisecond {
			t.Errorf("Recommend() canceled during the wait = %v after %v, want the 503 at the cancellation (300ms)", err, time.Since(start))
		}
	})
}

// TestNoRetry: other statuses, a 503 without Retry-After, a policy of one
// attempt, and a body that
// cannot be read again are not retried; a seekable import body is sent
// whole again.
func TestNoRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, rp := range []reply{{400, "1", ""}, {404, "1", ""}, {500, "1", ""}, {503, "", ""}} {
			s := &script{replies: []reply{rp}}
			_, _ = scripted(t, s).Recommend(t.Context(), client.RecommendRequest{UserID: "u1"})
			if len(s.times) != 1 {
				t.Errorf("status %d with Retry-After %q: %d attempts, want 1", rp.status, rp.retryAfter, len(s.times))
			}
		}
		s := &script{replies: []reply{{429, "1", ""}}}
		_, _ = scripted(t, s, client.WithRetry(client.RetryPolicy{MaxAttempts: 1})).Recommend(t.Context(), client.RecommendRequest{UserID: "u1"})
		if len(s.times) != 1 {
			t.Errorf("MaxAttempts 1: %d attempts, want 1", len(s.times))
		}
		const lines = `{"user_id":"u1"}` + "\n" + `{"user_id":"u2"}` + "\n"
		s = &script{replies: []reply{{503, "1", ""}}}
		_, _ = scripted(t, s).ImportUsers(t.Context(), io.MultiReader(strings.NewReader(lines)))
		if len(s.times) != 1 {
			t.Errorf("import from a plain reader: %d attempts, want 1 (it cannot be read again)", len(s.times))
		}
		s = &script{replies: []reply{{503, "1", ""}, {200, "", `{"imported":2,"rejected":0,"errors":[]}`}}}
		r := bytes.NewReader([]byte("skipped\n" + lines))
		if _, err := r.Seek(int64(len("skipped\n")), io.SeekStart); err != nil {
			t.Fatal(err)
		}
		res, err := scripted(t, s).ImportUsers(t.Context(), r)
		if err != nil || res.Imported != 2 || len(s.bodies) != 2 || s.bodies[1] != lines {
			t.Errorf("import from a seeker = %+v, %v, bodies %q; want it sent again from where it started", res, err, s.bodies)
		}
	})
}

// TestAPIKey: the key goes in every request's Authorization header, retries
// included, and into no error.
func TestAPIKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const key = "slk_the-secret-key"
		s := &script{replies: []reply{{429, "1", ""}, {401, "", ""}}}
		_, err := scripted(t, s, client.WithAPIKey(key)).Stats(t.Context())
		if len(s.auth) != 2 || s.auth[0] != "Bearer "+key || s.auth[1] != "Bearer "+key {
			t.Errorf("Authorization headers = %q, want the key on both attempts", s.auth)
		}
		if err == nil || strings.Contains(err.Error(), key) {
			t.Errorf("Stats() error = %v, want an error without the key", err)
		}
		s = &script{replies: []reply{{200, "", `{}`}}}
		if err := scripted(t, s).Health(t.Context()); err != nil {
			t.Fatal(err)
		}
		if s.auth[0] != "" {
			t.Errorf("Authorization without WithAPIKey = %q, want none", s.auth[0])
		}
	})
}
