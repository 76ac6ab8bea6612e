package evaluate

import (
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/sightline/sightline/internal/decisionlog"
	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
)

// cand is one candidate of a decision as the targets see it: the pool's
// candidates in the serving ranking's order, then the shown items the pool
// does not hold, in slot order.
type cand struct {
	id, category string
	cat          int // index of the category among the decision's
	// rank is the candidate's rank in the serving ranking of the eligible
	// candidates: its pool index, or len(Pool) when it is not in the pool
	// (somewhere below it).
	rank int
	// shownAt is the first slot that showed it, -1 when it was not shown.
	shownAt int
	// score is the serving score (a probability when the serving variant
	// was a calibrated model); popularity is -1 when unknown.
	score, popularity float64
}

// view is one decision prepared for the targets: its candidates, the slot
// each shown item is, the model context and the outcome of each slot. The
// evaluator reuses one view for every decision.
type view struct {
	d     *decisionlog.Decision
	cands []cand
	items []event.Item // cands as model items, for scoring
	shown []int        // cand index of each slot
	bits  []uint8      // outcome bits of each slot
	ncat  int
	cats  []string // distinct categories, by cat index
	x     model.Context
	prep  model.Prepared
	// calibrated: the serving scores are click probabilities (a model
	// variant served); fallback: the decision fell back.
	calibrated, fallback bool
	byID                 map[string]int // cand index by id, for large pools
	// rho caches propensity by slot (0: not computed); dp is the scratch
	// of marginalRank.
	rho, dp []float64
	// maxPer is the serving diversity cap; catN the scratch of cappedAbove.
	maxPer int
	catN   []int
	// cap holds cappedMarginals' propensities by slot when capDone;
	// logged, taken, win and rng are its scratch.
	cap     []float64
	capDone bool
	logged  []int
	taken   []bool
	win     []int
	fill    []int
	fillP   []float64
	flag    []uint8
	catOf   []int32
	rng     rand.PCG
	rand    *rand.Rand
	// recentSlots is the serving recent-category rule's slot count.
	recentSlots int
}

// popularityVariant is the name of the serving control that ranks by
// popularity; its scores are not probabilities.
const popularityVariant = "popularity"

// load fills v from d and its outcomes, hashing the model context with
// hasher when it is not nil. It reports false when d cannot be
// evaluated: a slot's propensity outside (0, 1].
func (v *view) load(d *decisionlog.Decision, j *joinIndex, outs []outcome, hasher *model.Model) bool {
	for i := range d.Items {
		p := d.Items[i].Propensity
		if !(p > 0 && p <= 1) {
			return false
		}
	}
	v.d = d
	v.fallback = d.FallbackReason != ""
	v.calibrated = !v.fallback && d.Variant != popularityVariant && !strings.HasPrefix(d.ModelVersion, popularityVariant)
	v.cands = v.cands[:0]
	v.cats = v.cats[:0]
	v.ncat = 0
	large := len(d.Pool) > 32
	if large {
		if v.byID == nil {
			v.byID = map[string]int{}
		}
		clear(v.byID)
	}
	for i := range d.Pool {
		c := &d.Pool[i]
		if v.find(c.ItemID, large) >= 0 {
			continue // a repeated pool entry
		}
		v.addCand(cand{id: c.ItemID, category: c.Category, rank: i, shownAt: -1, score: c.Score, popularity: c.Popularity}, large)
	}
	v.shown = v.shown[:0]
	v.bits = v.bits[:0]
	v.rho = v.rho[:0]
	v.capDone = false
	for k := range d.Items {
		s := &d.Items[k]
		ci := v.find(s.ItemID, large)
		if ci < 0 {
			pop := -1.0
			if !v.calibrated && !v.fallback {
				pop = s.Score // the popularity control scores by popularity
			}
			ci = v.addCand(cand{id: s.ItemID, category: s.Category, rank: len(d.Pool), shownAt: -1, score: s.Score, popularity: pop}, large)
		}
		if v.cands[ci].shownAt < 0 {
			v.cands[ci].shownAt = k
		}
		v.shown = append(v.shown, ci)
		v.bits = append(v.bits, j.bits(outs, s.ItemID))
	}
	v.items = v.items[:0]
	for i := range v.cands {
		c := &v.cands[i]
		v.items = append(v.items, event.Item{ID: c.id, Category: c.category, Available: true})
	}
	v.x = model.Context{
		User: event.User{
			AgeBucket: deref(d.UserAgeBucket),
			Segment:   deref(d.UserSegment),
			Region:    deref(d.UserRegion),
			Device:    deref(d.UserDevice),
		},
		Channel:          d.Channel,
		Hour:             int(d.Hour),
		RecentCategories: d.RecentCategories,
	}
	if hasher != nil {
		// The hashes do not depend on the model: one Prepared serves
		// every model target.
		hasher.Prepare(&v.x, &v.prep)
	}
	return true
}

