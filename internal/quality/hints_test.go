package quality

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sightline/sightline/internal/event"
)

// world is a small synthetic population served at a steady rate. Its
// faults are test inputs: the ranking under test is never told about them.
type world struct {
	rng      *rand.Rand
	clock    *clock
	mon      *Monitor
	dec      *Decisions
	eng      *Engagement
	reg      *prometheus.Registry
	n        int
	affected []string // trace ids of decisions the fault touched
	// fault changes one decision; it returns whether it touched it.
	fault func(w *world, o *DecisionObs) bool
}

var (
	testSegments = []string{"new", "casual", "regular", "power"}
	testReasons  = []string{"missing_features", "model_timeout", "low_confidence", "feature_store_timeout"}
	testStages   = []string{"feature_fetch", "candidate_generation", "model_inference", "business_rules"}
	testValues   = map[string][]string{
		event.AttrAgeBucket: {"18-24", "25-34", "35-44", "45+"},
		event.AttrSegment:   testSegments,
		event.AttrRegion:    {"eu", "us", "apac"},
		event.AttrDevice:    {"ios", "android", "web"},
	}
)

func newWorld(t testing.TB, seed uint64) *world {
	t.Helper()
	w := &world{rng: rand.New(rand.NewPCG(seed, 1)), clock: newClock(), reg: prometheus.NewPedanticRegistry()}
	var err error
	if w.mon, err = NewMonitor(MonitorConfig{Features: event.UserAttributes, Segments: testSegments, Registerer: w.reg, Now: w.clock.Now}); err != nil {
		t.Fatal(err)
	}
	if w.dec, err = NewDecisions(w.mon, DecisionsConfig{Reasons: testReasons, Stages: testStages, Now: w.clock.Now}); err != nil {
		t.Fatal(err)
	}
	if w.eng, err = NewEngagement(EngagementConfig{Variants: []string{"ftrl"}, Channels: []string{"web"}, Registerer: w.reg, Now: w.clock.Now}); err != nil {
		t.Fatal(err)
	}
	return w
}

// decision draws one healthy decision.
func (w *world) decision() DecisionObs {
	w.n++
	seg := testSegments[min(int(w.rng.Float64()*5), 3)] // power is 40%, others 20%
	feats := make(map[string]*string, len(testValues))
	for _, f := range event.UserAttributes {
		vals := testValues[f]
		var v *string
		switch {
		case f == event.AttrSegment:
			v = &seg
		case w.rng.Float64() >= 0.02:
			v = &vals[w.rng.IntN(len(vals))]
		}
		feats[f] = v
	}
	o := DecisionObs{Variant: "ftrl", Channel: "web", Segment: seg, Features: feats, TraceID: fmt.Sprintf("%032x", w.n),
		Duration: time.Duration(1+w.rng.IntN(3)) * time.Millisecond}
	for _, s := range testStages {
		o.Stages = append(o.Stages, StageDuration{Stage: s, Duration: time.Duration(100+w.rng.IntN(300)) * time.Microsecond})
	}
	if w.rng.Float64() < 0.02 {
		o.Fallback = "low_confidence"
	}
	return o
}

// run serves rate decisions a second for d, evaluating ev (if any) every
// 10 s, with clicks at 5% (2% for decisions answered by the fallback).
func (w *world) run(d time.Duration, rate int, ev *Evaluator) {
	for end := w.clock.Now().Add(d); w.clock.Now().Before(end); w.clock.Advance(time.Second) {
		for range rate {
			o := w.decision()
			if w.fault != nil && w.fault(w, &o) {
				w.affected = append(w.affected, o.TraceID)
			}
			w.dec.ObserveDecision(o)
			w.eng.ObserveEvent(o.Variant, o.Channel, event.Impression)
			ctr := 0.05
			if o.Fallback != "" {
				ctr = 0.02
			}
			if w.rng.Float64() < ctr {
				w.eng.ObserveEvent(o.Variant, o.Channel, event.Click)
			}
		}
		if ev != nil && w.clock.Now().Second()%10 == 0 {
			ev.Evaluate(context.Background(), w.clock.Now())
		}
	}
}

