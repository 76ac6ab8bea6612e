package quality

import (
	"math"
	"slices"
	"time"
)

// DefaultEpsilon is the proportion given to a bin that is empty on one side
// of a PSI comparison, so that a category that appears or vanishes adds a
// large but finite term.
const DefaultEpsilon = 1e-4

// Distribution is the observed distribution of one feature: how many
// samples had each value. Nulls count under [NullValue] and the categories
// beyond the top-K under [OtherValue].
type Distribution struct {
	Samples int64            `json:"samples"`
	Counts  map[string]int64 `json:"counts"`
}

// NullRatio returns the share of null samples, or 0 for an empty distribution.
func (d Distribution) NullRatio() float64 {
	if d.Samples <= 0 {
		return 0
	}
	return float64(d.Counts[NullValue]) / float64(d.Samples)
}

func (d Distribution) clone() Distribution {
	c := Distribution{Samples: d.Samples, Counts: make(map[string]int64, len(d.Counts))}
	for k, v := range d.Counts {
		c.Counts[k] = v
	}
	return c
}

// Baseline is the reference distribution of every feature, overall and by
// segment, captured when the model was trained or snapshotted. It is
// JSON-serializable so that the model snapshot can carry it.
type Baseline struct {
	CapturedAt time.Time `json:"captured_at"`
	// Features maps a feature name to its overall distribution.
	Features map[string]Distribution `json:"features"`
	// Segments maps a segment, then a feature name, to its distribution.
	Segments map[string]map[string]Distribution `json:"segments,omitempty"`
}

// IsZero reports whether b holds no distribution.
func (b Baseline) IsZero() bool { return len(b.Features) == 0 }

func (b Baseline) clone() Baseline {
	c := Baseline{CapturedAt: b.CapturedAt}
	if b.Features != nil {
		c.Features = make(map[string]Distribution, len(b.Features))
		for f, d := range b.Features {
			c.Features[f] = d.clone()
		}
	}
	if b.Segments != nil {
		c.Segments = make(map[string]map[string]Distribution, len(b.Segments))
		for s, fs := range b.Segments {
			m := make(map[string]Distribution, len(fs))
			for f, d := range fs {
				m[f] = d.clone()
			}
			c.Segments[s] = m
		}
	}
	return c
}

// PSI returns the population stability index of actual against expected:
// the sum over bins of (a−e)·ln(a/e), where a and e are the bins' shares.
// Bins are the union of both sides' values; a bin empty on one side gets
// the share eps (DefaultEpsilon when eps ≤ 0). It returns 0 when either side
// is empty. By convention PSI < 0.1 is stable, 0.1–0.2 a moderate shift and
// > 0.2 a significant one.
func PSI(expected, actual Distribution, eps float64) float64 {
	if eps <= 0 {
		eps = DefaultEpsilon
	}
	if expected.Samples <= 0 || actual.Samples <= 0 {
		return 0
	}
	keys := make([]string, 0, len(expected.Counts)+len(actual.Counts))
	for k := range expected.Counts {
		keys = append(keys, k)
	}
	for k := range actual.Counts {
		if _, ok := expected.Counts[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys) // a fixed order makes the float sum deterministic
	var psi float64
	for _, k := range keys {
		e := max(float64(expected.Counts[k])/float64(expected.Samples), eps)
		a := max(float64(actual.Counts[k])/float64(actual.Samples), eps)
		psi += (a - e) * math.Log(a/e)
	}
	return psi
}
