package ingest

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/sightline/sightline/internal/event"
)

// BenchmarkAppend500 appends batches of 500 events with FsyncAlways, from
// one caller and from many concurrent callers (group commit coalesces them
// into one write and fsync). Event ID generation is included in the cost.
func BenchmarkAppend500(b *testing.B) {
	const batch = 500
	for _, bc := range []struct {
		name     string
		parallel int // goroutines per GOMAXPROCS; 0 = one caller
	}{
		{"serial", 0},
		{"parallel", 8},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l, err := Open(b.TempDir(), Config{Fsync: FsyncAlways})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			var seq atomic.Uint64
			newBatch := func(evs []event.Event) []event.Event {
				base := seq.Add(batch) - batch
				for i := range evs {
					evs[i].ID = "bench-" + strconv.FormatUint(base+uint64(i), 10)
				}
				return evs
			}
			b.ReportAllocs()
			if bc.parallel == 0 {
				evs := testEvents("tmpl", batch)
				for b.Loop() {
					if _, err := l.Append(context.Background(), newBatch(evs)); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(bc.parallel)
				b.RunParallel(func(pb *testing.PB) {
					evs := testEvents("tmpl", batch)
					for pb.Next() {
						if _, err := l.Append(context.Background(), newBatch(evs)); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.ReportMetric(float64(seq.Load())/b.Elapsed().Seconds(), "events/s")
		})
	}
}
