package api_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sightline/sightline/internal/api"
)

func newLimiter(t *testing.T, cfg api.LimiterConfig) *api.Limiter {
	t.Helper()
	l, err := api.NewLimiter(cfg)
	if err != nil {
		t.Fatalf("NewLimiter(%+v): %v", cfg, err)
	}
	return l
}

func TestNewLimiterValidates(t *testing.T) {
	if l, err := api.NewLimiter(api.LimiterConfig{}); err == nil || l != nil {
		t.Errorf("NewLimiter(Max 0) = %v, %v; want an error", l, err)
	}
}

// TestLimiterAdmitsUpToMaxThenQueues: Max requests are admitted at once,
// Queue more wait, the next is refused at once with ErrQueueFull, and a
// waiter of a burst that gets no slot within Interval is refused with
// ErrQueueTimeout.
func TestLimiterAdmitsUpToMaxThenQueues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t, api.LimiterConfig{Max: 2, Queue: 1, Wait: 5 * time.Millisecond, Interval: 10 * time.Millisecond})
		ctx := t.Context()
		t1, err1 := l.Acquire(ctx)
		_, err2 := l.Acquire(ctx)
		if err1 != nil || err2 != nil {
			t.Fatalf("Acquire under the limit = %v, %v; want admitted", err1, err2)
		}
		var queuedErr error
		start := time.Now()
		var waited time.Duration
		var wg sync.WaitGroup
		wg.Go(func() {
			_, queuedErr = l.Acquire(ctx)
			waited = time.Since(start)
		})
		synctest.Wait() // the third is queued
		if got, want := l.State(), (api.LimiterState{InFlight: 2, Queued: 1, Limit: 2}); got != want {
			t.Errorf("State() = %+v, want %+v", got, want)
		}
		if _, err := l.Acquire(ctx); !errors.Is(err, api.ErrQueueFull) {
			t.Errorf("Acquire with the queue full = %v, want ErrQueueFull", err)
		}
		wg.Wait()
		if !errors.Is(queuedErr, api.ErrQueueTimeout) || waited != 10*time.Millisecond {
			t.Errorf("queued Acquire = %v after %v, want ErrQueueTimeout after 10ms", queuedErr, waited)
		}
		l.Release(t1)
		if got, want := l.State(), (api.LimiterState{InFlight: 1, Queued: 0, Limit: 2}); got != want {
			t.Errorf("State() after a release = %+v, want %+v", got, want)
		}
	})
}

// TestLimiterBurstThenStandingQueue: a queue that was empty a moment ago
// holds a burst for up to Interval, so a short stall of the node drains
// instead of being refused; a queue that has not been empty for Interval
// (arrivals past capacity) holds a request for Wait only.
func TestLimiterBurstThenStandingQueue(t *testing.T) {
	cfg := api.LimiterConfig{Max: 1, Queue: 10, Wait: 5 * time.Millisecond, Interval: 100 * time.Millisecond}
	t.Run("burst drains", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := newLimiter(t, cfg)
			held, err := l.Acquire(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			var waited time.Duration
			var wg sync.WaitGroup
			wg.Go(func() {
				tk, err := l.Acquire(t.Context())
				waited = time.Since(start)
				if err != nil {
					t.Errorf("Acquire queued behind a 60ms stall = %v, want admitted", err)
					return
				}
				l.Release(tk)
			})
			time.Sleep(60 * time.Millisecond) // the node stalls
			l.Release(held)
			wg.Wait()
			if waited != 60*time.Millisecond {
				t.Errorf("queued Acquire admitted after %v, want 60ms (at the release)", waited)
			}
		})
	})
	t.Run("standing queue", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := newLimiter(t, cfg)
			if _, err := l.Acquire(t.Context()); err != nil { // never released
				t.Fatal(err)
			}
			start := time.Now()
			// Waiters queued at 0, 90ms and 99ms keep the queue non-empty
			// from 0: it stands from 100ms.
			at := []time.Duration{0, 90 * time.Millisecond, 99 * time.Millisecond}
			errs, waited := make([]error, len(at)), make([]time.Duration, len(at))
			var wg sync.WaitGroup
			for i, d := range at {
				time.Sleep(d - time.Since(start))
				wg.Go(func() {
					_, errs[i] = l.Acquire(t.Context())
					waited[i] = time.Since(start) - d
				})
				synctest.Wait()
			}
			wg.Wait()
			// The first waits out Interval; the second, past its Wait in a
			// burst, until the queue stands; the third, queued in a standing
			// queue, Wait only.
			want := []time.Duration{100 * time.Millisecond, 10 * time.Millisecond, 5 * time.Millisecond}
			for i := range at {
				if !errors.Is(errs[i], api.ErrQueueTimeout) || waited[i] != want[i] {
					t.Errorf("waiter queued at %v: %v after %v, want ErrQueueTimeout after %v", at[i], errs[i], waited[i], want[i])
				}
			}
			if got := l.State(); got.Queued != 0 {
				t.Errorf("State() at the end = %+v, want an empty queue", got)
			}
		})
	})
}

