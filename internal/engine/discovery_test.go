package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/features"
	"github.com/sightline/sightline/internal/model"
)

// listIDs returns the ids of category c's published discovery list.
func listIDs(ix *Index, c string) []string {
	v := ix.view.Load()
	i := slices.Index(v.discCats, c)
	if i < 0 {
		return nil
	}
	var ids []string
	for _, e := range v.discLists[i] {
		ids = append(ids, e.item.ID)
	}
	return ids
}

// show records n impressions of item id, clicks of them clicked.
func show(ix *Index, id string, n, clicks int, at time.Time) {
	for k := range n {
		ix.Observe(&event.Event{Type: event.Impression, ItemID: id, Timestamp: at}, "", nil)
		if k < clicks {
			ix.Observe(&event.Event{Type: event.Click, ItemID: id, Timestamp: at}, "", nil)
		}
	}
}

func TestDiscoveryLists(t *testing.T) {
	ix := NewIndex(IndexConfig{Discover: defaultDiscover})
	for _, it := range catalog(1, 40) {
		ix.PutItem(it)
	}
	ix.Refresh()
	id := func(i int) string { return fmt.Sprintf("i00-%03d", i) }
	got := listIDs(ix, "c00")
	if len(got) != discoverEvalSlots || got[0] != id(0) || got[len(got)-1] != id(discoverEvalSlots-1) {
		t.Fatalf("list of a new catalog = %v, want the first %d items under evaluation", got, discoverEvalSlots)
	}

	now := time.Now()
	show(ix, id(0), 50, 0, now)  // evaluated, never clicked
	show(ix, id(1), 50, 25, now) // evaluated, clicked half the time
	ix.Refresh()
	got = listIDs(ix, "c00")
	if len(got) < 2 || got[0] != id(1) || got[1] != id(0) {
		t.Fatalf("list = %v, want the evaluated items first, best first (%s, %s)", got, id(1), id(0))
	}
	if !slices.Contains(got, id(discoverEvalSlots+1)) || slices.Contains(got, id(discoverEvalSlots+2)) {
		t.Errorf("list = %v, want the next two items never shown to take the evaluated ones' places", got)
	}

	// An item under evaluation whose bound falls below the bar is dropped
	// early, and the next item never shown takes its place.
	show(ix, id(2), 20, 0, now)
	ix.Refresh()
	got = listIDs(ix, "c00")
	if !slices.Contains(got, id(discoverEvalSlots+2)) {
		t.Errorf("list = %v, want %s under evaluation once %s failed early", got, id(discoverEvalSlots+2), id(2))
	}
	if i := slices.Index(got, id(2)); i > 2 {
		t.Errorf("list = %v: %s at %d, want it among the evaluated items at the front", got, id(2), i)
	}

	// A discovery-less index keeps no lists.
	off := NewIndex(IndexConfig{})
	off.PutItem(catalog(1, 1)[0])
	off.Refresh()
	if got := listIDs(off, "c00"); got != nil {
		t.Errorf("list without discovery = %v, want none", got)
	}
}

// catRanker ranks categories by a fixed table, or fails.
type catRanker struct {
	score map[string]float64
	err   error
}

func (r catRanker) CategoryScores(_ context.Context, _ *model.Context, cats []string, out []float64) error {
	if r.err != nil {
		return r.err
	}
	for i, c := range cats {
		out[i] = r.score[c]
	}
	return nil
}

