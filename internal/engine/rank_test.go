package engine

import (
	"fmt"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/features"
	"github.com/sightline/sightline/internal/model"
)

// refRules is the rules stage as it was written before ranking became lazy:
// every eligible candidate sorted, then the same walk. It is the oracle of
// TestApplyRulesMatchesFullSort. It returns the items shown and the pool
// (Config.PoolSize best eligible candidates, MaxPerCategory+ExploreTop-1
// of a category at most).
func refRules(e *Engine, items []event.Item, scores []float64, req Request, act features.Activity, d *Decision, greedy string) ([]Item, []PoolItem) {
	exclude := map[string]struct{}{}
	for _, id := range req.Exclude {
		exclude[id] = struct{}{}
	}
	for _, id := range act.Clicked {
		exclude[id] = struct{}{}
	}
	var rk []ranked
	for i := range items {
		if _, bad := exclude[items[i].ID]; items[i].Available && !bad {
			rk = append(rk, ranked{scores[i], i})
		}
	}
	slices.SortFunc(rk, func(a, b ranked) int {
		if r := cmpDesc(a.score, b.score); r != 0 {
			return r
		}
		return a.i - b.i
	})
	var order []int
	var pool []PoolItem
	perCat := map[string]int{}
	for _, r := range rk {
		order = append(order, r.i)
		if c := items[r.i].Category; len(pool) < e.cfg.PoolSize && perCat[c] < e.cfg.MaxPerCategory+max(e.cfg.ExploreTop-1, 1) {
			perCat[c]++
			pool = append(pool, PoolItem{ItemID: items[r.i].ID, Category: c, Score: scores[r.i], Popularity: e.index.Popularity(items[r.i].ID)})
		}
	}
	var pcg rand.PCG
	pcg.Seed(maphash.String(e.idSeed, d.RequestID), 0x5157)
	rng := rand.New(&pcg)
	catIdx := map[string]int{}
	var cats []catState
	catOf := func(i int) *catState { return &cats[catIdx[items[i].Category]] }
	for _, i := range order {
		k, ok := catIdx[items[i].Category]
		if !ok {
			k = len(cats)
			catIdx[items[i].Category] = k
			cats = append(cats, catState{})
		}
		cats[k].left++
	}
	taken := make([]bool, len(order))
	eligible := len(order)
	usable := func(k int) bool { return !taken[k] && catOf(order[k]).shown < e.cfg.MaxPerCategory }
	var out []Item
	head := 0
	for len(out) < req.Count && eligible > 0 {
		for head < len(order) && !usable(head) {
			head++
		}
		if head == len(order) {
			break
		}
		m := eligible
		if t := e.cfg.ExploreTop; t > 0 && t < m {
			m = t
		}
		n := float64(m)
		k, reason := head, greedy
		prop := (1 - e.cfg.Explore) + e.cfg.Explore/n
		if e.cfg.Explore > 0 && rng.Float64() < e.cfg.Explore {
			if j := rng.IntN(m); j != 0 {
				for k = head + 1; ; k++ {
					if usable(k) {
						if j--; j == 0 {
							break
						}
					}
				}
				reason, prop = "explore", e.cfg.Explore/n
			}
		}
		if !d.KnownUser && reason == greedy {
			reason = "cold_start"
		}
		pick := order[k]
		taken[k] = true
		c := catOf(pick)
		c.shown++
		c.left--
		eligible--
		if c.shown == e.cfg.MaxPerCategory {
			eligible -= c.left
		}
		out = append(out, Item{ItemID: items[pick].ID, Category: items[pick].Category, Score: scores[pick], Reason: reason, Propensity: prop})
	}
	if greedy != "model" {
		return out, pool
	}
	for r, cat := range act.RecentCategories {
		if r >= e.cfg.RecentSlots {
			break
		}
		shown := false
		for i := range out {
			if out[i].Category == cat && out[i].Reason != "explore" {
				shown = true
			}
		}
		if shown {
			continue
		}
		k, ok := catIdx[cat]
		if !ok || cats[k].shown >= e.cfg.MaxPerCategory {
			continue
		}
		pick := -1
		for j, i := range order {
			if !taken[j] && items[i].Category == cat {
				pick, taken[j] = i, true
				break
			}
		}
		if pick < 0 {
			continue
		}
		slot := len(out)
		if slot >= req.Count {
			slot = -1
			for j := len(out) - 1; j >= 0; j-- {
				if rs := out[j].Reason; rs != "explore" && rs != reasonRecent {
					slot = j
					break
				}
			}
			if slot < 0 {
				break
			}
			if k, ok := catIdx[out[slot].Category]; ok {
				cats[k].shown--
			}
		} else {
			out = append(out, Item{})
		}
		cats[k].shown++
		out[slot] = Item{ItemID: items[pick].ID, Category: items[pick].Category, Score: scores[pick], Reason: reasonRecent, Propensity: 1}
	}
	return out, pool
}

