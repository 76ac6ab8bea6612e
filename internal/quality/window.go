package quality

import (
	"math"
	"time"
)

// Defaults shared by the windowed components.
const (
	defaultWindow   = 5 * time.Minute
	defaultBuckets  = 10
	defaultHalfLife = 30 * time.Minute
)

// The names used for folded values. They cannot collide with real values
// of bounded sets because of the angle brackets (for segments, variants,
// channels and reasons, the fold target is the plain "other").
const (
	// NullValue is the distribution bin of a null (absent or empty) feature.
	NullValue = "<null>"
	// OtherValue is the distribution bin that holds the categories beyond a
	// feature's top-K.
	OtherValue = "<other>"
	// Other is the label value every bounded label set folds unknown values into.
	Other = "other"
)

// ring maps instants to the sub-buckets of a sliding window: bucket ids are
// now/width, and a window holds the n newest ids.
type ring struct {
	width int64 // nanoseconds
	n     int
}

func newRing(window time.Duration, buckets int) ring {
	if window <= 0 {
		window = defaultWindow
	}
	if buckets <= 0 {
		buckets = defaultBuckets
	}
	w := int64(window) / int64(buckets)
	return ring{width: max(w, 1), n: buckets}
}

// id returns the bucket id of now and its slot in a slice of n buckets.
func (r ring) id(now time.Time) (id int64, slot int) {
	id = now.UnixNano() / r.width
	slot = int(id % int64(r.n))
	if slot < 0 {
		slot += r.n
	}
	return id, slot
}

// live reports whether a bucket with id b is inside the window ending at cur.
func (r ring) live(b, cur int64) bool { return b <= cur && b > cur-int64(r.n) }

// window returns the span the ring covers.
func (r ring) window() time.Duration { return time.Duration(r.width * int64(r.n)) }

// index builds a lookup from a bounded label set; unknown values map to
// len(values), the "other" slot. Duplicates and "other" itself are dropped.
func index(values []string) ([]string, map[string]int) {
	m := make(map[string]int, len(values)+1)
	out := make([]string, 0, len(values)+1)
	for _, v := range values {
		if _, ok := m[v]; ok || v == Other || v == "" {
			continue
		}
		m[v] = len(out)
		out = append(out, v)
	}
	m[Other] = len(out)
	return append(out, Other), m
}

// fold returns the slot of v in a bounded label set built by index.
func fold(m map[string]int, v string) int {
	if i, ok := m[v]; ok {
		return i
	}
	return len(m) - 1
}

// ema moves base towards x with the weight of dt at the given half-life.
func ema(base, x float64, dt, halfLife time.Duration) float64 {
	alpha := 1 - math.Exp(-math.Ln2*float64(dt)/float64(halfLife))
	return base + min(alpha, 1)*(x-base)
}