// find returns the index of the candidate with id, or -1.
func (v *view) find(id string, large bool) int {
	if large {
		if i, ok := v.byID[id]; ok {
			return i
		}
		return -1
	}
	for i := range v.cands {
		if v.cands[i].id == id {
			return i
		}
	}
	return -1
}

// addCand appends c, interning its category, and returns its index.
func (v *view) addCand(c cand, large bool) int {
	c.cat = -1
	for i, s := range v.cats {
		if s == c.category {
			c.cat = i
			break
		}
	}
	if c.cat < 0 {
		c.cat = len(v.cats)
		v.cats = append(v.cats, c.category)
		v.ncat = len(v.cats)
	}
	v.cands = append(v.cands, c)
	i := len(v.cands) - 1
	if large {
		v.byID[c.id] = i
	}
	return i
}

// pooled reports whether a target may choose candidate ci: a pool
// candidate, or any candidate of a decision logged without a pool. A
// shown item below the pool is known only because the logging policy drew
// it: a target choosing it would match the log by construction, and its
// estimate would be biased up.
func (v *view) pooled(ci int) bool {
	return len(v.d.Pool) == 0 || v.cands[ci].rank < len(v.d.Pool)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// unsupported reports whether the logging policy of v's decision could
// never have shown candidate ci in slot k. A slot the logging policy filled
// deterministically (propensity 1: no exploration, a recent-category slot,
// a single eligible candidate) supports only the item it showed. With
// exploration among the top T (ExploreTop), slot k (from 0) can show at
// best the candidates ranked up to k+T-1 (the greedy picks above it moved
// the window down by k); the diversity cap, which can only push the window
// further down, is ignored, so this errs towards "unsupported". Without a
// window, exploration can show any eligible candidate anywhere.
func (v *view) unsupported(ci, k int) bool {
	if ci == v.shown[k] {
		return false
	}
	d := v.d
	if d.Items[k].Propensity >= 1 {
		return true
	}
	t := int(d.ExploreTop)
	if t <= 0 {
		return false
	}
	c := &v.cands[ci]
	if c.rank < len(d.Pool) {
		return c.rank-v.cappedAbove(c.rank, k) > k+t-1
	}
	// Below the pool: shown by exploration at or above this slot means
	// it was in the window then.
	if c.shownAt >= 0 && c.shownAt <= k && d.Items[c.shownAt].Propensity < 1 {
		return false
	}
	return v.unknownUnsupported(k)
}

// unknownUnsupported reports whether a candidate below the pool is
// unsupported in slot k: when the pool covers the logging window (it holds
// at least k+T candidates) such a candidate lies outside it. When the pool
// is shorter, nothing can be told and it counts as supported.
func (v *view) unknownUnsupported(k int) bool {
	d := v.d
	if d.Items[k].Propensity >= 1 {
		return true
	}
	t := int(d.ExploreTop)
	return t > 0 && len(d.Pool) >= k+t
}

// cappedAbove returns how many pool candidates ranked above rank the
// logged items above slot k had dropped by the diversity cap: not shown
// above, of a category already shown maxPer times there. Serving skipped
// them, so in slot k the candidate stood that much higher in the ranking
// of usable candidates.
func (v *view) cappedAbove(rank, k int) int {
	if k < v.maxPer || v.maxPer <= 0 {
		return 0
	}
	v.catN = slices.Grow(v.catN[:0], v.ncat)[:v.ncat]
	clear(v.catN)
	capped := false
	for _, ci := range v.shown[:k] {
		c := v.cands[ci].cat
		v.catN[c]++
		capped = capped || v.catN[c] >= v.maxPer
	}
	if !capped {
		return 0
	}
	n := 0
	for i := 0; i < rank && i < len(v.cands); i++ {
		c := &v.cands[i] // the pool's candidates come first, in rank order
		if v.catN[c.cat] >= v.maxPer && !(c.shownAt >= 0 && c.shownAt < k) {
			n++
		}
	}
	return n
}

// reasonRecent is the slot reason of the engine's recent-category rule,
// which fills a slot deterministically after the ranked fill.
const reasonRecent = "recent_category"

// propensity returns the logging policy's item-position propensity of the
// item shown in slot k: the probability that the policy shows that item
// in that slot, over all the slates it could have drawn (the marginal,
// which the independent-item estimator needs), not given the items above.
//
// In slot 1 it is the logged propensity. Below it is reconstructed from
// the decision's exploration settings and the serving ranking (the pool)
// by marginalRank; where that cannot be done (the item is below the pool,
// the slot was filled deterministically) the logged propensity stands in.
func (v *view) propensity(k int) float64 {
	if k < len(v.rho) && v.rho[k] > 0 {
		return v.rho[k]
	}
	d := v.d
	s := &d.Items[k]
	p := s.Propensity
	if k > 0 && p < 1 && s.Reason != reasonRecent && d.Explore > 0 {
		if c := &v.cands[v.shown[k]]; c.rank < len(d.Pool) {
			if !v.capDone {
				v.capDone = true
				v.cap = v.cap[:0]
				if v.capBinds() {
					v.cappedMarginals()
				}
			}
			// The cap binds from slot maxPer on; above it marginalRank is
			// exact, and free of the rollouts' noise. Where no rollout
			// put the logged item in the window (a rare placement), it
			// stands in: an approximation of the right order, where the
			// logged per-slot propensity can be many times too large.
			if len(v.cap) > k && k >= v.maxPer && v.cap[k] > 0 {
				p = v.cap[k]
			} else if rho := v.marginalRank(c.rank-v.cappedAbove(c.rank, k), k); rho > 0 {
				p = rho
			}
		}
	}
	for len(v.rho) <= k {
		v.rho = append(v.rho, 0)
	}
	v.rho[k] = p
	return p
}

// marginalRank returns the probability that the logging policy shows the
// candidate of serving rank r0 (0 is the best eligible) in slot k,
// following the engine's exploration (engine/recommend.go applyRules):
// per slot, the best usable candidate with probability 1-ε+ε/m, else each
// of the next m-1 usable ones with ε/m, m = min(ExploreTop, eligible left).
//
// Seen from one candidate, the candidates above it are interchangeable:
// only how many of them are left matters. So the distribution of that
// count is carried slot by slot (O(k·r0)). The diversity cap is ignored:
// it can drop a category's candidates from the ranking at once, which this
// does not foresee, so the result is exact while the cap does not bind.
func (v *view) marginalRank(r0, k int) float64 {
	d := v.d
	eps := d.Explore
	elig := max(int(d.Eligible), len(d.Pool))
	top := int(d.ExploreTop)
	pr := slices.Grow(v.dp[:0], r0+1)[:r0+1]
	clear(pr)
	pr[r0] = 1
	for j := 0; ; j++ {
		m := max(elig-j, 1)
		if top > 0 {
			m = min(m, top)
		}
		mf := float64(m)
		head := 1 - eps + eps/mf
		if j == k {
			rho := pr[0] * head
			for r := 1; r < min(m, len(pr)); r++ {
				rho += pr[r] * eps / mf
			}
			v.dp = pr
			return rho
		}
		// One slot on: the candidate is taken (dropped from pr) or the
		// count above it falls by one or stays.
		pr[0] *= 1 - head
		for r := 1; r < len(pr); r++ {
			x := pr[r]
			if x == 0 {
				continue
			}
			var down float64
			if r < m {
				down = x * (head + float64(r-1)*eps/mf)
				pr[r] = x * float64(m-1-r) * eps / mf
			} else {
				down = x
				pr[r] = 0
			}
			pr[r-1] += down
		}
	}
}
