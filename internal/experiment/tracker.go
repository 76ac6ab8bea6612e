package experiment

import (
	"math"
	"sync"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
)

// Tracker keeps the running totals of the live experiment — the
// decisions each variant served (its assignments) and the impressions,
// clicks and conversions of its users — and reports its statistics. It is
// safe for concurrent use; Observe calls are a map update under a lock.
type Tracker struct {
	control string
	arms    model.Split

	mu     sync.Mutex
	counts map[string]*counts
	seq    map[string]*Sequential // per treatment, CTR against the control
}

type counts struct{ assigned, impressions, clicks, conversions int64 }

// NewTracker tracks the variants of split against control, which must be
// one of them (the first arm when it is not).
func NewTracker(split model.Split, control string) *Tracker {
	t := &Tracker{arms: split, counts: map[string]*counts{}, seq: map[string]*Sequential{}}
	for _, a := range split {
		t.counts[a.Name] = &counts{}
		if a.Name == control {
			t.control = control
		}
	}
	if t.control == "" && len(split) > 0 {
		t.control = split[0].Name
	}
	for _, a := range split {
		if a.Name != t.control {
			t.seq[a.Name] = &Sequential{}
		}
	}
	return t
}

// ObserveDecision counts a decision served by variant.
func (t *Tracker) ObserveDecision(variant string) {
	t.mu.Lock()
	if c := t.counts[variant]; c != nil {
		c.assigned++
	}
	t.mu.Unlock()
}

// ObserveEvent counts an impression, click or conversion of a user of
// variant (the quality package's engagement observer signature).
func (t *Tracker) ObserveEvent(variant, _ string, typ event.Type) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.counts[variant]
	if c == nil {
		return
	}
	switch typ {
	case event.Impression:
		c.impressions++
	case event.Click:
		c.clicks++
	case event.Conversion:
		c.conversions++
	}
}

// Report is the experiment's state, the body of GET /v1/experiments.
type Report struct {
	Control  string          `json:"control"`
	Variants []VariantReport `json:"variants"`
	// SRM checks the decisions each variant served against the split.
	SRM SRM `json:"srm"`
}

// VariantReport is one variant's figures.
type VariantReport struct {
	Name   string  `json:"name"`
	Weight float64 `json:"weight"`
	// Assignments are the decisions the variant served.
	Assignments int64 `json:"assignments"`
	// CTR is clicks over impressions; Conversion conversions over clicks.
	CTR        Rate `json:"ctr"`
	Conversion Rate `json:"conversion"`
	// Lift, PValue and MDE compare the variant's CTR with the control's
	// (absent on the control itself).
	Lift *Lift `json:"lift,omitempty"`
	// PValue is the always-valid (sequential) p-value of "no difference":
	// it may be read at any time, as often as wanted.
	PValue *float64 `json:"p_value,omitempty"`
	// MDE is the smallest absolute CTR difference the experiment detects
	// at its current size (80% power, 5%).
	MDE *float64 `json:"mde,omitempty"`
}

// Report computes the statistics of the totals so far. Each call is a look
// of the sequential tests.
func (t *Tracker) Report() Report {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := Report{Control: t.control}
	ctrl := t.counts[t.control]
	var cRate Rate
	if ctrl != nil {
		cRate = NewRate(ctrl.clicks, ctrl.impressions)
	}
	assigned := make([]int64, 0, len(t.arms))
	weights := make([]float64, 0, len(t.arms))
	for _, a := range t.arms {
		c := t.counts[a.Name]
		v := VariantReport{Name: a.Name, Weight: a.Weight, Assignments: c.assigned,
			CTR: NewRate(c.clicks, c.impressions), Conversion: NewRate(c.conversions, c.clicks)}
		if a.Name != t.control {
			p := t.seq[a.Name].Observe(v.CTR, cRate)
			v.PValue = &p
			// Unbounded figures (no data on a side yet) are left out: JSON
			// has no infinity.
			if l := NewLift(v.CTR, cRate); finite(l.AbsoluteCI.Low, l.AbsoluteCI.High, l.RelativeCI.Low, l.RelativeCI.High) {
				v.Lift = &l
			}
			if mde := MDE(cRate.Value, cRate.Trials, v.CTR.Trials); finite(mde) {
				v.MDE = &mde
			}
		}
		r.Variants = append(r.Variants, v)
		if a.Weight > 0 {
			assigned = append(assigned, c.assigned)
			weights = append(weights, a.Weight)
		}
	}
	r.SRM = SRM{P: 1}
	if srm, err := CheckSRM(assigned, weights); err == nil {
		r.SRM = srm
	}
	return r
}

func finite(vs ...float64) bool {
	for _, v := range vs {
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return false
		}
	}
	return true
}
