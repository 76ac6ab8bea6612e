package model

import (
	"math"
	"sync/atomic"
)

// maxSlot is the last display position with a weight of its own
// (Config.Positions); lower positions share it.
const maxSlot = 32

// slotHash hashes the feature "slot=<k>" of the 1-based position k.
func slotHash(k int) uint64 {
	return fnvByte(fnvString(fnvOffset, "slot="), byte(k))
}

// slotState is what Config.Positions adds to a model: the coordinates of
// the position weights, how many examples each position has taught, and the
// serving offset computed from them,
//
//	offset = log Σₖ fₖ·exp(wₖ)
//
// where fₖ is the share of examples learned at position k and wₖ its
// weight: added to a score's logit (which has no position), it makes the
// score the click probability averaged over the positions items are shown
// at, so that scores stay calibrated against observed CTR. Learn maintains
// it under the model's writer mutex; Score reads the offset atomically.
type slotState struct {
	coord [maxSlot]uint64  // masked coordinate of each position's weight
	count [maxSlot]float64 // examples per position, halved when large; guarded by Model.mu
	total float64          // Σ count; guarded by Model.mu
	off   atomic.Uint64    // the offset, as float64 bits
}

// slotHalveAt is the example count at which the per-position counts are
// halved, so that the offset follows a change in where items are shown.
const slotHalveAt = 1 << 20

func (s *slotState) init(mask uint64) {
	for k := range s.coord {
		s.coord[k] = index(slotHash(k+1)) & mask
	}
}

// offset returns the serving offset. It is safe for concurrent use.
func (s *slotState) offset() float64 {
	return math.Float64frombits(s.off.Load())
}

// learned counts an example learned at position k (0-based) and recomputes
// the offset from m's current position weights. Called under m.mu.
func (s *slotState) learned(k int, m *Model) {
	s.count[k]++
	s.total++
	if s.total >= slotHalveAt {
		s.total = 0
		for j := range s.count {
			s.count[j] /= 2
			s.total += s.count[j]
		}
	}
	s.update(m)
}

// update recomputes the offset from the counts and m's weights. Called
// under m.mu, or before m is shared.
func (s *slotState) update(m *Model) {
	if s.total == 0 {
		s.off.Store(0)
		return
	}
	var sum float64
	for j, c := range s.count {
		if c > 0 {
			sum += c * math.Exp(m.weight(s.coord[j]))
		}
	}
	s.off.Store(math.Float64bits(math.Log(sum / s.total)))
}

// restored sets the counts of a model read from a snapshot, which keeps
// weights but not counts: every position that has been learned (a non-zero
// state) counts as much as any other until new examples arrive.
func (s *slotState) restored(m *Model) {
	s.total = 0
	for k := range s.coord {
		s.count[k] = 0
		if m.coords[s.coord[k]].n.Load() != 0 {
			s.count[k] = 1
			s.total++
		}
	}
	s.update(m)
}
