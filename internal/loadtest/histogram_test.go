package loadtest

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var quantiles = []float64{0.5, 0.9, 0.95, 0.99, 0.999, 1}

func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := max(int(math.Ceil(q*float64(len(sorted)))), 1)
	return sorted[rank-1]
}

func TestHistogramQuantilesMatchExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		gen  func(i int) time.Duration
	}{
		{"uniform 1µs..100ms", func(int) time.Duration {
			return time.Microsecond + time.Duration(r.Int64N(int64(100*time.Millisecond)))
		}},
		{"lognormal around 1ms", func(int) time.Duration {
			return time.Duration(math.Exp(r.NormFloat64()*1.5) * float64(time.Millisecond))
		}},
		{"bimodal 200µs and 30s", func(i int) time.Duration {
			if i%100 == 0 {
				return 30*time.Second + time.Duration(r.Int64N(int64(time.Second)))
			}
			return 200*time.Microsecond + time.Duration(r.Int64N(50_000))
		}},
		{"sequence 1..100000µs", func(i int) time.Duration { return time.Duration(i+1) * time.Microsecond }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			vals := make([]time.Duration, 100_000)
			for i := range vals {
				vals[i] = tt.gen(i)
				h.Record(vals[i])
			}
			slices.Sort(vals)
			for _, q := range quantiles {
				got, want := h.Quantile(q), exactQuantile(vals, q)
				if rel := math.Abs(float64(got-want)) / float64(want); rel > 0.01 {
					t.Errorf("Quantile(%v) = %v, want %v (±1%%), off by %.2f%%", q, got, want, rel*100)
				}
			}
			if got, want := h.Count(), uint64(len(vals)); got != want {
				t.Errorf("Count() = %v, want %v", got, want)
			}
			if got, want := h.Max(), vals[len(vals)-1]; got != want {
				t.Errorf("Max() = %v, want %v", got, want)
			}
			if got, want := h.Min(), vals[0]; got != want {
				t.Errorf("Min() = %v, want %v", got, want)
			}
		})
	}
}

func TestHistogramSmallValuesExact(t *testing.T) {
	var h Histogram
	for v := range 128 {
		h.Record(time.Duration(v))
	}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 63}, {0.01, 1}, {1, 127}} {
		if got := h.Quantile(tt.q); got != tt.want {
			t.Errorf("Quantile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
}

func TestHistogramBuckets(t *testing.T) {
	// Every value falls in the bucket whose range contains it, and bucket
	// widths stay within 1/128 of their lower bound.
	for _, v := range []int64{0, 1, 127, 128, 255, 256, 257, 1000, 1 << 20, 123456789, maxTrackable} {
		i := bucketOf(v)
		lo, w := bucketRange(i)
		if v < lo || v >= lo+w {
			t.Errorf("bucketOf(%d) = %d with range [%d, %d), want it to contain the value", v, i, lo, lo+w)
		}
		if lo >= subCount && float64(w)/float64(lo) > 1.0/subCount {
			t.Errorf("bucketRange(%d) width %d over %d, want ≤ 1/%d", i, w, lo, subCount)
		}
	}
	if got, want := bucketOf(math.MaxInt64), numBuckets-1; got != want {
		t.Errorf("bucketOf(MaxInt64) = %d, want %d (clamped)", got, want)
	}
}

func TestHistogramEmpty(t *testing.T) {
	var h Histogram
	if diff := cmp.Diff(Summary{}, h.Summary()); diff != "" {
		t.Errorf("empty Summary() mismatch (-want +got):\n%s", diff)
	}
}

func TestHistogramMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var a, b, all Histogram
	for i := range 50_000 {
		v := time.Duration(r.ExpFloat64() * float64(2*time.Millisecond))
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	var merged Histogram
	merged.Merge(&a)
	merged.Merge(&b)
	if diff := cmp.Diff(all.Summary(), merged.Summary()); diff != "" {
		t.Errorf("Merge(a, b).Summary() mismatch with one histogram of all values (-want +got):\n%s", diff)
	}
	for i := range all.counts {
		if got, want := merged.counts[i].Load(), all.counts[i].Load(); got != want {
			t.Fatalf("merged bucket %d = %d, want %d", i, got, want)
		}
	}
	if got, want := merged.Min(), all.Min(); got != want {
		t.Errorf("merged Min() = %v, want %v", got, want)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	vals := make([]time.Duration, 1024)
	r := rand.New(rand.NewPCG(5, 6))
	for i := range vals {
		vals[i] = time.Duration(r.ExpFloat64() * float64(time.Millisecond))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		h.Record(vals[i&1023])
		i++
	}
}

func BenchmarkHistogramRecordParallel(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		v := time.Duration(0)
		for pb.Next() {
			v += 997
			h.Record(v % (50 * time.Millisecond))
		}
	})
}
