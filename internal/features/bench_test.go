package features

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sightline/sightline/internal/event"
)

var (
	benchAges     = []string{"", "18-24", "25-34", "35-44", "45-54", "55+"}
	benchSegments = []string{"sports", "news", "fashion", "tech", "home"}
	benchRegions  = []string{"eu", "us", "apac", "latam"}
	benchDevices  = []string{"ios", "android", "web"}
)

func benchUser(i int) event.User {
	return event.User{
		ID:        fmt.Sprintf("user-%07d", i),
		AgeBucket: benchAges[i%len(benchAges)],
		Segment:   benchSegments[i%len(benchSegments)],
		Region:    benchRegions[i%len(benchRegions)],
		Device:    benchDevices[i%len(benchDevices)],
		UpdatedAt: t0,
	}
}

// benchStore returns a store with users profiles, 1,000 items in 20
// categories, and activity for every fourth user.
func benchStore(b *testing.B, users int, reg prometheus.Registerer) (*Memory, []string) {
	b.Helper()
	m := newTestMemory(b, Config{Registerer: reg})
	for i := range 1000 {
		if err := m.PutItem(b.Context(), event.Item{ID: fmt.Sprintf("item-%d", i), Category: fmt.Sprintf("cat-%d", i%20)}); err != nil {
			b.Fatal(err)
		}
	}
	ids := make([]string, users)
	for i := range users {
		u := benchUser(i)
		ids[i] = u.ID
		if err := m.PutUser(b.Context(), u); err != nil {
			b.Fatal(err)
		}
		if i%4 == 0 {
			for j := range 30 {
				apply(m, click(u.ID, fmt.Sprintf("item-%d", (i+j*37)%1000)))
			}
		}
	}
	return m, ids
}

func BenchmarkUser(b *testing.B) {
	for _, tel := range []struct {
		name string
		reg  prometheus.Registerer
	}{{"telemetry=off", nil}, {"telemetry=on", prometheus.NewRegistry()}} {
		b.Run(tel.name, func(b *testing.B) {
			m, ids := benchStore(b, 10000, tel.reg)
			ctx := b.Context()
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				if _, ok, _ := m.User(ctx, ids[i%len(ids)]); !ok {
					b.Fatal("unknown user")
				}
				i++
			}
		})
	}
	b.Run("parallel", func(b *testing.B) {
		m, ids := benchStore(b, 10000, prometheus.NewRegistry())
		ctx := b.Context()
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, _, err := m.User(ctx, ids[i%len(ids)]); err != nil {
					b.Error(err)
					return
				}
				i += 7
			}
		})
	})
}

func BenchmarkActivity(b *testing.B) {
	m, ids := benchStore(b, 10000, nil)
	ctx := b.Context()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Activity(ctx, ids[(i*4)%len(ids)]); err != nil { // users with full activity
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkApply(b *testing.B) {
	m, ids := benchStore(b, 10000, nil)
	evs := make([]*event.Event, 4096)
	for i := range evs {
		evs[i] = click(ids[(i*13)%len(ids)], fmt.Sprintf("item-%d", (i*31)%1000))
	}
	ctx := b.Context()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		k := i % len(evs)
		if err := m.Apply(ctx, evs[k:k+1]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkApplyParallel(b *testing.B) {
	m, ids := benchStore(b, 10000, nil)
	evs := make([]*event.Event, 4096)
	for i := range evs {
		evs[i] = click(ids[(i*13)%len(ids)], fmt.Sprintf("item-%d", (i*31)%1000))
	}
	ctx := b.Context()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			k := i % len(evs)
			if err := m.Apply(ctx, evs[k:k+1]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkFootprint reports the heap bytes per user of a store of 200,000
// profiles, a quarter of them with 30 clicks of activity (the default lists
// hold 20 + 5 + 50 entries), and the time to snapshot it.
func BenchmarkFootprint(b *testing.B) {
	const users = 200_000
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	for b.Loop() {
		before := heap()
		m, _ := benchStore(b, users, nil) // the returned ids are garbage before the second GC
		after := heap()
		b.ReportMetric(float64(after-before)/users, "heap-bytes/user")
		start := time.Now()
		if err := m.WriteSnapshot(discard{}, 0); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "snapshot-s")
		runtime.KeepAlive(m)
	}
}
