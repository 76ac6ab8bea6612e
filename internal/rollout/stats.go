package rollout

import (
	"math"
	"sync"
	"time"

	"github.com/sightline/sightline/internal/event"
)

// Arm is one side of the comparison.
type Arm int

// The arms of a rollout.
const (
	// Champion is the champion's users outside the challenger's share.
	Champion Arm = iota
	// Challenger is the users the challenger serves (or, in shadow, would
	// serve).
	Challenger
)

// String returns "champion" or "challenger".
func (a Arm) String() string {
	if a == Challenger {
		return "challenger"
	}
	return "champion"
}

// Decision is what a guardrail needs of one served decision.
type Decision struct {
	// Latency is the decision's duration.
	Latency time.Duration
	// Fallback reports a fallback answer (any reason).
	Fallback bool
	// NullFeature reports that a known user had a null attribute.
	NullFeature bool
	// Shown is the number of items shown and Predicted the sum of their
	// predicted click probabilities (the serving model's scores), for
	// calibration; both are zero on a fallback.
	Shown     int
	Predicted float64
}

// latBuckets are the upper bounds of the latency histogram, in
// microseconds: 64 log-spaced buckets from 50 µs to about 3.3 s.
var latBuckets = func() [64]float64 {
	var b [64]float64
	for i := range b {
		b[i] = 50 * math.Pow(2, float64(i)/4)
	}
	return b
}()

// Counts are the running totals of one arm since the challenger started
// serving. They are part of the persisted state.
type Counts struct {
	Decisions    int64   `json:"decisions"`
	Fallbacks    int64   `json:"fallbacks"`
	NullFeatures int64   `json:"null_features"`
	Shown        int64   `json:"shown"`
	Predicted    float64 `json:"predicted"`
	Impressions  int64   `json:"impressions"`
	Clicks       int64   `json:"clicks"`
	// Users estimates the distinct users served (linear counting over a
	// bitmap of hashed ids; after a restart, an upper bound: users served
	// both before and after count twice).
	Users   int64                      `json:"users"`
	Latency [len(latBuckets) + 1]int64 `json:"latency_histogram"`
}

// p99 is the 99th percentile latency from the histogram (the upper bound
// of its bucket), 0 without decisions.
func (c *Counts) p99() time.Duration {
	var n int64
	for _, v := range c.Latency {
		n += v
	}
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(0.99 * float64(n)))
	var seen int64
	for i, v := range c.Latency {
		seen += v
		if seen >= rank {
			if i == len(latBuckets) {
				return time.Duration(2*latBuckets[len(latBuckets)-1]) * time.Microsecond
			}
			return time.Duration(latBuckets[i] * float64(time.Microsecond))
		}
	}
	return 0
}

// userBits sizes the bitmap that counts an arm's distinct users: 2^20 bits
// (128 KiB) keep the linear-counting estimate within a few percent up to
// some hundred thousand users.
const userBits = 1 << 20

// arm accumulates one arm's counts. Its methods are safe for concurrent use.
type arm struct {
	mu    sync.Mutex
	c     Counts
	users []uint64 // bitmap of hashed user ids
	set   int64    // bits set in users
	base  int64    // users counted before a restart
}

func newArm() *arm { return &arm{users: make([]uint64, userBits/64)} }

// decision adds one decision of the user hashed h.
func (a *arm) decision(h uint64, d Decision) {
	us := float64(d.Latency) / float64(time.Microsecond)
	b := len(latBuckets)
	for i, ub := range latBuckets {
		if us <= ub {
			b = i
			break
		}
	}
	bit := h % userBits
	a.mu.Lock()
	defer a.mu.Unlock()
	a.c.Decisions++
	if d.Fallback {
		a.c.Fallbacks++
	}
	if d.NullFeature {
		a.c.NullFeatures++
	}
	a.c.Shown += int64(d.Shown)
	a.c.Predicted += d.Predicted
	a.c.Latency[b]++
	if w, m := bit/64, uint64(1)<<(bit%64); a.users[w]&m == 0 {
		a.users[w] |= m
		a.set++
		a.c.Users = a.base + linearCount(a.set)
	}
}

// event adds an impression or a click.
func (a *arm) event(typ event.Type) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch typ {
	case event.Impression:
		a.c.Impressions++
	case event.Click:
		a.c.Clicks++
	}
}

// counts returns a copy of the running totals.
func (a *arm) counts() Counts {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.c
}

// restore sets the totals to c (a restart); the user bitmap starts empty
// and the users counted from now on add to c.Users.
func (a *arm) restore(c Counts) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.c = c
	clear(a.users)
	a.set, a.base = 0, c.Users
}

// linearCount estimates distinct users from the bits set in the bitmap.
func linearCount(set int64) int64 {
	if set >= userBits {
		return userBits
	}
	return int64(math.Round(-userBits * math.Log(1-float64(set)/userBits)))
}
