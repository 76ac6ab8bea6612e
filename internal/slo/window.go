package slo

import "time"

// counts are the good and bad events of one bucket or window.
type counts struct{ good, bad int64 }

func (c counts) total() int64 { return c.good + c.bad }

func (c *counts) add(o counts) { c.good += o.good; c.bad += o.bad }

// ring holds event counts in fixed-width time buckets, the newest span of
// them, indexed by absolute bucket number (Unix time / width). A window
// sum reads the buckets of the window's end and the ones before it, so a
// window of w covers between w-width and w of time: the width is a small
// fraction of the shortest window read. Not safe for concurrent use.
type ring struct {
	width int64 // ns
	b     []counts
	head  int64 // newest bucket number cleared for writing
	init  bool
}

// newRing returns a ring of buckets of width covering at least span.
func newRing(width, span time.Duration) *ring {
	return &ring{width: int64(width), b: make([]counts, int(span/width)+1)}
}

func (r *ring) bucket(t time.Time) int64 {
	ns := t.UnixNano()
	i := ns / r.width
	if ns < 0 && ns%r.width != 0 {
		i-- // floor, for times before 1970
	}
	return i
}

func (r *ring) slot(i int64) *counts {
	n := int64(len(r.b))
	return &r.b[((i%n)+n)%n]
}

// add counts c at t. Counts older than the ring's span are dropped.
func (r *ring) add(t time.Time, c counts) {
	i := r.bucket(t)
	n := int64(len(r.b))
	switch {
	case !r.init:
		r.head, r.init = i, true
	case i > r.head:
		if i-r.head >= n {
			clear(r.b)
		} else {
			for j := r.head + 1; j <= i; j++ {
				*r.slot(j) = counts{}
			}
		}
		r.head = i
	case i <= r.head-n:
		return // the clock went back past the span
	}
	r.slot(i).add(c)
}

// sum returns the counts of the window of length w ending at t: the
// w/width buckets up to and including t's.
func (r *ring) sum(t time.Time, w time.Duration) counts {
	var out counts
	if !r.init {
		return out
	}
	i := r.bucket(t)
	k := max(int64(w)/r.width, 1)
	lo := max(i-k+1, r.head-int64(len(r.b))+1)
	hi := min(i, r.head)
	for j := lo; j <= hi; j++ {
		out.add(*r.slot(j))
	}
	return out
}
