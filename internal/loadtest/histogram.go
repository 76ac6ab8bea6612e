package loadtest

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram layout: values are nanoseconds. Values below subCount are
// counted exactly; above, each power of two is split into subCount linear
// buckets, so a bucket's width is at most 1/subCount (0.78%) of its lower
// bound and the midpoint used for quantiles is within 0.4% of any value in
// it. The largest tracked value is maxTrackable (about 68.7 s); larger
// values count in the last bucket.
const (
	subBits      = 7
	subCount     = 1 << subBits
	maxExp       = 36
	maxTrackable = 1<<maxExp - 1
	numBuckets   = (maxExp - subBits + 1) * subCount
)

// Histogram is an HDR-style log-linear histogram of durations with about 1%
// precision from 1µs to 60s. The zero value is an empty histogram ready to
// use. All methods are safe for concurrent use; Record is lock-free.
type Histogram struct {
	counts   [numBuckets]atomic.Uint64
	count    atomic.Uint64
	sum      atomic.Uint64
	max      atomic.Int64
	minPlus1 atomic.Int64 // 0 means no value yet
}

func bucketOf(v int64) int {
	if v < subCount {
		return int(v)
	}
	if v > maxTrackable {
		v = maxTrackable
	}
	e := bits.Len64(uint64(v)) - 1
	shift := e - subBits
	return (shift+1)*subCount + int(v>>shift) - subCount
}

// bucketRange returns the lowest value of bucket i and its width.
func bucketRange(i int) (lo, width int64) {
	if i < subCount {
		return int64(i), 1
	}
	shift := i/subCount - 1
	return int64(subCount+i%subCount) << shift, 1 << shift
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(v)].Add(1)
	h.count.Add(1)
	h.sum.Add(uint64(v))
	raise(&h.max, v)
	lowerPlus1(&h.minPlus1, v+1)
}

// raise stores v in a if it is above a's value.
func raise(a *atomic.Int64, v int64) {
	for cur := a.Load(); v > cur; cur = a.Load() {
		if a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// lowerPlus1 stores v in a, a minimum plus one (0 for none yet), if a holds
// none yet or a larger one.
func lowerPlus1(a *atomic.Int64, v int64) {
	for cur := a.Load(); cur == 0 || v < cur; cur = a.Load() {
		if a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// Merge adds every value recorded in o to h. o must not be h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if n := o.counts[i].Load(); n > 0 {
			h.counts[i].Add(n)
		}
	}
	h.count.Add(o.count.Load())
	h.sum.Add(o.sum.Load())
	if v := o.max.Load(); v > 0 {
		raise(&h.max, v)
	}
	if v := o.minPlus1.Load(); v != 0 {
		lowerPlus1(&h.minPlus1, v)
	}
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.count.Load() }

// Max returns the largest recorded value, exactly (0 when empty).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Min returns the smallest recorded value, exactly (0 when empty).
func (h *Histogram) Min() time.Duration {
	if v := h.minPlus1.Load(); v > 0 {
		return time.Duration(v - 1)
	}
	return 0
}

// Mean returns the mean of the recorded values (0 when empty).
func (h *Histogram) Mean() time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Quantile returns the value below or at which a share q (0..1) of the
// recorded values lie, within the histogram's precision; it is clamped to
// the exact minimum and maximum. It returns 0 when the histogram is empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, w := bucketRange(i)
			v := lo + (w-1)/2
			return min(max(time.Duration(v), h.Min()), h.Max())
		}
	}
	return h.Max()
}

// Summary is a histogram's quantiles in milliseconds, the latency part of a
// [Report].
type Summary struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

// Summary returns the count, mean, p50, p95, p99, p99.9 and max in
// milliseconds.
func (h *Histogram) Summary() Summary {
	return Summary{
		Count: h.Count(),
		Mean:  ms(h.Mean()),
		P50:   ms(h.Quantile(0.50)),
		P95:   ms(h.Quantile(0.95)),
		P99:   ms(h.Quantile(0.99)),
		P999:  ms(h.Quantile(0.999)),
		Max:   ms(h.Max()),
	}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