// TestLimiterHandsSlotsOverInOrder: a released slot goes to the longest
// waiting request, which is admitted without waiting out its Wait.
func TestLimiterHandsSlotsOverInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t, api.LimiterConfig{Max: 1, Queue: 3, Wait: time.Second})
		first, err := l.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var order []int
		tickets := make(chan api.Ticket, 3)
		var wg sync.WaitGroup
		for i := range 3 {
			wg.Go(func() {
				tk, err := l.Acquire(t.Context())
				if err != nil {
					t.Errorf("waiter %d: %v", i, err)
					return
				}
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				tickets <- tk
			})
			synctest.Wait() // queue them in order 0, 1, 2
		}
		start := time.Now()
		l.Release(first)
		for range 3 {
			synctest.Wait()
			l.Release(<-tickets)
		}
		wg.Wait()
		if time.Since(start) != 0 {
			t.Errorf("waiters took %v of fake time, want 0: a release must hand its slot over at once", time.Since(start))
		}
		if diff := cmp.Diff([]int{0, 1, 2}, order); diff != "" {
			t.Errorf("admission order (-want +got):\n%s", diff)
		}
		if got := l.State(); got.InFlight != 0 || got.Queued != 0 {
			t.Errorf("State() at the end = %+v, want nothing in flight or queued", got)
		}
	})
}

// TestLimiterCanceledWaiter: a waiter whose context ends leaves the queue
// with ctx's error, and its place is not given a slot.
func TestLimiterCanceledWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t, api.LimiterConfig{Max: 1, Wait: time.Second})
		held, err := l.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := l.Acquire(ctx)
			done <- err
		}()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) || api.RejectReason(err) != "canceled" {
			t.Errorf("canceled Acquire = %v (reason %q), want context.Canceled (canceled)", err, api.RejectReason(err))
		}
		l.Release(held)
		if got := l.State(); got.InFlight != 0 || got.Queued != 0 {
			t.Errorf("State() = %+v, want the slot back in the pool, not handed to the canceled waiter", got)
		}
		if _, err := l.Acquire(t.Context()); err != nil {
			t.Errorf("Acquire after = %v, want admitted", err)
		}
	})
}

// TestLimiterNoQueue: with a negative Queue a request beyond the limit is
// refused at once.
func TestLimiterNoQueue(t *testing.T) {
	l := newLimiter(t, api.LimiterConfig{Max: 1, Queue: -1})
	if _, err := l.Acquire(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(t.Context()); !errors.Is(err, api.ErrQueueFull) || api.RejectReason(err) != "queue_full" {
		t.Errorf("Acquire beyond the limit = %v, want ErrQueueFull at once", err)
	}
}

// TestLimiterQueueStaysBounded: waiters that time out while no slot frees
// do not pile up.
func TestLimiterQueueStaysBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t, api.LimiterConfig{Max: 1, Queue: 2, Wait: time.Millisecond})
		held, err := l.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for range 1000 {
			if _, err := l.Acquire(t.Context()); !errors.Is(err, api.ErrQueueTimeout) {
				t.Fatalf("Acquire = %v, want ErrQueueTimeout", err)
			}
		}
		if got := l.State(); got.Queued != 0 || got.InFlight != 1 {
			t.Errorf("State() = %+v, want one in flight, none queued", got)
		}
		l.Release(held)
		if got := l.State(); got.InFlight != 0 {
			t.Errorf("State() after the release = %+v, want the slot back (no abandoned waiter may take it)", got)
		}
	})
}

// TestLimiterAdapts: with a Target, slow requests cut the limit (once per
// round of completions, not below Min) and fast ones under load raise it
// back to Max.
func TestLimiterAdapts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t, api.LimiterConfig{Max: 20, Min: 4, Target: 5 * time.Millisecond, Queue: -1})
		// hold runs n requests at once, each held d.
		hold := func(n int, d time.Duration) {
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() {
					tk, err := l.Acquire(t.Context())
					if err != nil {
						return
					}
					time.Sleep(d)
					l.Release(tk)
				})
			}
			wg.Wait()
		}
		hold(20, 50*time.Millisecond) // one round of slow requests: one cut
		if got := l.State().Limit; got != 18 {
			t.Errorf("limit after one slow round = %d, want 18 (20 × 0.9, cut once per round)", got)
		}
		for range 40 {
			hold(20, 50*time.Millisecond)
		}
		if got := l.State().Limit; got != 4 {
			t.Errorf("limit after many slow rounds = %d, want Min 4", got)
		}
		for range 200 {
			hold(l.State().Limit, time.Millisecond)
		}
		if got := l.State().Limit; got != 20 {
			t.Errorf("limit after fast rounds at the limit = %d, want back at Max 20", got)
		}
		// Fast requests with the limit barely used do not raise it.
		l2 := newLimiter(t, api.LimiterConfig{Max: 20, Min: 4, Target: 5 * time.Millisecond, Queue: -1})
		l = l2
		hold(20, 50*time.Millisecond)
		before := l.State().Limit
		for range 100 {
			hold(1, time.Millisecond)
		}
		if got := l.State().Limit; got != before {
			t.Errorf("limit after idle fast requests = %d, want unchanged %d", got, before)
		}
	})
}