// warm serves 40 healthy minutes and captures the baseline after 10.
func (w *world) warm(ev *Evaluator) {
	w.run(10*time.Minute, 20, ev)
	w.mon.CaptureBaseline()
	w.run(30*time.Minute, 20, ev)
}

// The faults. Each touches a different cause.
var (
	nullRegionInPower = func(_ *world, o *DecisionObs) bool {
		if o.Segment != "power" {
			return false
		}
		o.Features[event.AttrRegion] = nil
		o.Fallback = "missing_features"
		return true
	}
	nullDeviceEverywhere = func(w *world, o *DecisionObs) bool {
		if w.rng.Float64() >= 0.6 {
			return false
		}
		o.Features[event.AttrDevice] = nil
		return true
	}
	slowInference = func(w *world, o *DecisionObs) bool {
		if w.rng.Float64() >= 0.1 {
			return false
		}
		o.Stages[2].Duration += 30 * time.Millisecond
		o.Duration += 30 * time.Millisecond
		o.Fallback = "model_timeout"
		return true
	}
	ageShift = func(_ *world, o *DecisionObs) bool {
		if o.Features[event.AttrAgeBucket] == nil {
			return false
		}
		o.Features[event.AttrAgeBucket] = &testValues[event.AttrAgeBucket][0]
		return true
	}
)

func TestRankFindsTheInjectedCause(t *testing.T) {
	tests := []struct {
		name     string
		fault    func(*world, *DecisionObs) bool
		want     Cause
		examples bool
	}{
		{"region null in one segment", nullRegionInPower, Cause{Kind: CauseFeature, Feature: event.AttrRegion, Segment: "power"}, true},
		{"device null in every segment", nullDeviceEverywhere, Cause{Kind: CauseFeature, Feature: event.AttrDevice}, true},
		{"slow inference", slowInference, Cause{Kind: CauseStage, Stage: "model_inference"}, true},
		// A shift without nulls has no example traces: the reservoirs keep nulls.
		{"age distribution shift", ageShift, Cause{Kind: CauseFeature, Feature: event.AttrAgeBucket}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, 7)
			w.warm(nil)
			w.fault = tt.fault
			w.run(5*time.Minute, 20, nil)
			hints := Rank(w.clock.Now(), Signals{Monitor: w.mon, Decisions: w.dec}, HintConfig{})
			if len(hints) == 0 || hints[0].Cause != tt.want {
				t.Fatalf("Rank() = %s, want %+v first", describe(hints), tt.want)
			}
			if hints[0].Score < 2 {
				t.Errorf("Rank() top score = %v, want ≥ 2", hints[0].Score)
			}
			if got := len(hints[0].ExampleTraces) > 0; got != tt.examples {
				t.Errorf("Rank() top hint has example traces %v, want %v", hints[0].ExampleTraces, tt.examples)
			}
			for _, id := range hints[0].ExampleTraces {
				if !slices.Contains(w.affected, id) {
					t.Errorf("Rank() example trace %s was not touched by the fault", id)
				}
			}
			t.Logf("%s", describe(hints))
		})
	}
}

func TestRankControl(t *testing.T) {
	for seed := range uint64(3) {
		w := newWorld(t, seed)
		w.warm(nil)
		w.run(5*time.Minute, 20, nil)
		hints := Rank(w.clock.Now(), Signals{Monitor: w.mon, Decisions: w.dec}, HintConfig{MinScore: 0.5})
		// With nothing changed, the only answer is the one by elimination.
		if len(hints) != 1 || hints[0].Kind != CauseModel || hints[0].Score != 0 {
			t.Errorf("seed %d: Rank() without a fault = %s, want only the concept-drift hint with score 0", seed, describe(hints))
		}
	}
}

func describe(hints []Hint) string {
	var s string
	for _, h := range hints {
		s += fmt.Sprintf("\n  %.2f %s (%d traces)", h.Score, h.Detail, len(h.ExampleTraces))
	}
	return s
}
