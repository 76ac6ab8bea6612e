package sim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/event"
)

// smallWorld is shared by the traffic tests.
var smallWorld = sync.OnceValue(func() *World { return NewWorld(WorldConfig{Seed: 3, Users: 5000, Items: 1000}) })

// memClient returns a client that reaches h in memory.
func memClient(t *testing.T, h http.Handler) *client.Client {
	t.Helper()
	c, err := client.New("http://sightline.test", client.WithHTTPClient(&http.Client{Transport: memTransport{h}}))
	if err != nil {
		t.Fatalf("client.New() = %v", err)
	}
	return c
}

// runFor runs tr for d and returns its report.
func runFor(t *testing.T, tr *Traffic, d time.Duration) TrafficReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	if err := tr.Run(ctx); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	return tr.Report()
}

func newTraffic(t *testing.T, w *World, c *client.Client, cfg TrafficConfig) *Traffic {
	t.Helper()
	tr, err := NewTraffic(w, c, cfg)
	if err != nil {
		t.Fatalf("NewTraffic(%+v) = %v", cfg, err)
	}
	return tr
}

// checkAccounting verifies that every generated event is accounted for.
func checkAccounting(t *testing.T, rep TrafficReport) {
	t.Helper()
	gen := rep.Impressions + rep.Clicks
	acc := rep.EventsAccepted + rep.EventsRejected + rep.EventsFailed + rep.EventsOverflow
	if gen != acc {
		t.Errorf("impressions+clicks = %d, accepted+rejected+failed+overflow = %d, want equal (report %+v)", gen, acc, rep)
	}
	if got := rep.Requests + rep.Dropped; got != rep.Arrivals {
		t.Errorf("requests+dropped = %d, want arrivals %d", got, rep.Arrivals)
	}
}

func TestTrafficRate(t *testing.T) {
	tests := []struct {
		rate  float64
		count int
	}{{5, 10}, {100, 10}, {2000, 2}}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.rate), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				node := newFakeNode(smallWorld())
				node.recLatency = 2 * time.Millisecond
				tr := newTraffic(t, smallWorld(), memClient(t, node), TrafficConfig{Rate: tt.rate, Count: tt.count, Seed: 1})
				const d = 2 * time.Second
				rep := runFor(t, tr, d)
				want := tt.rate * d.Seconds()
				// The tick at the deadline races with it: allow one tick.
				tol := max(1, tt.rate*0.01)
				if math.Abs(float64(rep.Arrivals)-want) > tol {
					t.Errorf("Arrivals after %v at rate %v = %d, want %v±%v", d, tt.rate, rep.Arrivals, want, tol)
				}
				if rep.Dropped != 0 || rep.Errors != 0 {
					t.Errorf("Dropped, Errors = %d, %d, want 0, 0", rep.Dropped, rep.Errors)
				}
				checkAccounting(t, rep)
			})
		})
	}
}

func TestTrafficEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := smallWorld()
		node := newFakeNode(w)
		node.recLatency = 5 * time.Millisecond
		// No timed flushes: batches fill, and only the final flush can
		// deliver the tail.
		cfg := TrafficConfig{Rate: 200, Seed: 2, EventBatch: 100, EventFlush: time.Hour}
		tr := newTraffic(t, w, memClient(t, node), cfg)
		rep := runFor(t, tr, 3*time.Second)

		// Run has returned: every event must already be at the node.
		node.mu.Lock()
		defer node.mu.Unlock()
		if len(node.badEvents) > 0 {
			t.Fatalf("node rejected %d events, first: %s", len(node.badEvents), node.badEvents[0])
		}
		ok := rep.Requests - rep.Errors - rep.Canceled
		if rep.Errors != 0 || ok < 590 {
			t.Fatalf("report %+v: want no errors and ≥ 590 answered requests", rep)
		}
		checkAccounting(t, rep)
		if rep.EventsOverflow != 0 || rep.EventsFailed != 0 {
			t.Errorf("EventsOverflow, EventsFailed = %d, %d, want 0, 0", rep.EventsOverflow, rep.EventsFailed)
		}

		ids := map[string]bool{}
		impressions := map[string][]string{} // request id → items in order
		var clicks int64
		for _, ev := range node.events {
			if ids[ev.ID] {
				t.Fatalf("event id %q sent twice", ev.ID)
			}
			ids[ev.ID] = true
			if _, known := w.UserIndex(ev.UserID); !known || !slices.Contains(Channels, ev.Channel) || ev.RequestID == "" {
				t.Fatalf("event %+v: want a world user, a known channel and a request id", ev)
			}
			switch ev.Type {
			case event.Impression:
				impressions[ev.RequestID] = append(impressions[ev.RequestID], ev.ItemID)
			case event.Click:
				clicks++
				if !slices.Contains(impressions[ev.RequestID], ev.ItemID) || ev.DwellMS <= 0 {
					t.Errorf("click %+v: want a preceding impression and a dwell time", ev)
				}
			default:
				t.Errorf("event type %v, want impression or click", ev.Type)
			}
		}
		if got := int64(len(impressions)); got != ok {
			t.Errorf("requests with impressions = %d, want answered requests %d", got, ok)
		}
		var shown int64
		for rid, items := range impressions {
			if diff := cmp.Diff(node.shown[rid], items); diff != "" {
				t.Errorf("impressions of %s differ from the items returned (-returned +impressions):\n%s", rid, diff)
			}
			shown += int64(len(items))
		}
		if rep.Impressions != shown || rep.Clicks != clicks {
			t.Errorf("report Impressions, Clicks = %d, %d, want %d, %d as received", rep.Impressions, rep.Clicks, shown, clicks)
		}
		if ctr := rep.CTR(); clicks == 0 || ctr > 0.2 {
			t.Errorf("CTR() = %v with %d clicks, want a small positive CTR", ctr, clicks)
		}

		for i, n := range node.batches {
			if n != cfg.EventBatch && i != len(node.batches)-1 {
				t.Errorf("batch %d of %d has %d events, want %d (only the last may be partial)", i, len(node.batches), n, cfg.EventBatch)
			}
		}

		var vReq, vImp int64
		for _, name := range []string{"ftrl", "popularity"} {
			v, found := rep.Variants[name]
			if !found || v.Requests == 0 || v.ExpectedCTR <= 0 {
				t.Errorf("Variants[%q] = %+v, want requests and an expected CTR", name, v)
			}
			vReq += v.Requests
			vImp += v.Impressions
		}
		if vReq != ok || vImp != rep.Impressions {
			t.Errorf("variant requests, impressions = %d, %d, want %d, %d", vReq, vImp, ok, rep.Impressions)
		}
		if want := ok / 5; math.Abs(float64(rep.Fallbacks-want)) > 2 {
			t.Errorf("Fallbacks = %d, want %d±2", rep.Fallbacks, want)
		}
		if rep.Elapsed != 3*time.Second {
			t.Errorf("Elapsed = %v, want 3s (fake clock)", rep.Elapsed)
		}
		if rep.LatencyP50 != 5*time.Millisecond || rep.LatencyP99 != 5*time.Millisecond {
			t.Errorf("LatencyP50, LatencyP99 = %v, %v, want 5ms, 5ms (fake clock)", rep.LatencyP50, rep.LatencyP99)
		}
		if rep.OracleCTR <= rep.CTR() {
			t.Errorf("OracleCTR = %v, want above the CTR of arbitrary items %v", rep.OracleCTR, rep.CTR())
		}
	})
}

func TestTrafficFlushInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		node := newFakeNode(smallWorld())
		// ~90 events/s against batches of 500: only the timer sends. Ticks
		// at .23s, .46s, .69s, .92s never coincide with arrivals (every .1s).
		cfg := TrafficConfig{Rate: 10, Seed: 7, EventFlush: 230 * time.Millisecond}
		tr := newTraffic(t, smallWorld(), memClient(t, node), cfg)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- tr.Run(ctx) }()

		time.Sleep(950 * time.Millisecond)
		synctest.Wait()
		node.mu.Lock()
		batches, sent := len(node.batches), len(node.events)
		node.mu.Unlock()
		rep := tr.Report()
		if batches != 4 {
			t.Errorf("batches after 0.95s with EventFlush 230ms = %d, want 4", batches)
		}
		if got := rep.Impressions + rep.Clicks; int64(sent) != got {
			t.Errorf("events at the node after the last flush = %d, want all %d generated", sent, got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
	})
}

func TestTrafficDropsAtMaxInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		node := newFakeNode(smallWorld())
		node.recLatency = time.Second
		const maxIn = 8
		tr := newTraffic(t, smallWorld(), memClient(t, node), TrafficConfig{Rate: 100, MaxInFlight: maxIn, Seed: 4})
		rep := runFor(t, tr, 3500*time.Millisecond)
		checkAccounting(t, rep)
		node.mu.Lock()
		defer node.mu.Unlock()
		if node.maxFlight != maxIn {
			t.Errorf("max concurrent requests at the node = %d, want %d", node.maxFlight, maxIn)
		}
		// Each slot serves one request a second: 4 rounds of 8 at most.
		if rep.Requests > 4*maxIn || rep.Dropped < rep.Arrivals-4*maxIn {
			t.Errorf("Requests, Dropped = %d, %d of %d arrivals, want ≤ %d requests, the rest dropped",
				rep.Requests, rep.Dropped, rep.Arrivals, 4*maxIn)
		}
		if rep.Canceled != maxIn {
			t.Errorf("Canceled = %d, want %d (the requests in flight at the end)", rep.Canceled, maxIn)
		}
	})
}

func TestTrafficEventFailures(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		latency   time.Duration
		buffer    int
		wantFail  bool
		wantOverf bool
	}{
		{name: "server error", status: http.StatusServiceUnavailable, wantFail: true},
		{name: "slow server overflows buffer", latency: time.Second, buffer: 50, wantOverf: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				node := newFakeNode(smallWorld())
				node.evStatus, node.evLatency = tt.status, tt.latency
				cfg := TrafficConfig{Rate: 50, Seed: 5, EventBatch: 10, EventBuffer: tt.buffer, SendTimeout: 20 * time.Second}
				rep := runFor(t, newTraffic(t, smallWorld(), memClient(t, node), cfg), 2*time.Second)
				checkAccounting(t, rep)
				if got := rep.EventsFailed > 0; got != tt.wantFail {
					t.Errorf("EventsFailed = %d, want > 0: %v", rep.EventsFailed, tt.wantFail)
				}
				if got := rep.EventsOverflow > 0; got != tt.wantOverf {
					t.Errorf("EventsOverflow = %d, want > 0: %v", rep.EventsOverflow, tt.wantOverf)
				}
				if rep.Errors != 0 {
					t.Errorf("Errors = %d, want 0: event failures are not request errors", rep.Errors)
				}
			})
		})
	}
}

// TestTrafficDeterministic checks that a seed reproduces the users,
// channels and clicks when the node answers the same way.
func TestTrafficDeterministic(t *testing.T) {
	run := func() []string {
		var out []string
		synctest.Test(t, func(t *testing.T) {
			node := newFakeNode(smallWorld())
			node.recLatency = time.Millisecond // one request in flight at a time
			tr := newTraffic(t, smallWorld(), memClient(t, node), TrafficConfig{Rate: 100, Seed: 9})
			runFor(t, tr, 2*time.Second)
			for _, ev := range node.events {
				out = append(out, fmt.Sprintf("%s %s %s %s %v %d", ev.RequestID, ev.UserID, ev.ItemID, ev.Channel, ev.Type, ev.DwellMS))
			}
		})
		return out
	}
	a, b := run(), run()
	if len(a) == 0 {
		t.Fatal("no events sent")
	}
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("two runs with the same seed differ (-first +second):\n%s", diff)
	}
}

