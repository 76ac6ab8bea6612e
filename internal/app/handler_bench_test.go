package app

import (
	"log/slog"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/sim"
)

// discardWriter is a minimal http.ResponseWriter, so BenchmarkHandler
// measures the node's own work per request (middleware, API, engine,
// telemetry) without the network, the server loop or a client.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// BenchmarkHandler is POST /v1/recommendations through the node's whole
// handler chain for 200 candidates scored by the model, with telemetry at
// its defaults (1% head sampling, tail retention, 1% decision logs), at
// its minimum (no head sampling, no decision logs), and at 100% sampling.
// Its ratios are the per-request cost of telemetry; decisionstore=off
// against telemetry=default is the cost of the Parquet decision log. Besides
// ns/op it reports cpu-ns/op, the process's CPU time (user and system, every
// goroutine: the decision log's writer, GC) per request, which a machine
// shared with other work does not skew as it does elapsed time; the writer
// is given time to take what is queued before the CPU time is read, and the
// share of decisions its full queue dropped is dropped/op.
func BenchmarkHandler(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"telemetry=default", Config{}},
		{"telemetry=default,decisionstore=off", Config{DecisionStore: DecisionStoreConfig{Disabled: true}}},
		{"telemetry=minimal", Config{TraceSampleRatio: -1, DecisionLogRatio: -1}},
		{"telemetry=off", Config{TraceSampleRatio: -1, DisableTailRetention: true, DecisionLogRatio: -1, LogLevel: slog.LevelError}},
		{"telemetry=full", Config{TraceSampleRatio: 1}},
	} {
		for _, parallel := range []bool{false, true} {
			name := tc.name
			if parallel {
				name += "/parallel"
			}
			b.Run(name, func(b *testing.B) {
				cfg := tc.cfg
				cfg.Fsync, cfg.Split = "never", "ftrl=100"
				n := startNode(b, cfg)
				w := sim.NewWorld(sim.WorldConfig{Seed: 7, Users: 20000, Items: 2000})
				if err := w.Load(b.Context(), n.c); err != nil {
					b.Fatal(err)
				}
				n.Engine().Index().Refresh()
				bodies := make([]string, 1024)
				for i := range bodies {
					bodies[i] = `{"user_id":"` + w.User(i*7%len(w.Users())).ID + `","count":10,"context":{"channel":"web"}}`
				}
				h := n.Handler()
				serve := func(i int) {
					req, _ := http.NewRequest(http.MethodPost, "/v1/recommendations", strings.NewReader(bodies[i%len(bodies)]))
					req.Header.Set("Content-Type", "application/json")
					rw := &discardWriter{h: http.Header{}}
					h.ServeHTTP(rw, req)
					if rw.status != 0 && rw.status != http.StatusOK {
						b.Errorf("status %d", rw.status)
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := processCPU(b)
				if parallel {
					// Concurrent requests, as a server on GOMAXPROCS cores
					// sees them: contention shows here.
					b.RunParallel(func(pb *testing.PB) {
						for i := 0; pb.Next(); i++ {
							serve(i)
						}
					})
				} else {
					for i := 0; b.Loop(); i++ {
						serve(i)
					}
				}
				b.StopTimer()
				if n.dlog != nil {
					// The writer takes its queue every 50 ms.
					for deadline := time.Now().Add(time.Second); n.dlog.Stats().QueueLen > 0 && time.Now().Before(deadline); {
						time.Sleep(time.Millisecond)
					}
					// A writer that cannot keep up drops decisions, which
					// makes the log look cheaper than it is.
					b.ReportMetric(float64(n.dlog.Stats().DecisionsDropped)/float64(b.N), "dropped/op")
				}
				b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// processCPU is the CPU time the process has used, user and system, in
// nanoseconds.
func processCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
