package loadtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// stallingServer answers in service time, except that every request that
// arrives during [stallFrom, stallTo) waits until stallTo: a server that
// freezes (a GC pause, a lock held too long) and then drains its queue.
func stallingServer(start time.Time, service, stallFrom, stallTo time.Duration) TargetFunc {
	return func(context.Context, uint64) error {
		now := time.Since(start)
		if now >= stallFrom && now < stallTo {
			time.Sleep(stallTo - now)
		}
		time.Sleep(service)
		return nil
	}
}

func TestRunMeasuresFromScheduledTime(t *testing.T) {
	tests := []struct {
		name             string
		stallFrom, until time.Duration
		wantP50          time.Duration
		wantP99AtLeast   time.Duration
		wantP99AtMost    time.Duration
	}{
		{"steady", 0, 0, time.Millisecond, time.Millisecond, time.Millisecond * 101 / 100},
		// 1s stall in a 10s run at 1000/s: the 1000 arrivals during the
		// stall wait 1s..0, so p99 is ~0.9s. A closed-loop generator would
		// have sent one request during the stall and reported p99 = 1ms.
		{"one second stall", 2 * time.Second, 3 * time.Second, time.Millisecond, 800 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tgt := stallingServer(time.Now(), time.Millisecond, tt.stallFrom, tt.until)
				r, err := Run(t.Context(), tgt, Config{Rate: 1000, Duration: 10 * time.Second, MaxInFlight: 5000})
				if err != nil {
					t.Fatalf("Run() error = %v", err)
				}
				if r.Sent != 10_000 || r.OK != 10_000 || r.Errors != 0 {
					t.Errorf("Run() sent, ok, errors = %d, %d, %d, want 10000, 10000, 0", r.Sent, r.OK, r.Errors)
				}
				h := r.Histogram
				if got := h.Quantile(0.5); got < tt.wantP50 || got > tt.wantP50*101/100 {
					t.Errorf("p50 = %v, want %v (+1%%)", got, tt.wantP50)
				}
				if got := h.Quantile(0.99); got < tt.wantP99AtLeast || got > tt.wantP99AtMost {
					t.Errorf("p99 = %v, want in [%v, %v]", got, tt.wantP99AtLeast, tt.wantP99AtMost)
				}
				if tt.until > 0 {
					if got, want := h.Max(), tt.until-tt.stallFrom+time.Millisecond; got != want {
						t.Errorf("max = %v, want %v (first arrival of the stall)", got, want)
					}
				}
				// The stall shows in the second it fell in, and as the
				// target's, not the generator's: every arrival was handed
				// over on time.
				for i, sc := range r.PerSecond[:10] {
					want := 1.0
					if tt.until > 0 && i == int(tt.stallFrom/time.Second) {
						want = ms(tt.until - tt.stallFrom + time.Millisecond)
					}
					if sc.MaxMs != want {
						t.Errorf("second %d max = %vms, want %vms", i, sc.MaxMs, want)
					}
				}
				if r.SendLag.Max != 0 {
					t.Errorf("send lag max = %vms, want 0: only the target stalled", r.SendLag.Max)
				}
			})
		})
	}
}

func TestRunCountsOverruns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 100 in flight at most; a 1s stall at 1000/s fills them after
		// 100ms, and the next 900 arrivals are overruns.
		tgt := stallingServer(time.Now(), time.Millisecond, time.Second, 2*time.Second)
		r, err := Run(t.Context(), tgt, Config{Rate: 1000, Duration: 3 * time.Second, MaxInFlight: 100})
		if err != nil {
			t.Fatalf("Run() error = %v", err)
		}
		// ±2 for the arrivals that meet a finishing request at the same instant.
		if got := r.ErrorsByKind[KindOverrun]; got < 898 || got > 902 || len(r.ErrorsByKind) != 1 {
			t.Errorf("ErrorsByKind = %v, want only %s ≈ 900", r.ErrorsByKind, KindOverrun)
		}
		if got, want := r.OK+r.Errors, r.Sent; got != want {
			t.Errorf("ok+errors = %d, want sent %d", got, want)
		}
	})
}

func TestRunLateGeneratorStillCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A target that holds a lock for 2ms admits one request at a time:
		// at 1000/s offered the queue grows by half a request per ms, and
		// the latencies grow with it because they start at the schedule.
		lock := make(chan struct{}, 1) // a channel, not a mutex: synctest sees it block
		tgt := TargetFunc(func(context.Context, uint64) error {
			lock <- struct{}{}
			defer func() { <-lock }()
			time.Sleep(2 * time.Millisecond)
			return nil
		})
		r, err := Run(t.Context(), tgt, Config{Rate: 1000, Duration: time.Second, MaxInFlight: 2000})
		if err != nil {
			t.Fatalf("Run() error = %v", err)
		}
		if got := r.Histogram.Max(); got < 900*time.Millisecond {
			t.Errorf("max = %v, want ≥ 900ms (1000 requests × 2ms served one at a time, the last scheduled at 1s)", got)
		}
		if r.Throughput > 600 {
			t.Errorf("throughput = %.0f/s, want ≤ 600/s for a 500/s server", r.Throughput)
		}
	})
}

func TestRunErrorKinds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int64
		tgt := TargetFunc(func(ctx context.Context, seq uint64) error {
			n.Add(1)
			switch seq % 4 {
			case 0:
				return &StatusError{Code: 503}
			case 1:
				return &StatusError{Code: 404}
			case 2:
				<-ctx.Done()
				return ctx.Err()
			}
			return errors.New("connection reset")
		})
		r, err := Run(t.Context(), tgt, Config{Rate: 100, Duration: time.Second, Timeout: 50 * time.Millisecond})
		if err != nil {
			t.Fatalf("Run() error = %v", err)
		}
		want := map[string]uint64{KindServer: 25, KindClient: 25, KindTimeout: 25, KindTransport: 25}
		if diff := cmp.Diff(want, r.ErrorsByKind); diff != "" {
			t.Errorf("ErrorsByKind mismatch (-want +got):\n%s", diff)
		}
		if r.OK != 0 || n.Load() != 100 {
			t.Errorf("ok, calls = %d, %d, want 0, 100", r.OK, n.Load())
		}
	})
}

func TestRunStopsOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		tgt := stallingServer(time.Now(), time.Millisecond, 0, 0)
		r, err := Run(ctx, tgt, Config{Rate: 100, Duration: 10 * time.Second})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Run() error = %v, want %v", err, context.DeadlineExceeded)
		}
		if r == nil || r.Sent < 49 || r.Sent > 51 {
			t.Errorf("Run() sent %v, want about 50 before the cancel", r)
		}
	})
}

func TestRunInvalidConfig(t *testing.T) {
	for _, c := range []Config{{}, {Rate: 10}, {Duration: time.Second}, {Rate: -1, Duration: time.Second}} {
		if _, err := Run(t.Context(), TargetFunc(nil), c); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Run(%+v) error = %v, want %v", c, err, ErrInvalidConfig)
		}
	}
}

func TestMaxRateFindsCapacity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// One worker, 1ms per request: capacity 1000/s. Below it the p99
		// is a few ms; above it the queue grows without bound.
		lock := make(chan struct{}, 1) // a channel, not a mutex: synctest sees it block
		tgt := TargetFunc(func(context.Context, uint64) error {
			lock <- struct{}{}
			defer func() { <-lock }()
			time.Sleep(time.Millisecond)
			return nil
		})
		var steps int
		res, err := MaxRate(t.Context(), tgt, SearchConfig{
			Start: 100, Factor: 2, Refine: 3, Step: 2 * time.Second, P99: 10 * time.Millisecond, Retries: -1,
			Run:    Config{MaxInFlight: 100_000},
			OnStep: func(*Report, bool) { steps++ },
		})
		if err != nil {
			t.Fatalf("MaxRate() error = %v", err)
		}
		if res.MaxRate < 700 || res.MaxRate > 1000 {
			t.Errorf("MaxRate() = %.0f/s, want in [700, 1000] for a 1000/s server", res.MaxRate)
		}
		// 100, 200, 400, 800 pass, 1600 fails, then 3 bisections.
		if got, want := len(res.Steps), 8; got != want || steps != want {
			t.Errorf("MaxRate() took %d steps (OnStep %d), want %d", got, steps, want)
		}
		if res.Best == nil || res.Best.Rate != res.MaxRate {
			t.Errorf("MaxRate() best = %+v, want the report at %.0f/s", res.Best, res.MaxRate)
		}
	})
}

