package evaluate

import (
	"fmt"
	"math"
	"testing"

	"github.com/sightline/sightline/internal/decisionlog"
)

// TestMarginalRankMatchesSimulation checks the reconstructed item-position
// propensities against the frequencies of the logging policy itself, run
// many times (every item its own category, so the diversity cap never
// binds), with and without an exploration window.
func TestMarginalRankMatchesSimulation(t *testing.T) {
	const n = 40_000
	for _, lp := range []logging{{explore: 0.4, top: 5}, {explore: 0.3}} {
		w := newWorld(8, worldConfig{items: 12, categories: 12, slots: 4, noise: 0.3, positionDecay: 1})
		ds, _ := w.log(8, n, lp)
		K, items := len(w.theta), len(w.items)
		freq := make([][]float64, K)
		for k := range freq {
			freq[k] = make([]float64, items)
		}
		for i := range ds {
			d := &ds[i]
			for k, s := range d.Items {
				for r, c := range d.Pool {
					if c.ItemID == s.ItemID {
						freq[k][r] += 1.0 / n
					}
				}
			}
		}
		var v view
		if !v.load(&ds[0], newJoinIndex(), nil, nil) {
			t.Fatal("load refused a valid decision")
		}
		for k := range K {
			for r := range items {
				got, want := v.marginalRank(r, k), freq[k][r]
				if tol := 4*math.Sqrt(want/n) + 1e-3; math.Abs(got-want) > tol {
					t.Errorf("%+v: marginalRank(%d, %d) = %.4f, want the simulated %.4f ± %.4f", lp, r, k, got, want, tol)
				}
			}
		}
		// In slot 1 the marginal is the logged propensity.
		for i := range 50 {
			d := &ds[i]
			if !v.load(d, newJoinIndex(), nil, nil) {
				t.Fatal("load refused a valid decision")
			}
			r := v.cands[v.shown[0]].rank
			if got, want := v.marginalRank(r, 0), d.Items[0].Propensity; math.Abs(got-want) > 1e-12 {
				t.Errorf("%+v: decision %d: marginalRank(%d, 0) = %v, want the logged %v", lp, i, r, got, want)
			}
		}
	}
}

func TestCappedAbove(t *testing.T) {
	d := decisionlog.Decision{RequestID: "r", Explore: 0.2, ExploreTop: 2, Eligible: 6}
	for i, cat := range []string{"a", "a", "b", "a", "b", "c"} {
		d.Pool = append(d.Pool, decisionlog.Candidate{ItemID: fmt.Sprint("i", i), Category: cat})
	}
	// Shown: i0, i1 (category a twice), then i2.
	for _, i := range []int{0, 1, 2} {
		d.Items = append(d.Items, decisionlog.Slot{ItemID: d.Pool[i].ItemID, Category: d.Pool[i].Category, Propensity: 0.9})
	}
	var v view
	v.maxPer = 2
	if !v.load(&d, newJoinIndex(), nil, nil) {
		t.Fatal("load refused a valid decision")
	}
	// At slot 2, category a is at its cap: i3 (rank 3) is dropped, so i4
	// (rank 4) stands one higher.
	if got := v.cappedAbove(4, 2); got != 1 {
		t.Errorf("cappedAbove(4, 2) = %d, want 1 (i3 of the capped category)", got)
	}
	if got := v.cappedAbove(4, 1); got != 0 {
		t.Errorf("cappedAbove(4, 1) = %d, want 0 (no category at its cap above slot 1)", got)
	}
	// With the window of 2 at slot 2 (from 0): ranks up to 3 are reachable,
	// and rank 4 too once i3 is capped out; rank 5 is not.
	if v.unsupported(4, 2) || !v.unsupported(5, 2) {
		t.Errorf("unsupported(rank 4, slot 2), unsupported(rank 5, slot 2) = %v, %v; want false, true", v.unsupported(4, 2), v.unsupported(5, 2))
	}
}

// TestCappedMarginalsMatchSimulation checks the item-position propensities
// where the diversity cap binds (three categories, two of each shown, six
// slots) against the frequencies of the logging policy itself, per
// context.
func TestCappedMarginalsMatchSimulation(t *testing.T) {
	const n = 40_000
	w := newWorld(9, worldConfig{items: 12, categories: 3, slots: 6, noise: 0.3, positionDecay: 1})
	w.maxPer = 2
	lp := logging{explore: 0.4, top: 3}
	ds, _ := w.log(9, n, lp)
	// freq[context][slot][item] and the decisions of each context.
	key := func(d *decisionlog.Decision) string { return *d.UserSegment + "/" + d.Channel }
	freq := map[string][]map[string]float64{}
	count := map[string]float64{}
	for i := range ds {
		d := &ds[i]
		c := key(d)
		if freq[c] == nil {
			freq[c] = make([]map[string]float64, len(d.Items))
			for k := range freq[c] {
				freq[c][k] = map[string]float64{}
			}
		}
		count[c]++
		for k, s := range d.Items {
			freq[c][k][s.ItemID]++
		}
	}
	// Each decision's propensities come from rollouts of their own: their
	// mean over the decisions that showed an item in a slot is checked, so
	// that a bias shows and the rollouts' noise averages out.
	type cell struct {
		c, item string
		k       int
	}
	sum, num := map[cell]float64{}, map[cell]float64{}
	var v view
	v.maxPer = w.maxPer
	bound := false
	for i := range 4000 {
		d := &ds[i]
		if !v.load(d, newJoinIndex(), nil, nil) {
			t.Fatal("load refused a valid decision")
		}
		bound = bound || v.capBinds()
		for k := 1; k < len(d.Items); k++ {
			x := cell{key(d), d.Items[k].ItemID, k}
			sum[x] += v.propensity(k)
			num[x]++
		}
	}
	for x, s := range sum {
		if num[x] < 30 {
			continue
		}
		got, want := s/num[x], freq[x.c][x.k][x.item]/count[x.c]
		// Sampling noise of the frequency, and of the rollouts' mean (a
		// decision's estimate varies by about 0.05 or less).
		if tol := 4*math.Sqrt(want/count[x.c]) + 4*0.05/math.Sqrt(num[x]) + 0.005; math.Abs(got-want) > tol {
			t.Errorf("%s slot %d item %s: mean propensity %.4f over %v decisions, want the simulated %.4f ± %.4f", x.c, x.k, x.item, got, num[x], want, tol)
		}
	}
	if !bound {
		t.Fatal("the cap never binds in this world: the test checks nothing")
	}
}