// TestLimiterStaticWithoutTarget: without a Target slow requests leave the
// limit at Max.
func TestLimiterStaticWithoutTarget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t, api.LimiterConfig{Max: 8})
		for range 50 {
			tk, err := l.Acquire(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			l.Release(tk)
		}
		if got := l.State().Limit; got != 8 {
			t.Errorf("limit = %d, want 8", got)
		}
	})
}

// TestAdmissionAnswers429: a request past its route's limiter is answered
// 429 overloaded with Retry-After (checked against openapi.json), counted
// by route and reason and handed to OnReject, without reaching the
// handler; the two recommendation routes share one limiter, events have
// their own; once a slot frees, requests are served again.
func TestAdmissionAnswers429(t *testing.T) {
	rec := newLimiter(t, api.LimiterConfig{Max: 1, Queue: -1})
	ev := newLimiter(t, api.LimiterConfig{Max: 1, Queue: -1})
	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	var rejected []string
	e := newEnv(t, func(c *api.Config) {
		c.Admission = api.AdmissionConfig{Recommend: rec, Events: ev, RetryAfter: 1500 * time.Millisecond,
			OnReject: func(r *http.Request, reason string) {
				mu.Lock()
				rejected = append(rejected, r.Pattern+" "+reason)
				mu.Unlock()
			}}
		c.Registerer = reg
	})
	held, err := rec.Acquire(t.Context()) // the recommendation slot is taken
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct{ method, path, body string }{
		{"POST", "/v1/recommendations", `{"user_id":"u1"}`}, {"GET", "/v1/users/u1/recommendations", ""},
	} {
		resp, body := e.do(t, p.method, p.path, p.body)
		checkProblem(t, resp, body, http.StatusTooManyRequests, "overloaded", "limit of concurrent recommend requests")
		if got := resp.Header.Get("Retry-After"); got != "2" {
			t.Errorf("%s %s Retry-After = %q, want 2 (1.5s rounded up)", p.method, p.path, got)
		}
	}
	if got := e.rec.lastRequest().UserID; got != "" {
		t.Errorf("the recommender saw %q, want no request reaching it", got)
	}
	evBody := `[{"event_id":"e1","type":"click","user_id":"u1","item_id":"i1"}]`
	if resp, body := e.do(t, "POST", "/v1/events", evBody); resp.StatusCode != http.StatusAccepted {
		t.Errorf("POST /v1/events with the recommendation slot taken = %d %s, want 202 (its own limiter)", resp.StatusCode, body)
	}
	rec.Release(held)
	if resp, body := e.do(t, "POST", "/v1/recommendations", `{"user_id":"u1"}`); resp.StatusCode != http.StatusOK {
		t.Errorf("POST /v1/recommendations after the release = %d %s, want 200", resp.StatusCode, body)
	}
	mu.Lock()
	got := slices.Clone(rejected)
	mu.Unlock()
	if diff := cmp.Diff([]string{"POST /v1/recommendations queue_full", "GET /v1/users/{user_id}/recommendations queue_full"}, got); diff != "" {
		t.Errorf("OnReject calls (-want +got):\n%s", diff)
	}
	if n := counterValue(t, reg, "sightline_http_admission_rejected_total", map[string]string{"route": "POST /v1/recommendations", "reason": "queue_full"}); n != 1 {
		t.Errorf("rejected{POST /v1/recommendations, queue_full} = %v, want 1", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	gauges := map[string]bool{}
	for _, mf := range mfs {
		gauges[mf.GetName()] = true
	}
	for _, name := range []string{"sightline_http_admission_inflight", "sightline_http_admission_queued", "sightline_http_admission_limit"} {
		if !gauges[name] {
			t.Errorf("no %s in the registry", name)
		}
	}
}

// BenchmarkLimiter measures an admission and its release with slots free,
// the cost every recommendation pays.
func BenchmarkLimiter(b *testing.B) {
	for _, target := range []time.Duration{0, 5 * time.Millisecond} {
		b.Run("target="+target.String(), func(b *testing.B) {
			l, err := api.NewLimiter(api.LimiterConfig{Max: 1 << 20, Target: target})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					tk, err := l.Acquire(ctx)
					if err != nil {
						b.Fatal(err)
					}
					l.Release(tk)
				}
			})
		})
	}
}