func TestDiscoverCandidates(t *testing.T) {
	ix := NewIndex(IndexConfig{Discover: defaultDiscover})
	const cats = discoverFocus + 3
	for _, it := range catalog(cats, 30) {
		ix.PutItem(it)
	}
	ix.Refresh()
	score := map[string]float64{}
	for c := range cats {
		score[fmt.Sprintf("c%02d", c)] = -float64(c) // c00 best
	}
	count := func(cs *candidateSet) map[string]int {
		n := map[string]int{}
		for _, it := range cs.items {
			n[it.Category]++
		}
		return n
	}
	var cs candidateSet
	ix.DiscoverCandidates(t.Context(), &cs, nil, catRanker{score: score}, &model.Context{})
	n := count(&cs)
	for c := range cats {
		want := discoverShort
		if c < discoverFocus {
			want = discoverEvalSlots
		}
		if got := n[fmt.Sprintf("c%02d", c)]; got != want {
			t.Errorf("candidates of c%02d = %d, want %d (focus: the %d best ranked)", c, got, want, discoverFocus)
		}
	}
	// Reversed ranking: the focus moves.
	for c := range cats {
		score[fmt.Sprintf("c%02d", c)] = float64(c)
	}
	ix.DiscoverCandidates(t.Context(), &cs, nil, catRanker{score: score}, &model.Context{})
	if n := count(&cs); n["c00"] != discoverShort || n[fmt.Sprintf("c%02d", cats-1)] != discoverEvalSlots {
		t.Errorf("candidates by category = %v, want the focus on the last categories", n)
	}
	// A failing ranker: categories in name order.
	ix.DiscoverCandidates(t.Context(), &cs, nil, catRanker{err: errors.New("no")}, &model.Context{})
	if n := count(&cs); n["c00"] != discoverEvalSlots || n[fmt.Sprintf("c%02d", cats-1)] != discoverShort {
		t.Errorf("candidates by category with a failing ranker = %v, want the focus on the first categories", n)
	}
}

