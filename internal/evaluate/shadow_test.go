package evaluate

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/sightline/sightline/internal/decisionlog"
)

// shadowLog logs n decisions of w under lp and records beside each the
// choices of a shadow policy ranking the items by score(c, i) with the
// diversity cap, as a shadow challenger's would-be answer is recorded.
func shadowLog(w *world, n int, lp logging, score func(c, i int) float64) *MemorySource {
	ds, es := w.log(31, n, lp)
	K := len(w.theta)
	byContext := make([][]decisionlog.ShadowSlot, len(w.q))
	for c := range w.q {
		s := make([]float64, len(w.items))
		for i := range s {
			s[i] = score(c, i)
		}
		shown := map[string]int{}
		for _, i := range rank(s) {
			if len(byContext[c]) == K {
				break
			}
			if it := w.items[i]; shown[it.category] < w.maxPer {
				shown[it.category]++
				byContext[c] = append(byContext[c], decisionlog.ShadowSlot{ItemID: it.id, Score: w.q[c][i]})
			}
		}
	}
	for j := range ds {
		d := &ds[j]
		c := slices.Index(w.segments, *d.UserSegment)*len(w.channels) + slices.Index(w.channels, d.Channel)
		d.ShadowModelVersion, d.ShadowItems = "shadow-v1", byContext[c]
	}
	return &MemorySource{DecisionRows: ds, EventRows: es}
}

// TestShadowEstimate estimates, on a synthetic world whose click
// probabilities are known, the CTR of shadow challengers from their
// recorded choices against the logged propensities: one truly better than
// the logging policy (it ranks by the true click probabilities) gets an
// estimate whose 95% interval lies above the logged CTR, near its true
// CTR; one truly worse (it ranks the true probabilities upside down) gets
// one below; and a decision the shadow did not score is an unsupported
// choice, not a match.
func TestShadowEstimate(t *testing.T) {
	w := newWorld(5, worldConfig{items: 24, categories: 4, slots: 4, noise: 1.0, positionDecay: 0.8, base: 1})
	lp := logging{explore: 0.3}
	logTruth, _ := w.truth(func(c, i int) float64 { return w.logScore[c][i] })
	tests := []struct {
		name  string
		score func(c, i int) float64
		above bool
	}{
		{"better", func(c, i int) float64 { return w.q[c][i] }, true},
		{"worse", func(c, i int) float64 { return -w.q[c][i] }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := shadowLog(w, 20_000, lp, tc.score)
			rep, err := Run(context.Background(), src, []Spec{{Kind: KindShadow}}, Config{Seed: 3})
			if err != nil {
				t.Fatal(err)
			}
			truth, _ := w.truth(tc.score)
			p := rep.Policies[0]
			var snips *Interval
			for _, e := range p.Estimates {
				if e.Estimator == EstimatorSNIPS {
					snips = e.CTR
				}
			}
			if snips == nil {
				t.Fatalf("no SNIPS estimate: %+v", p.Estimates)
			}
			logged := rep.Logged.CTR
			t.Logf("%s shadow: SNIPS %v, true %.4f; logged %v (policy's true %.4f); diagnostics %+v", tc.name, snips, truth, logged, logTruth, p.Diagnostics)
			if tc.above != (truth > logTruth) {
				t.Fatalf("the world does not make the %s shadow %s: true CTR %.4f vs the logging policy's %.4f", tc.name, map[bool]string{true: "better", false: "worse"}[tc.above], truth, logTruth)
			}
			if tc.above && !(snips.Low > logged.High) || !tc.above && !(snips.High < logged.Low) {
				t.Errorf("%s shadow: SNIPS %v, logged %v: want the interval wholly %s", tc.name, snips, logged, map[bool]string{true: "above", false: "below"}[tc.above])
			}
			// The slate estimator is exact at position 1 and approximate
			// below it where the diversity cap binds (docs/evaluation.md):
			// the estimate must land far nearer its true CTR than the
			// logging policy's.
			if math.Abs(snips.Value-truth) > 0.25*math.Abs(truth-logTruth) {
				t.Errorf("%s shadow: SNIPS %v is %.4f from the true CTR %.4f, want within a quarter of its gap to the logging policy's %.4f", tc.name, snips, math.Abs(snips.Value-truth), truth, logTruth)
			}
			if p.Kind != KindShadow || p.Diagnostics.Unsupported != 0 {
				t.Errorf("kind %q unsupported %v, want shadow and 0 (exploration reaches every item)", p.Kind, p.Diagnostics.Unsupported)
			}
		})
	}
	t.Run("unscored decisions", func(t *testing.T) {
		src := shadowLog(w, 2_000, lp, func(c, i int) float64 { return w.q[c][i] })
		for j := range src.DecisionRows {
			if j%2 == 0 {
				src.DecisionRows[j].ShadowModelVersion, src.DecisionRows[j].ShadowItems = "", nil
			}
		}
		rep, err := Run(context.Background(), src, []Spec{{Kind: KindShadow}}, Config{Seed: 3, Bootstrap: -1})
		if err != nil {
			t.Fatal(err)
		}
		if u := rep.Policies[0].Diagnostics.Unsupported; u < 0.45 || u > 0.55 {
			t.Errorf("unsupported share %v with half the decisions unscored, want about 0.5", u)
		}
	})
}

func TestParseShadowSpec(t *testing.T) {
	sp, err := ParseSpec("shadow")
	if err != nil || sp.Kind != KindShadow || sp.String() != "shadow" {
		t.Errorf(`ParseSpec("shadow") = %+v (%q), %v; want kind shadow`, sp, sp.String(), err)
	}
	if _, err := ParseSpec("shadow:explore=0.1"); err == nil {
		t.Error(`ParseSpec("shadow:explore=0.1"): no error, want one (shadow takes no keys)`)
	}
}