// TestMaxRateRetriesAFailedStep: a step that fails on a stall of the
// machine is run again, and the search goes on from its rate; without
// retries the stall ends the search below it.
func TestMaxRateRetriesAFailedStep(t *testing.T) {
	tests := []struct {
		name        string
		retries     int
		wantAtLeast float64
		wantBelow   float64
		want200     []bool // the verdicts of the runs at 200/s
	}{
		{"default one retry", 0, 700, 1001, []bool{false, true}},
		{"no retries", -1, 100, 200, []bool{false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// Capacity 1000/s, and a 200ms stall 3s in: during the
				// first run at 200/s (the first step takes 2s and the
				// pause 0.5s).
				start := time.Now()
				lock := make(chan struct{}, 1)
				tgt := TargetFunc(func(context.Context, uint64) error {
					lock <- struct{}{}
					defer func() { <-lock }()
					if el := time.Since(start); el >= 3*time.Second && el < 3200*time.Millisecond {
						time.Sleep(3200*time.Millisecond - el)
					}
					time.Sleep(time.Millisecond)
					return nil
				})
				res, err := MaxRate(t.Context(), tgt, SearchConfig{
					Start: 100, Factor: 2, Refine: 3, Step: 2 * time.Second, P99: 10 * time.Millisecond,
					Retries: tt.retries, Run: Config{MaxInFlight: 100_000},
				})
				if err != nil {
					t.Fatalf("MaxRate() error = %v", err)
				}
				if res.MaxRate < tt.wantAtLeast || res.MaxRate >= tt.wantBelow {
					t.Errorf("MaxRate() = %.0f/s, want in [%.0f, %.0f)", res.MaxRate, tt.wantAtLeast, tt.wantBelow)
				}
				var at200 []bool
				for _, s := range res.Steps {
					if s.Report.Rate == 200 {
						at200 = append(at200, s.Pass)
					}
				}
				if diff := cmp.Diff(tt.want200, at200); diff != "" {
					t.Errorf("runs at 200/s (-want +got):\n%s", diff)
				}
			})
		})
	}
}