// TestApplyRulesMatchesFullSort checks on random inputs (ties, exclusions,
// unavailable items, few and many categories, exploration up to 0.9, recent
// categories) that the lazily ranked rules stage answers exactly what
// sorting every candidate answers: the same items in the same order, with
// the same reasons and propensities.
func TestApplyRulesMatchesFullSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	engines := map[string]*Engine{}
	explored, recent := 0, 0
	for trial := range 3000 {
		explore := []float64{-1, 0.05, 0.3, 0.9}[trial%4]
		maxCat := 1 + rng.IntN(4)
		slots := rng.IntN(3)
		top := []int{0, 1, 3, 10}[rng.IntN(4)]
		pool := []int{0, 5, 20}[rng.IntN(3)]
		key := fmt.Sprint(explore, maxCat, slots, top, pool)
		e := engines[key]
		if e == nil {
			e = newTestEngine(t, &fakeStore{}, &fakeScorer{}, func(c *Config) {
				c.Explore, c.MaxPerCategory, c.RecentSlots = explore, maxCat, slots
				c.ExploreTop, c.PoolSize = top, pool
			})
			engines[key] = e
		}
		n := rng.IntN(300)
		ncat := 1 + rng.IntN(40)
		levels := 1 + rng.IntN(1000) // few levels: many ties
		items := make([]event.Item, n)
		scores := make([]float64, n)
		for i := range items {
			items[i] = event.Item{ID: fmt.Sprintf("i%d", i), Category: fmt.Sprintf("c%d", rng.IntN(ncat)), Available: rng.IntN(20) != 0}
			scores[i] = float64(rng.IntN(levels)) / float64(levels)
		}
		req := Request{UserID: "u", Count: 1 + rng.IntN(30), RequestID: fmt.Sprint("r", trial)}
		var act features.Activity
		for range rng.IntN(10) {
			if n > 0 {
				req.Exclude = append(req.Exclude, items[rng.IntN(n)].ID)
				act.Clicked = append(act.Clicked, items[rng.IntN(n)].ID)
			}
		}
		for range rng.IntN(4) {
			act.RecentCategories = append(act.RecentCategories, fmt.Sprintf("c%d", rng.IntN(ncat+2)))
		}
		sp := newScratch()
		sp.cs.items, sp.scores = items, scores
		for _, it := range items {
			sp.cs.keys = append(sp.cs.keys, model.KeyOf(it))
		}
		blk := &decisionBlock{scorer: e.scorers["ftrl"]}
		blk.d = Decision{RequestID: req.RequestID, Variant: "ftrl", KnownUser: trial%3 != 0}
		want, wantPool := refRules(e, items, scores, req, act, &blk.d, "model")
		e.applyRules(t.Context(), sp, req, act, blk)
		if diff := cmp.Diff(want, blk.d.Items, cmp.Comparer(func(a, b []Item) bool { return len(a) == 0 && len(b) == 0 || cmp.Equal(a, b) })); diff != "" {
			t.Fatalf("trial %d (explore %v top %d, max per category %d, recent slots %d, %d candidates): applyRules items differ from the full sort (-want +got):\n%s",
				trial, explore, top, maxCat, slots, n, diff)
		}
		if diff := cmp.Diff(wantPool, blk.d.Pool, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("trial %d (pool %d, %d candidates): applyRules pool differs from the full sort (-want +got):\n%s", trial, pool, n, diff)
		}
		if top > 0 {
			for _, it := range want {
				if it.Reason == "explore" && it.Propensity < e.cfg.Explore/float64(top)-1e-12 {
					t.Fatalf("trial %d: explored item propensity %v below explore/top = %v", trial, it.Propensity, e.cfg.Explore/float64(top))
				}
			}
		}
		for _, it := range want {
			switch it.Reason {
			case "explore":
				explored++
			case reasonRecent:
				recent++
			}
		}
	}
	if explored < 100 || recent < 100 {
		t.Errorf("explored items %d, recent-category items %d: want at least 100 of each for the comparison to mean something", explored, recent)
	}
}

