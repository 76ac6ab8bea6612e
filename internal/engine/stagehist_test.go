package engine

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestStageHistograms: the sharded stage histograms expose what one
// client_golang histogram per stage with the same buckets would, for
// observations made from many goroutines at once, bucket bounds included,
// and every stage's series exists before its first observation.
func TestStageHistograms(t *testing.T) {
	h := newStageHistograms()
	ref := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sightline_stage_duration_seconds", Help: "Time spent in each decision stage.", Buckets: latencyBuckets[:],
	}, []string{"stage"})
	got, want := prometheus.NewPedanticRegistry(), prometheus.NewPedanticRegistry()
	got.MustRegister(h)
	want.MustRegister(ref)
	for _, name := range stageNames {
		ref.WithLabelValues(name) // present from the start, as h's are
	}
	durations := []time.Duration{0, time.Nanosecond, 100 * time.Microsecond, 100*time.Microsecond + 1, 999 * time.Microsecond,
		time.Millisecond, 3 * time.Millisecond, 42 * time.Millisecond, time.Second, time.Second + 1, time.Minute}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for k := range 500 {
				st := (g + k) % (len(stageNames) - 1) // the last stage stays empty
				d := durations[(g*7+k)%len(durations)]
				h.observe(st, d)
				ref.WithLabelValues(stageNames[st]).Observe(d.Seconds())
			}
		})
	}
	wg.Wait()
	gm, err := got.Gather()
	if err != nil {
		t.Fatalf("gather the sharded histograms: %v", err)
	}
	wm, err := want.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(gm) != 1 || len(wm) != 1 {
		t.Fatalf("families: got %d, want %d (1)", len(gm), len(wm))
	}
	if gm[0].GetName() != wm[0].GetName() || gm[0].GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("family %s of type %v, want %s histogram", gm[0].GetName(), gm[0].GetType(), wm[0].GetName())
	}
	gs, ws := gm[0].GetMetric(), wm[0].GetMetric()
	if len(gs) != len(stageNames) || len(ws) != len(stageNames) {
		t.Fatalf("series: got %d, want %d", len(gs), len(stageNames))
	}
	for i := range ws {
		g, w := gs[i], ws[i]
		if g.GetLabel()[0].GetValue() != w.GetLabel()[0].GetValue() {
			t.Fatalf("series %d: stage %s, want %s", i, g.GetLabel()[0].GetValue(), w.GetLabel()[0].GetValue())
		}
		stage := w.GetLabel()[0].GetValue()
		gh, wh := g.GetHistogram(), w.GetHistogram()
		if gh.GetSampleCount() != wh.GetSampleCount() || math.Abs(gh.GetSampleSum()-wh.GetSampleSum()) > 1e-6 {
			t.Errorf("%s: count %d, sum %g; want %d, %g", stage, gh.GetSampleCount(), gh.GetSampleSum(), wh.GetSampleCount(), wh.GetSampleSum())
		}
		if len(gh.GetBucket()) != len(wh.GetBucket()) {
			t.Fatalf("%s: %d buckets, want %d", stage, len(gh.GetBucket()), len(wh.GetBucket()))
		}
		for j, wb := range wh.GetBucket() {
			gb := gh.GetBucket()[j]
			if gb.GetUpperBound() != wb.GetUpperBound() || gb.GetCumulativeCount() != wb.GetCumulativeCount() {
				t.Errorf("%s: bucket le=%g holds %d, want le=%g holding %d", stage, gb.GetUpperBound(), gb.GetCumulativeCount(), wb.GetUpperBound(), wb.GetCumulativeCount())
			}
		}
	}
}

// BenchmarkStageObserve is four stage observations, as a request makes,
// from every P at once: sharded, and into client_golang histograms.
func BenchmarkStageObserve(b *testing.B) {
	b.Run("sharded", func(b *testing.B) {
		h := newStageHistograms()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				for st := range stageNames {
					h.observe(st, 150*time.Microsecond)
				}
			}
		})
	})
	b.Run("client_golang", func(b *testing.B) {
		vec := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "x", Buckets: latencyBuckets[:]}, []string{"stage"})
		var obs [len(stageNames)]prometheus.Observer
		for i, name := range stageNames {
			obs[i] = vec.WithLabelValues(name)
		}
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				for _, o := range obs {
					o.Observe(150e-6)
				}
			}
		})
	})
}
