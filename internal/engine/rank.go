package engine

import "math"

// ranked is a candidate index with its score (the discovery lists sort
// them).
type ranked struct {
	score float64
	i     int
}

// rankKey is a candidate's place in a ranking as one integer, so that
// ranking compares integers, without branches a CPU cannot predict: the
// smaller key ranks first. Its top 64-rankIndexBits bits order the score,
// highest first; its low rankIndexBits bits are the candidate's index,
// which orders ties as a stable sort by descending score does. Scores that
// agree in the top bits (to about ten significant digits) tie. NaN ranks
// after every number; -0 ranks as 0.
type rankKey uint64

// rankIndexBits is the width of a rankKey's index: a ranking holds at most
// maxRanked candidates.
const (
	rankIndexBits = 20
	maxRanked     = 1 << rankIndexBits
)

// newRankKey returns the key of candidate i, of the given score; i is
// below maxRanked.
func newRankKey(score float64, i int) rankKey {
	u := uint64(math.MaxUint64) // NaN: last
	if score == score {
		if score == 0 {
			score = 0 // -0
		}
		b := math.Float64bits(score)
		if b>>63 != 0 {
			b = ^b // negative: a larger magnitude is smaller
		} else {
			b |= 1 << 63
		}
		u = ^b // b ascends with the score; the key descends
	}
	return rankKey(u&^(maxRanked-1) | uint64(i))
}

// index returns the candidate of k.
func (k rankKey) index() int { return int(k & (maxRanked - 1)) }

// ranking yields the eligible candidates of one request best first, lazily:
// an answer of Count items reads a short prefix of the order, so ranking
// sorts only that prefix instead of every candidate. The prefix is popped
// from a binary heap of the rest (O(n) to build, O(log n) per item), and
// nth finds a deep item (an explored one) by selection without extending
// the prefix. The order is the one of sorting every candidate with
// their keys.
type ranking struct {
	order []int     // the best candidates, best first
	heap  []rankKey // the other eligible candidates, a heap with the best at 0
	sel   []rankKey // scratch for nth
}

// reset ranks the candidates of the keys rs, which ranking keeps and
// reorders.
func (r *ranking) reset(rs []rankKey) {
	r.order = r.order[:0]
	r.heap = rs
	for k := len(rs)/2 - 1; k >= 0; k-- {
		r.down(k)
	}
}

// len returns the number of eligible candidates.
func (r *ranking) len() int { return len(r.order) + len(r.heap) }

// at returns the candidate of rank k (0 is the best), and false when k is
// not below len.
func (r *ranking) at(k int) (int, bool) {
	for k >= len(r.order) {
		if len(r.heap) == 0 {
			return 0, false
		}
		h := r.heap
		r.order = append(r.order, h[0].index())
		last := len(h) - 1
		h[0] = h[last]
		r.heap = h[:last]
		r.down(0)
	}
	return r.order[k], true
}

// down restores the heap below position k.
func (r *ranking) down(k int) {
	h := r.heap
	n := len(h)
	for {
		c := 2*k + 1
		if c >= n {
			return
		}
		if c+1 < n && h[c+1] < h[c] {
			c++
		}
		if h[k] < h[c] {
			return
		}
		h[k], h[c] = h[c], h[k]
		k = c
	}
}

// nth returns the j-th candidate (j ≥ 1) that u takes, in rank
// order, counting from rank from+1; false if there are fewer than j. It
// walks the sorted prefix and selects the rest from the heap, which it
// leaves as it is.
func (r *ranking) nth(from, j int, u usable) (int, bool) {
	for k := from + 1; k < len(r.order); k++ {
		if i := r.order[k]; u.ok(i) {
			if j--; j == 0 {
				return i, true
			}
		}
	}
	r.sel = r.sel[:0]
	for _, c := range r.heap {
		if u.ok(c.index()) {
			r.sel = append(r.sel, c)
		}
	}
	if j > len(r.sel) {
		return 0, false
	}
	return selectRanked(r.sel, j-1).index(), true
}

// selectRanked returns the element of rank k (0 is the smallest key) of s,
// which it reorders: quickselect with a median-of-three pivot, expected
// O(len(s)).
func selectRanked(s []rankKey, k int) rankKey {
	lo, hi := 0, len(s)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		// The best of s[lo], s[mid], s[hi] goes to lo, the median to hi
		// as the pivot.
		if s[mid] < s[lo] {
			s[mid], s[lo] = s[lo], s[mid]
		}
		if s[hi] < s[lo] {
			s[hi], s[lo] = s[lo], s[hi]
		}
		if s[mid] < s[hi] {
			s[mid], s[hi] = s[hi], s[mid]
		}
		p := s[hi]
		st := lo
		for x := lo; x < hi; x++ {
			if s[x] < p {
				s[st], s[x] = s[x], s[st]
				st++
			}
		}
		s[st], s[hi] = s[hi], s[st]
		switch {
		case k == st:
			return s[st]
		case k < st:
			hi = st - 1
		default:
			lo = st + 1
		}
	}
	return s[k]
}