// TestSelectRanked checks the quickselect against a sort.
func TestSelectRanked(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 500 {
		n := 1 + rng.IntN(200)
		s := make([]rankKey, n)
		for i := range s {
			s[i] = newRankKey(float64(rng.IntN(1+trial%50)), i)
		}
		sorted := slices.Clone(s)
		slices.Sort(sorted)
		k := rng.IntN(n)
		if got := selectRanked(s, k); got != sorted[k] {
			t.Fatalf("selectRanked(%d of %d) = %v, want %v", k, n, got, sorted[k])
		}
	}
}

// TestCatEntry checks the request's category index, including two
// categories whose hashes collide (forced here: about once in 2⁶⁴ with real
// hashes), which must stay two categories.
func TestCatEntry(t *testing.T) {
	sp := newScratch()
	for round := range 2 { // the second round after a reset reuses the arrays
		sp.resetCats(10)
		if _, ok := sp.lookupCat("a", 7); ok {
			t.Fatalf("round %d: lookupCat(a) found a category before any was added", round)
		}
		a, b, c := sp.catEntry("a", 7), sp.catEntry("b", 7), sp.catEntry("c", 8)
		if a == b || a == c || b == c {
			t.Fatalf("round %d: entries a %d, b %d, c %d: want three distinct", round, a, b, c)
		}
		for _, tc := range []struct {
			name string
			h    uint64
			want int
		}{{"a", 7, a}, {"b", 7, b}, {"c", 8, c}} {
			if k := sp.catEntry(tc.name, tc.h); k != tc.want {
				t.Errorf("round %d: catEntry(%s) again = %d, want %d", round, tc.name, k, tc.want)
			}
			if k, ok := sp.lookupCat(tc.name, tc.h); !ok || k != tc.want || sp.cats[k].name != tc.name {
				t.Errorf("round %d: lookupCat(%s) = %d, %v; want %d, true", round, tc.name, k, ok, tc.want)
			}
		}
		if _, ok := sp.lookupCat("d", 7); ok {
			t.Errorf("round %d: lookupCat(d) found a category sharing a's hash", round)
		}
		if len(sp.cats) != 3 {
			t.Errorf("round %d: %d categories, want 3", round, len(sp.cats))
		}
	}
}

// TestRankKey checks that keys order candidates as a stable sort by
// descending score does: higher scores first, equal scores by index, -0 as
// 0, NaN after every number, and scores apart in their tenth significant
// digit still apart.
func TestRankKey(t *testing.T) {
	inf := math.Inf(1)
	scores := []float64{inf, 1e300, 3, 1 + 1e-9, 1, 0.5, 1e-300, 0, math.Copysign(0, -1), -1e-300, -0.5, -1, -1 - 1e-9, -3, -1e300, -inf, math.NaN()}
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := range 2000 {
		a, b := rng.IntN(len(scores)), rng.IntN(len(scores))
		i, j := rng.IntN(maxRanked), rng.IntN(maxRanked)
		if i == j {
			continue
		}
		ka, kb := newRankKey(scores[a], i), newRankKey(scores[b], j)
		// scores is in ranking order, 0 and -0 (positions 7 and 8) equal.
		pa, pb := a, b
		if pa == 8 {
			pa = 7
		}
		if pb == 8 {
			pb = 7
		}
		want := pa < pb || pa == pb && i < j
		if got := ka < kb; got != want {
			t.Fatalf("trial %d: key(%v, %d) < key(%v, %d) = %v, want %v", trial, scores[a], i, scores[b], j, got, want)
		}
		if ka.index() != i {
			t.Fatalf("key(%v, %d).index() = %d", scores[a], i, ka.index())
		}
	}
}
