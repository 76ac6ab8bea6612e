package quality

import (
	"testing"
	"time"
)

// TestObserveDecisionNoEscape checks that ObserveDecision keeps nothing of
// its DecisionObs: a caller's stage list built in a stack array stays
// there, so observing a decision allocates nothing once the window's
// sub-bucket exists (the clock does not move here).
func TestObserveDecisionNoEscape(t *testing.T) {
	w := newWorld(t, 1)
	o := w.decision()
	o.Fallback = testReasons[1] // a fallback keeps the trace id as an example
	w.dec.ObserveDecision(o)
	allocs := testing.AllocsPerRun(100, func() {
		var arr [8]StageDuration
		stages := arr[:0]
		for _, s := range testStages {
			stages = append(stages, StageDuration{Stage: s, Duration: 200 * time.Microsecond})
		}
		obs := o
		obs.Stages = stages
		w.dec.ObserveDecision(obs)
	})
	// One allocation: the example's copy of the trace id, kept for the
	// fallback (a healthy decision keeps none).
	if allocs > 1 {
		t.Errorf("ObserveDecision with a stack stage list allocates %v times, want at most 1", allocs)
	}
	o.Fallback = ""
	if allocs := testing.AllocsPerRun(100, func() {
		var arr [8]StageDuration
		obs := o
		obs.Stages = append(arr[:0], StageDuration{Stage: testStages[0], Duration: time.Microsecond})
		w.dec.ObserveDecision(obs)
	}); allocs != 0 {
		t.Errorf("ObserveDecision of a healthy decision allocates %v times, want 0", allocs)
	}
}
