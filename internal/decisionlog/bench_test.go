package decisionlog

import (
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkRecord measures the decision log end to end: each iteration
// queues one engine record, and waits when the queue is full, so the rate
// is what the writer's goroutine decodes, converts and encodes to Parquet
// (rows/s). "caller" measures Record alone, never waiting: what serving
// pays per decision (a full queue drops).
func BenchmarkRecord(b *testing.B) {
	rc, err := newRecorder()
	if err != nil {
		b.Fatal(err)
	}
	_, rec, err := rc.decide("bench-request-0001", "alice", time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), true)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		metrics bool
		wait    bool
	}{
		{"throughput/metrics-off", false, true},
		{"throughput/metrics-on", true, true},
		{"caller/metrics-on", true, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var reg prometheus.Registerer
			if tc.metrics {
				reg = prometheus.NewRegistry()
			}
			w := newWriter(b, Config{Dir: b.TempDir(), Registerer: reg, Buffer: 4096})
			stop := start(b, w)
			b.ReportAllocs()
			for b.Loop() {
				for !w.Record(rec) && tc.wait {
					runtime.Gosched()
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			if err := stop(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
