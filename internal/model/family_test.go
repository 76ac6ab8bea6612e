package model

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/event"
)

func TestFamilies(t *testing.T) {
	if fs := Families(); len(fs) < 2 || fs[0].Name != DefaultName {
		t.Fatalf("Families() = %v, want ftrl first and another", fs)
	}
	f, ok := LookupFamily("ftrl-ucb")
	if !ok || !f.Discover {
		t.Fatalf("LookupFamily(ftrl-ucb) = %+v, %v; want a family that discovers", f, ok)
	}
	if _, ok := LookupFamily("nope"); ok {
		t.Errorf("LookupFamily(nope) found a family")
	}
	got := f.Apply(Config{Bits: 18, Alpha: 0.05, EvalWindow: 7})
	want := Config{Bits: 18, Alpha: 0.3, L1: 0.1, L2: 6, EvalWindow: 7, Name: "ftrl-ucb", Positions: true, Optimism: 2}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Apply() mismatch (-want +got):\n%s", diff)
	}
	for _, f := range Families() {
		if _, err := New(f.Apply(Config{})); err != nil {
			t.Errorf("New(family %s) = %v", f.Name, err)
		}
	}
}

func TestOptimismConfig(t *testing.T) {
	for _, cfg := range []Config{{Optimism: -1}, {Optimism: math.Inf(1)}, {Optimism: 1, OptimismPrior: -2}} {
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
}

// TestOptimism: an item the model has not seen ranks above one it has seen
// often at the same weight, by Optimism/√OptimismPrior, and the bonus
// shrinks as the item is learned.
func TestOptimism(t *testing.T) {
	m := newTestModel(t, Config{Bits: 16, Optimism: 1, OptimismPrior: 4})
	x := testContext()
	seen := event.Item{ID: "seen", Category: "sports"}
	fresh := event.Item{ID: "fresh", Category: "sports"}
	var p Prepared
	out := make([]float64, 2)
	logits := func() (float64, float64) {
		m.Prepare(&x, &p)
		m.Logits(&p, []event.Item{seen, fresh}, out)
		return out[0], out[1]
	}
	a, b := logits()
	if a != b || math.Abs(a-0.5) > 1e-12 {
		t.Fatalf("untrained logits = %v, %v; want both the bonus 1/√4 = 0.5", a, b)
	}
	for i := range 400 {
		l := Negative
		if i%10 == 0 {
			l = Positive
		}
		m.Learn(&x, seen, l)
	}
	// The seen item's weight moved; strip it to compare the bonuses.
	w := m.weight(index(itemHash(seen.ID)) & m.mask)
	a, b = logits()
	bonusSeen, bonusFresh := a-w-(b-0.5), 0.5
	if !(bonusSeen > 0 && bonusSeen < bonusFresh/3) {
		t.Errorf("bonus of an item learned 400 times = %v, want positive and well below a new item's %v", bonusSeen, bonusFresh)
	}
	// Learning predicts without the bonus.
	if got, want := m.Learn(&x, fresh, Negative), Sigmoid(b-bonusFresh); math.Abs(got-want) > 1e-12 {
		t.Errorf("Learn(fresh) = %v, want the prediction without the bonus %v", got, want)
	}
}

// TestPositions: with Positions, an item always shown low is not taken for
// a worse item than one shown at the top, and scores stay calibrated to
// the CTR averaged over the positions shown.
func TestPositions(t *testing.T) {
	examine := []float64{1, 0.63, 0.5, 0.43, 0.39, 0.36, 0.33, 0.32, 0.3, 0.29}
	run := func(positions bool) (top, low, pred, observed float64) {
		m := newTestModel(t, Config{Bits: 18, Positions: positions})
		r := rand.New(rand.NewPCG(1, 2))
		x := testContext()
		items := make([]event.Item, 10)
		for k := range items {
			items[k] = event.Item{ID: "i" + string(rune('a'+k)), Category: "sports"}
		}
		var sumPred, clicks, n float64
		for round := range 6000 {
			for k, it := range items {
				// Every item is as good; item k is mostly shown at slot
				// k+1, sometimes at another.
				x.Slot = k + 1
				if r.Float64() < 0.2 {
					x.Slot = 1 + r.IntN(len(items))
				}
				clicked := r.Float64() < 0.2*examine[x.Slot-1]
				l := Negative
				if clicked {
					l = Positive
				}
				p := m.Learn(&x, it, l)
				if round >= 4000 {
					sumPred += p
					n++
					if clicked {
						clicks++
					}
				}
			}
		}
		var p Prepared
		out := make([]float64, len(items))
		x.Slot = 0
		m.Prepare(&x, &p)
		m.Score(&p, items, out)
		var mean float64
		for _, o := range out {
			mean += o / float64(len(out))
		}
		return out[0], out[9], mean, clicks / n
	}
	top, low, mean, observed := run(true)
	if r := low / top; r < 0.75 {
		t.Errorf("with Positions: score of the item shown at slot 10 / slot 1 = %.2f, want near 1 (the items are as good)", r)
	}
	if c := mean / observed; c < 0.9 || c > 1.1 {
		t.Errorf("with Positions: mean score %.4f / observed CTR %.4f = %.2f, want within 0.9..1.1", mean, observed, c)
	}
	top, low, _, _ = run(false)
	t.Logf("without Positions: slot 10 / slot 1 = %.2f", low/top)
	if r := low / top; r > 0.6 {
		t.Errorf("without Positions: score at slot 10 / slot 1 = %.2f, want the position bias taken for quality (below 0.6)", r)
	}
}

func TestCategoryLogits(t *testing.T) {
	m := newTestModel(t, Config{Bits: 16})
	w := newWorld(3)
	for range 3000 {
		x, it, pt := w.example()
		l := Negative
		if w.rng.Float64() < pt {
			l = Positive
		}
		m.Learn(&x, it, l)
	}
	x, _, _ := w.example()
	var p Prepared
	m.Prepare(&x, &p)
	cats := []string{w.categories[0], w.categories[1], "unknown"}
	got := make([]float64, len(cats))
	m.CategoryLogits(&p, cats, got)
	for i, c := range cats {
		// Two items of the category with no item weight of their own
		// differ from the request's base by exactly the category part.
		it := event.Item{ID: "never-learned", Category: c}
		none := event.Item{ID: "never-learned"}
		out := make([]float64, 2)
		m.Logits(&p, []event.Item{it, none}, out)
		if want := out[0] - out[1]; math.Abs(got[i]-want) > 1e-9 {
			t.Errorf("CategoryLogits(%s) = %v, want %v", c, got[i], want)
		}
	}
}

// TestSnapshotKeepsFamilySettings: a snapshot carries Positions and
// Optimism and their state (the serving offset is rebuilt), and scores
// the same after a round trip.
func TestSnapshotKeepsFamilySettings(t *testing.T) {
	f, _ := LookupFamily("ftrl-ucb")
	m := newTestModel(t, f.Apply(Config{Bits: 14}))
	w := newWorld(5)
	for i := range 2000 {
		x, it, pt := w.example()
		x.Slot = 1 + i%10
		l := Negative
		if w.rng.Float64() < pt {
			l = Positive
		}
		m.Learn(&x, it, l)
	}
	var buf bytes.Buffer
	if err := m.WriteSnapshot(&buf, SnapshotMeta{}); err != nil {
		t.Fatal(err)
	}
	r, _, err := ReadSnapshot(&buf, Config{})
	if err != nil {
		t.Fatalf("ReadSnapshot() = %v", err)
	}
	if !r.cfg.Positions || r.cfg.Optimism != 2 || r.cfg.Name != "ftrl-ucb" {
		t.Fatalf("restored config = %+v, want the family's", r.cfg)
	}
	x, _, _ := w.example()
	var p Prepared
	m.Prepare(&x, &p)
	a, b := make([]float64, len(w.items)), make([]float64, len(w.items))
	m.Logits(&p, w.items, a)
	r.Logits(&p, w.items, b)
	// The offset is rebuilt from uniform position counts, so logits may
	// shift by one constant; the ranking and the item bonuses are equal.
	d := b[0] - a[0]
	for i := range a {
		if math.Abs(b[i]-a[i]-d) > 1e-9 {
			t.Fatalf("item %d: restored logit %v, original %v: want the same up to a constant", i, b[i], a[i])
		}
	}
}