func TestHTTPAgainstBareHandler(t *testing.T) {
	body := PaddedJSON(700)
	srv := httptest.NewServer(BareHandler(body))
	defer srv.Close()
	var lens atomic.Int64
	tgt, err := NewHTTP(srv.URL, HTTPConfig{Body: func(dst []byte, seq uint64) []byte {
		b := RecommendBody(1000, 10)(dst, seq)
		lens.Add(int64(len(b)))
		return b
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	r, err := Run(t.Context(), tgt, Config{Rate: 200, Duration: 500 * time.Millisecond})
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	if r.Sent != 100 || r.OK != 100 {
		t.Errorf("Run() sent, ok = %d, %d, want 100, 100 (errors %v)", r.Sent, r.OK, r.ErrorsByKind)
	}
	if got := lens.Load(); got == 0 {
		t.Errorf("request bodies total %d bytes, want > 0", got)
	}
	if got := len(body); got != 700 {
		t.Errorf("len(PaddedJSON(700)) = %d, want 700", got)
	}
}

func TestHTTPStatusErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	defer srv.Close()
	for _, tt := range []struct {
		path string
		want string
	}{{"/missing", KindClient}, {"/fail", KindServer}} {
		tgt, err := NewHTTP(srv.URL+tt.path, HTTPConfig{})
		if err != nil {
			t.Fatal(err)
		}
		err = tgt.Send(t.Context(), 0)
		if !errors.Is(err, ErrStatus) || kindOf(err) != tt.want {
			t.Errorf("Send(%s) error = %v (kind %s), want %v of kind %s", tt.path, err, kindOf(err), ErrStatus, tt.want)
		}
		tgt.Close()
	}
}

// TestRunCountsRejections: 429 answers are counted apart from other
// errors, with their latency, whether they carried a valid Retry-After,
// and per second of the run, so a run shows when refusals stopped.
func TestRunCountsRejections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		// The first 2s: every second arrival refused, half of those
		// without Retry-After; then a 500 each second; then all served.
		tgt := TargetFunc(func(_ context.Context, seq uint64) error {
			time.Sleep(time.Millisecond)
			switch el := time.Since(start); {
			case el < 2*time.Second && seq%4 == 1:
				return &StatusError{Code: http.StatusTooManyRequests, RetryAfter: "1"}
			case el < 2*time.Second && seq%4 == 3:
				return &StatusError{Code: http.StatusTooManyRequests, RetryAfter: map[bool]string{true: "", false: "soon"}[seq%8 == 3]}
			case seq%100 == 0:
				return &StatusError{Code: http.StatusInternalServerError}
			}
			return nil
		})
		r, err := Run(t.Context(), tgt, Config{Rate: 100, Duration: 4 * time.Second})
		if err != nil {
			t.Fatalf("Run() error = %v", err)
		}
		if r.Rejected != 100 || r.RejectedWithoutRetryAfter != 50 || r.ErrorsByKind[KindRejected] != 100 {
			t.Errorf("rejected %d (without Retry-After %d, by kind %d), want 100 (50, 100)", r.Rejected, r.RejectedWithoutRetryAfter, r.ErrorsByKind[KindRejected])
		}
		if r.RejectedLatency.Max != 1 {
			t.Errorf("rejected latency max = %vms, want 1ms", r.RejectedLatency.Max)
		}
		if r.Errors != 104 || r.ErrorsByKind[KindServer] != 4 || r.ErrorsByKind[KindClient] != 0 {
			t.Errorf("errors %d by kind %v, want 104: 100 rejections and 4 5xx", r.Errors, r.ErrorsByKind)
		}
		want := []SecondCounts{{OK: 49, Rejected: 50, Errors: 1, MaxMs: 1}, {OK: 49, Rejected: 50, Errors: 1, MaxMs: 1}, {OK: 99, Errors: 1, MaxMs: 1}, {OK: 99, Errors: 1, MaxMs: 1}, {}}
		if diff := cmp.Diff(want, r.PerSecond); diff != "" {
			t.Errorf("per second (-want +got):\n%s", diff)
		}
	})
}

