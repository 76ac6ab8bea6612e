package decisionlog

import (
	"fmt"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sightline/sightline/internal/engine"
)

// BenchmarkRecord measures the decision log end to end: each iteration
// queues one engine record, and sleeps when the queue is full, so the rate
// is what the writer's goroutine decodes, converts and encodes to Parquet
// (rows/s), and cpu-ns/record what that costs. "caller" measures Record alone, never waiting: what serving
// pays per decision (a full queue drops). The decisions are a node's
// default: 10 items shown, a pool of 20, distinct request ids.
func BenchmarkRecord(b *testing.B) {
	recs := benchRecords(b)
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
			w := newWriter(b, Config{Dir: b.TempDir(), Registerer: reg, Buffer: DefaultBuffer})
			stop := start(b, w)
			b.ReportAllocs()
			cpu0 := processCPU(b)
			for i := 0; b.Loop(); i++ {
				for !w.Record(recs[i%len(recs)]) && tc.wait {
					time.Sleep(time.Millisecond) // the queue is full
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			if err := stop(); err != nil {
				b.Fatal(err)
			}
			// The writer's CPU and the caller's: on a shared machine the
			// rate depends on what else runs, this much less.
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/record")
		})
	}
}

// BenchmarkDecisionsEncoder measures the decisions files' encoder alone,
// on the writer's goroutine's path without the queue: decode a node's
// record (10 items, a pool of 20), append it to the columns, cut, compress
// and write pages (to io.Discard) and row groups.
func BenchmarkDecisionsEncoder(b *testing.B) {
	recs := benchRecords(b)
	tmpl, err := decisionsTemplate()
	if err != nil {
		b.Fatal(err)
	}
	e := newDecisionsFile(io.Discard, tmpl, DefaultRowGroupRows, 0)
	var dec engine.RecordDecoder
	b.ReportAllocs()
	cpu0 := processCPU(b)
	for i := 0; b.Loop(); i++ {
		d, x, feats, err := dec.DecodeFlat(recs[i%len(recs)])
		if err != nil {
			b.Fatal(err)
		}
		if err := e.add(d, x, feats, "local"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// benchRecords returns 64 records of a node's decisions: 10 items shown, a
// pool of 20, distinct request ids.
func benchRecords(b *testing.B) [][]byte {
	rc, err := newRecorderSized(10, 20)
	if err != nil {
		b.Fatal(err)
	}
	recs := make([][]byte, 64)
	for i := range recs {
		_, rec, err := rc.decide(fmt.Sprintf("bench-request-%04d", i), []string{"alice", "newbie"}[i%2], time.Date(2026, 3, 1, 10, 0, i, 0, time.UTC), i%4 == 0)
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = rec
	}
	return recs
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
