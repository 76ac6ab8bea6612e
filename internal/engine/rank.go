package engine

// ranked is a candidate index with its score, for ranking.
type ranked struct {
	score float64
	i     int
}

// before reports whether a ranks before b: higher score first, ties in
// candidate order (the order of a stable sort by descending score).
func (a ranked) before(b ranked) bool {
	if r := cmpDesc(a.score, b.score); r != 0 {
		return r < 0
	}
	return a.i < b.i
}

// ranking yields the eligible candidates of one request best first, lazily:
// an answer of Count items reads a short prefix of the order, so ranking
// sorts only that prefix instead of every candidate. The prefix is popped
// from a binary heap of the rest (O(n) to build, O(log n) per item), and
// nth finds a deep item (an explored one) by selection without extending
// the prefix. The order is the one of sorting every candidate with
// ranked.before.
type ranking struct {
	order []int    // the best candidates, best first
	heap  []ranked // the other eligible candidates, a heap with the best at 0
	sel   []ranked // scratch for nth
}

// reset ranks the candidates in rs, which ranking keeps and reorders.
func (r *ranking) reset(rs []ranked) {
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
		r.order = append(r.order, h[0].i)
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
		if c+1 < n && h[c+1].before(h[c]) {
			c++
		}
		if !h[c].before(h[k]) {
			return
		}
		h[k], h[c] = h[c], h[k]
		k = c
	}
}

// nth returns the j-th candidate (j ≥ 1) for which ok is true, in rank
// order, counting from rank from+1; false if there are fewer than j. It
// walks the sorted prefix and selects the rest from the heap, which it
// leaves as it is.
func (r *ranking) nth(from, j int, ok func(i int) bool) (int, bool) {
	for k := from + 1; k < len(r.order); k++ {
		if i := r.order[k]; ok(i) {
			if j--; j == 0 {
				return i, true
			}
		}
	}
	r.sel = r.sel[:0]
	for _, c := range r.heap {
		if ok(c.i) {
			r.sel = append(r.sel, c)
		}
	}
	if j > len(r.sel) {
		return 0, false
	}
	return selectRanked(r.sel, j-1).i, true
}

// selectRanked returns the element of rank k (0 is the best by
// ranked.before) of s, which it reorders: quickselect with a
// median-of-three pivot, expected O(len(s)).
func selectRanked(s []ranked, k int) ranked {
	lo, hi := 0, len(s)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		// The best of s[lo], s[mid], s[hi] goes to lo, the median to hi
		// as the pivot.
		if s[mid].before(s[lo]) {
			s[mid], s[lo] = s[lo], s[mid]
		}
		if s[hi].before(s[lo]) {
			s[hi], s[lo] = s[lo], s[hi]
		}
		if s[mid].before(s[hi]) {
			s[mid], s[hi] = s[hi], s[mid]
		}
		p := s[hi]
		st := lo
		for x := lo; x < hi; x++ {
			if s[x].before(p) {
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