// TestTrafficRealServer runs briefly against a real HTTP server.
func TestTrafficRealServer(t *testing.T) {
	w := smallWorld()
	node := newFakeNode(w)
	srv := httptest.NewServer(node)
	defer srv.Close()
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatalf("client.New(%q) = %v", srv.URL, err)
	}
	defer c.CloseIdleConnections()
	tr := newTraffic(t, w, c, TrafficConfig{Rate: 50, Seed: 6, EventFlush: 50 * time.Millisecond})
	const d = 1200 * time.Millisecond
	rep := runFor(t, tr, d)
	if want := 50 * d.Seconds(); float64(rep.Arrivals) < 0.8*want || float64(rep.Arrivals) > want+1 {
		t.Errorf("Arrivals = %d in %v at 50/s, want about %v", rep.Arrivals, d, want)
	}
	checkAccounting(t, rep)
	node.mu.Lock()
	received := int64(len(node.events))
	node.mu.Unlock()
	if rep.Errors != 0 || received != rep.Impressions+rep.Clicks || received == 0 {
		t.Errorf("report %+v, node received %d events: want no errors and every event delivered", rep, received)
	}
	if rep.LatencyP50 <= 0 || rep.LatencyP99 < rep.LatencyP50 {
		t.Errorf("LatencyP50, LatencyP99 = %v, %v, want 0 < p50 ≤ p99", rep.LatencyP50, rep.LatencyP99)
	}
}

func TestNewTrafficInvalid(t *testing.T) {
	c := memClient(t, http.NotFoundHandler())
	tests := []TrafficConfig{
		{Rate: -1},
		{Rate: math.NaN()},
		{Rate: math.Inf(1)},
		{Count: 101},
		{MaxInFlight: -1},
		{EventFlush: -time.Second},
	}
	for _, cfg := range tests {
		if _, err := NewTraffic(smallWorld(), c, cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("NewTraffic(%+v) error = %v, want %v", cfg, err, ErrInvalidConfig)
		}
	}
	if _, err := NewTraffic(nil, c, TrafficConfig{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewTraffic(nil world) error = %v, want %v", err, ErrInvalidConfig)
	}
}

func TestTrafficRunTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		node := newFakeNode(smallWorld())
		tr := newTraffic(t, smallWorld(), memClient(t, node), TrafficConfig{Rate: 10})
		runFor(t, tr, 200*time.Millisecond)
		if err := tr.Run(t.Context()); !errors.Is(err, ErrAlreadyRun) {
			t.Errorf("second Run() = %v, want %v", err, ErrAlreadyRun)
		}
	})
}

func TestLoad(t *testing.T) {
	w := NewWorld(WorldConfig{Seed: 10, Users: 2000, Items: 300})
	tests := []struct {
		name     string
		rejectAt int
		handler  func(*fakeNode) http.Handler
		wantErr  error
		wantMsg  string
	}{
		{name: "ok", handler: func(f *fakeNode) http.Handler { return f }},
		{name: "rejected line", rejectAt: 3, handler: func(f *fakeNode) http.Handler { return f }, wantErr: ErrImportRejected},
		{name: "server refuses early", handler: func(*fakeNode) http.Handler {
			return http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
				http.Error(rw, "no", http.StatusServiceUnavailable)
			})
		}, wantMsg: "503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := newFakeNode(w)
			node.rejectAt = tt.rejectAt
			srv := httptest.NewServer(tt.handler(node))
			defer srv.Close()
			c, err := client.New(srv.URL)
			if err != nil {
				t.Fatalf("client.New(%q) = %v", srv.URL, err)
			}
			defer c.CloseIdleConnections()
			err = w.Load(t.Context(), c)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Load() = %v, want %v", err, tt.wantErr)
				}
			case tt.wantMsg != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("Load() = %v, want an error mentioning %q", err, tt.wantMsg)
				}
			default:
				if err != nil {
					t.Fatalf("Load() = %v, want nil", err)
				}
				want := map[string]int{"/v1/items:import": 300, "/v1/users:import": 2000}
				node.mu.Lock()
				defer node.mu.Unlock()
				if diff := cmp.Diff(want, node.imported); diff != "" {
					t.Errorf("Load() imported (-want +got):\n%s", diff)
				}
			}
		})
	}
}