// TestDiscoverVariant: a variant of Config.Discover takes the discovery
// candidates, another the popularity ones; both record valid propensities,
// and the event path learns where each item was shown.
func TestDiscoverVariant(t *testing.T) {
	store, err := features.NewMemory(features.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(model.Config{})
	if err != nil {
		t.Fatal(err)
	}
	disc, err := model.New(model.Config{Optimism: 1})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(store, Config{
		Split:    model.Split{{Name: "a", Weight: 1}, {Name: "b", Weight: 1}},
		Scorers:  map[string]Scorer{"a": NewModelScorer(m), "b": NewModelScorer(disc)},
		Discover: []string{"b"},
		Explore:  0.3,
		Index:    IndexConfig{PerCategory: 2, Global: 5},
		// Not a test of the budgets (see logits_test.go).
		FeatureBudget: time.Minute, ModelBudget: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	store.OnItemChange(e.Index().PutItem)
	ctx := t.Context()
	for _, it := range catalog(10, 40) {
		if err := store.PutItem(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	e.Index().Refresh()
	seen := map[string]int{}
	for i := range 60 {
		u := fmt.Sprintf("u%03d", i)
		d, err := e.Recommend(ctx, Request{UserID: u, Count: 10, Channel: "web"})
		if err != nil {
			t.Fatal(err)
		}
		seen[d.Variant]++
		want := 25 // popularity: 10 categories × 2 and 5 global, overlapping
		if d.Variant == "b" {
			want = discoverFocus*discoverEvalSlots + (10-discoverFocus)*discoverShort
		}
		if d.Variant == "a" && d.Candidates > want || d.Variant == "b" && d.Candidates != want {
			t.Errorf("variant %s: %d candidates, want %d", d.Variant, d.Candidates, want)
		}
		for k, it := range d.Items {
			if !(it.Propensity > 0 && it.Propensity <= 1) {
				t.Errorf("variant %s item %d: propensity %v, want in (0, 1]", d.Variant, k, it.Propensity)
			}
			x, _, ok := e.Ring().Joined(d.RequestID, it.ItemID)
			if !ok || x.Slot != k+1 {
				t.Errorf("Joined(%s, item %d).Slot = %d (found %v), want %d", d.RequestID, k, x.Slot, ok, k+1)
			}
		}
	}
	if seen["a"] == 0 || seen["b"] == 0 {
		t.Errorf("variants served = %v, want both", seen)
	}
}

func TestDiscoverNeedsCategoryRanker(t *testing.T) {
	store := &fakeStore{}
	for name, cfg := range map[string]Config{
		"no scorer":     {Split: model.Split{{Name: "popularity", Weight: 1}}, Discover: []string{"x"}},
		"not a ranker":  {Split: model.Split{{Name: "popularity", Weight: 1}}, Discover: []string{"popularity"}},
		"a fake scorer": {Split: model.Split{{Name: "f", Weight: 1}}, Scorers: map[string]Scorer{"f": &fakeScorer{}}, Discover: []string{"f"}},
	} {
		if _, err := New(store, cfg); err == nil {
			t.Errorf("New(%s) = nil error, want one", name)
		}
	}
}

// BenchmarkRecommendDiscover10k is BenchmarkRecommend10k's decision for a
// variant that discovers, with the ftrl-ucb family's model: the same
// catalog, users and clicks, and impressions enough that every category's
// discovery list is full (evaluated items and items under evaluation).
func BenchmarkRecommendDiscover10k(b *testing.B) {
	store, err := features.NewMemory(features.Config{})
	if err != nil {
		b.Fatal(err)
	}
	f, _ := model.LookupFamily("ftrl-ucb")
	m, err := model.New(f.Apply(model.Config{}))
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(store, Config{
		Split:    model.Split{{Name: f.Name, Weight: 1}},
		Scorers:  map[string]Scorer{f.Name: NewModelScorer(m)},
		Discover: []string{f.Name},
		Index:    IndexConfig{PerCategory: 5, Global: 100},
	})
	if err != nil {
		b.Fatal(err)
	}
	store.OnItemChange(e.Index().PutItem)
	ctx := b.Context()
	for i := range 10_000 {
		if err := store.PutItem(ctx, event.Item{ID: fmt.Sprintf("i%05d", i), Category: fmt.Sprintf("c%02d", i%40), Available: true}); err != nil {
			b.Fatal(err)
		}
	}
	ages := []string{"18-24", "25-34", "35-44", "45-54", "55+"}
	for i := range 10_000 {
		if err := store.PutUser(ctx, event.User{ID: fmt.Sprintf("u%05d", i), AgeBucket: ages[i%5], Segment: "regular", Region: "eu", Device: "ios"}); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now()
	for i := range 50_000 {
		ev := event.Event{ID: fmt.Sprint(i), Type: event.Click, UserID: fmt.Sprintf("u%05d", i%10_000), ItemID: fmt.Sprintf("i%05d", (i*7919)%10_000), Timestamp: now}
		e.Observe(ctx, &ev)
		_ = store.Apply(ctx, []*event.Event{&ev})
	}
	// 60 impressions of every fourth item: evaluated, in the lists beside
	// items under evaluation.
	for i := 0; i < 10_000; i += 4 {
		for range 60 {
			e.Observe(ctx, &event.Event{Type: event.Impression, UserID: "u00000", ItemID: fmt.Sprintf("i%05d", i), Timestamp: now})
		}
	}
	e.Index().Refresh()
	i := 0
	var cands int
	b.ReportAllocs()
	for b.Loop() {
		d, err := e.Recommend(ctx, Request{UserID: fmt.Sprintf("u%05d", i%10_000), Count: 10, Channel: "web"})
		if err != nil {
			b.Fatal(err)
		}
		cands += d.Candidates
		i++
	}
	b.ReportMetric(float64(cands)/float64(i), "candidates/op")
}

// weights is an ItemValuer with fixed weights and evidence.
type weights map[string][2]float64

func (w weights) ItemEvidence(id string) (float64, float64) { return w[id][0], w[id][1] }

// TestDiscoveryValuer: with an ItemValuer, evaluated items are ranked by
// the model's weight, not by their click-through rate (which the position
// they were shown at biases), and an item under evaluation is dropped when
// its weight's upper bound falls below the third best weight.
func TestDiscoveryValuer(t *testing.T) {
	ix := NewIndex(IndexConfig{Discover: defaultDiscover})
	id := func(i int) string { return fmt.Sprintf("i00-%03d", i) }
	w := weights{
		id(0): {0.8, 100}, // clicked little (shown low), the model rates it best
		id(1): {0.1, 100}, // clicked much (shown high), rated little
		id(2): {0.5, 100},
		id(3): {0.4, 100},
		id(4): {-0.5, 50}, // under evaluation, its bound 1/√60 short of 0.4
	}
	ix.disc.value = w
	for _, it := range catalog(1, 40) {
		ix.PutItem(it)
	}
	now := time.Now()
	show(ix, id(0), 50, 1, now)
	show(ix, id(1), 50, 30, now)
	show(ix, id(2), 50, 5, now)
	show(ix, id(3), 50, 5, now)
	show(ix, id(4), 10, 0, now)
	ix.Refresh()
	got := listIDs(ix, "c00")
	if len(got) < 4 || got[0] != id(0) || got[1] != id(2) || got[2] != id(3) || got[3] != id(1) {
		t.Errorf("list = %v, want the evaluated items by weight first: %s %s %s %s", got, id(0), id(2), id(3), id(1))
	}
	if i := slices.Index(got, id(4)); i >= 0 && i < 5 {
		t.Errorf("list = %v: %s at %d, want it dropped from evaluation (after the evaluated items)", got, id(4), i)
	}
}

// TestCandidateKeys: every candidate, by popularity, co-visitation or
// discovery, carries the model key of the item as it is now (a category
// changed by PutItem included), in the candidates' order.
func TestCandidateKeys(t *testing.T) {
	ix := NewIndex(IndexConfig{Discover: defaultDiscover, Global: 20, PerCategory: 5})
	items := catalog(discoverFocus+2, 12)
	for _, it := range items {
		ix.PutItem(it)
	}
	now := time.Now()
	for i, it := range items[:40] {
		ix.Observe(&event.Event{Type: event.Click, UserID: "u", ItemID: it.ID, Timestamp: now}, "regular", []string{items[(i+1)%40].ID})
	}
	moved := items[3]
	moved.Category = "c-moved"
	ix.PutItem(moved)
	uncategorised := items[5]
	uncategorised.Category = ""
	ix.PutItem(uncategorised)
	ix.Refresh()
	check := func(how string, cs *candidateSet) {
		t.Helper()
		if len(cs.items) == 0 || len(cs.keys) != len(cs.items) {
			t.Fatalf("%s: %d candidates, %d keys", how, len(cs.items), len(cs.keys))
		}
		for i, it := range cs.items {
			if cs.keys[i] != model.KeyOf(it) {
				t.Errorf("%s: candidate %d (%s, %q) has the key of another item", how, i, it.ID, it.Category)
			}
		}
	}
	var cs candidateSet
	ix.Candidates(&cs, []string{items[0].ID, items[1].ID}, []string{"c01"})
	check("popularity and co-visits", &cs)
	ix.DiscoverCandidates(t.Context(), &cs, []string{items[0].ID}, catRanker{score: map[string]float64{"c01": 1}}, &model.Context{})
	check("discovery", &cs)
}

func TestMaxScore(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 1; n < 300; n += 7 {
		s := make([]float64, n)
		for i := range s {
			s[i] = r.NormFloat64()
		}
		if got, want := maxScore(s), slices.Max(s); got != want {
			t.Fatalf("maxScore of %d scores = %v, want %v", n, got, want)
		}
		s[r.IntN(n)] = math.NaN()
		if got := maxScore(s); !math.IsNaN(got) {
			t.Fatalf("maxScore of %d scores with a NaN = %v, want NaN", n, got)
		}
	}
}