// TestHTTPTargetReadsRetryAfter: the HTTP target returns a 429 with its
// Retry-After and sends the configured headers.
func TestHTTPTargetReadsRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	tgt, err := NewHTTP(srv.URL, HTTPConfig{Header: http.Header{"Authorization": {"Bearer k"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	err = tgt.Send(t.Context(), 0)
	if se, ok := errors.AsType[*StatusError](err); !ok || se.Code != 429 || se.RetryAfter != "2" {
		t.Errorf("Send() = %v, want a 429 StatusError with Retry-After 2", err)
	}
	for v, want := range map[string]bool{"1": true, "120": true, "Wed, 21 Oct 2015 07:28:00 GMT": true, "": false, "-1": false, "1.5": false, "soon": false} {
		if got := validRetryAfter(v); got != want {
			t.Errorf("validRetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

// TestHTTPWire: the target speaks HTTP/1.1 itself, so it must read every
// answer a net/http server can give whole (Content-Length, chunked with a
// trailer, no length with Connection: close, 204), keep the connection in
// step for the next request, send the body and headers the server
// expects, replace a connection the server closed while idle, and tell a
// timeout from a transport failure.
func TestHTTPWire(t *testing.T) {
	var bodies atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /length", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Key") != "v" || !json.Valid(b) {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		bodies.Add(1)
		_, _ = w.Write(PaddedJSON(300))
	})
	mux.HandleFunc("POST /chunked", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		for range 3 {
			_, _ = w.Write(PaddedJSON(5000))
			w.(http.Flusher).Flush()
		}
		w.Header().Set("X-Sum", "3")
	})
	mux.HandleFunc("POST /close", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = w.Write([]byte("bye"))
	})
	mux.HandleFunc("POST /empty", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("POST /slow", func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	body := RecommendBody(100, 5)
	for _, path := range []string{"/length", "/chunked", "/close", "/empty"} {
		t.Run(path, func(t *testing.T) {
			tgt, err := NewHTTP(srv.URL+path, HTTPConfig{Body: body, Header: http.Header{"x-key": {"v"}}})
			if err != nil {
				t.Fatal(err)
			}
			defer tgt.Close()
			// Several requests in a row on one connection: a body left
			// unread would be taken for the next status line.
			for seq := range uint64(5) {
				if err := tgt.Send(t.Context(), seq); err != nil {
					t.Fatalf("Send(%d) error = %v", seq, err)
				}
			}
			if path != "/close" && len(tgt.idle) != 1 {
				t.Errorf("idle connections = %d, want 1 (reused)", len(tgt.idle))
			}
			if path == "/close" && len(tgt.idle) != 0 {
				t.Errorf("idle connections = %d, want 0 (the server closes each)", len(tgt.idle))
			}
		})
	}
	if got := bodies.Load(); got != 5 {
		t.Errorf("server accepted %d bodies, want 5", got)
	}

	t.Run("server closed the idle connection", func(t *testing.T) {
		tgt, err := NewHTTP(srv.URL+"/length", HTTPConfig{Body: body, Header: http.Header{"X-Key": {"v"}}})
		if err != nil {
			t.Fatal(err)
		}
		defer tgt.Close()
		for seq := range uint64(3) {
			srv.CloseClientConnections()
			if err := tgt.Send(t.Context(), seq); err != nil {
				t.Fatalf("Send(%d) after the server closed the connection: error = %v", seq, err)
			}
		}
	})

	t.Run("timeout", func(t *testing.T) {
		tgt, err := NewHTTP(srv.URL+"/slow", HTTPConfig{Body: body})
		if err != nil {
			t.Fatal(err)
		}
		defer tgt.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		if err := tgt.Send(ctx, 0); kindOf(err) != KindTimeout {
			t.Errorf("Send() to a slow server error = %v (kind %s), want kind %s", err, kindOf(err), KindTimeout)
		}
	})

	t.Run("refused connection", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		tgt, err := NewHTTP("http://"+addr+"/", HTTPConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if err := tgt.Send(t.Context(), 0); err == nil || kindOf(err) != KindTransport {
			t.Errorf("Send() to a closed port error = %v (kind %s), want kind %s", err, kindOf(err), KindTransport)
		}
	})

	t.Run("https", func(t *testing.T) {
		tsrv := httptest.NewTLSServer(mux)
		defer tsrv.Close()
		roots := x509.NewCertPool()
		roots.AddCert(tsrv.Certificate())
		tgt, err := NewHTTP(tsrv.URL+"/length", HTTPConfig{Body: body, Header: http.Header{"X-Key": {"v"}}, TLS: &tls.Config{RootCAs: roots}})
		if err != nil {
			t.Fatal(err)
		}
		defer tgt.Close()
		if err := tgt.Send(t.Context(), 0); err != nil {
			t.Errorf("Send() over TLS error = %v", err)
		}
	})

	for _, u := range []string{"", "ftp://x/", "/relative", "http://"} {
		if _, err := NewHTTP(u, HTTPConfig{}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("NewHTTP(%q) error = %v, want %v", u, err, ErrInvalidConfig)
		}
	}
	if _, err := NewHTTP(srv.URL, HTTPConfig{Header: http.Header{"X": {"a\r\nInjected: 1"}}}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewHTTP() with a line break in a header error = %v, want %v", err, ErrInvalidConfig)
	}
}
