package evaluate

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
)

// target is one target policy under evaluation with its sums.
type target struct {
	spec Spec
	m    *model.Model // snapshot and ftrl targets
	// learns: the model learns from each decision after scoring it.
	learns bool
	// created is the snapshot's creation time (snapshot targets).
	created time.Time

	sums  sums
	diags []diag

	// Scratch, reused per decision.
	scores, q []float64
	order     []int  // cand indices by the target's ranking
	slate     []int  // cand index of each of the target's slots, -1 if none
	fixed     []bool // slot k of the slate is a deterministic recent-category slot
	inSlate   []bool // by cand
	catCount  []int  // by category: items of the slate so far
	// outside: slot k of a shadow target's slate is a recorded choice
	// that is not among the decision's pooled candidates.
	outside []bool
}

// newTarget builds the target of sp. A snapshot is loaded; an ftrl target
// starts from its "from" snapshot or an empty model.
func newTarget(sp Spec, groups int) (*target, error) {
	t := &target{spec: sp, sums: sums{groups: groups, nf: targetFields}}
	var err error
	switch sp.Kind {
	case KindLogged, KindPopularity, KindShadow:
	case KindSnapshot:
		var meta model.SnapshotMeta
		if t.m, meta, err = model.LoadFile(sp.Path, model.Config{}); err != nil {
			return nil, fmt.Errorf("policy %s: %w", sp, err)
		}
		t.created = meta.Created
	case KindFTRL:
		t.learns = true
		cfg := sp.Model
		if sp.Path != "" {
			if t.m, _, err = model.LoadFile(sp.Path, cfg); err != nil {
				return nil, fmt.Errorf("policy %s: %w", sp, err)
			}
		} else if t.m, err = model.New(cfg); err != nil {
			return nil, fmt.Errorf("policy %s: %w", sp, err)
		}
	default:
		return nil, fmt.Errorf("%w: kind %q", ErrInvalidSpec, sp.Kind)
	}
	return t, nil
}

// score fills t.scores (the target's ranking score) and t.q (its reward
// model: predicted click probability, or 0 where it has none) for v's
// candidates.
func (t *target) score(v *view) {
	n := len(v.cands)
	t.scores = slices.Grow(t.scores[:0], n)[:n]
	t.q = slices.Grow(t.q[:0], n)[:n]
	switch {
	case t.m != nil:
		t.m.Score(&v.prep, v.items, t.scores)
		copy(t.q, t.scores)
	default: // popularity
		for i := range v.cands {
			c := &v.cands[i]
			t.scores[i] = c.popularity
			t.q[i] = 0
			if v.calibrated {
				t.q[i] = c.score // the logging model's probability
			}
		}
	}
}

// buildSlate builds the target's deterministic slate as serving's rules
// would: candidates by descending score (ties in candidate order, the
// serving ranking's), at most maxPerCat of a category, as many slots as the
// decision showed; then, for a model target, the recent-category slots.
func (t *target) buildSlate(v *view, maxPerCat, recentSlots int) {
	n, K := len(v.cands), len(v.shown)
	t.order = slices.Grow(t.order[:0], n)[:n]
	for i := range t.order {
		t.order[i] = i
	}
	slices.SortStableFunc(t.order, func(a, b int) int { return cmp.Compare(t.scores[b], t.scores[a]) })
	t.slate = t.slate[:0]
	t.fixed = t.fixed[:0]
	t.inSlate = slices.Grow(t.inSlate[:0], n)[:n]
	clear(t.inSlate)
	t.catCount = slices.Grow(t.catCount[:0], v.ncat)[:v.ncat]
	clear(t.catCount)
	for _, i := range t.order {
		if len(t.slate) == K {
			break
		}
		c := &v.cands[i]
		if t.catCount[c.cat] >= maxPerCat || !v.pooled(i) {
			continue
		}
		t.catCount[c.cat]++
		t.inSlate[i] = true
		t.slate = append(t.slate, i)
		t.fixed = append(t.fixed, false)
	}
	if t.m != nil {
		t.recentSlots(v, K, maxPerCat, recentSlots)
	}
	for len(t.slate) < K {
		t.slate = append(t.slate, -1)
		t.fixed = append(t.fixed, false)
	}
}

// recordedSlate builds a shadow target's slate from the choices recorded
// in v's decision, slot by slot, and its reward model: the recorded
// predictions for its choices, the serving model's elsewhere (when it is
// calibrated). A slot past its choices is no choice (unsupported); a
// choice that is not a pooled candidate of the decision (below the pool,
// where the log tells nothing of it, or known only because the logging
// policy drew it) matches no logged item: its weight is 0, and it is
// unsupported when the pool covers the logging window.
func (t *target) recordedSlate(v *view) {
	n, K := len(v.cands), len(v.shown)
	t.q = slices.Grow(t.q[:0], n)[:n]
	for i := range v.cands {
		t.q[i] = 0
		if v.calibrated {
			t.q[i] = v.cands[i].score
		}
	}
	t.slate, t.fixed, t.outside = t.slate[:0], t.fixed[:0], t.outside[:0]
	large := len(v.d.Pool) > 32 // as view.load indexes its candidates
	for k := range K {
		ci, out := -1, false
		if k < len(v.d.ShadowItems) {
			s := &v.d.ShadowItems[k]
			if i := v.find(s.ItemID, large); i >= 0 && v.pooled(i) {
				ci = i
				t.q[i] = s.Score
			} else {
				out = true
			}
		}
		t.slate = append(t.slate, ci)
		t.fixed = append(t.fixed, false)
		t.outside = append(t.outside, out)
	}
}

// recentSlots mirrors the engine's rule: for each of the user's
// recentSlots most recent categories the slate does not show, its best
// candidate takes a free slot, or else the last slot not already given to a
// recent category.
func (t *target) recentSlots(v *view, K, maxPerCat, recentSlots int) {
	for r, cat := range v.d.RecentCategories {
		if r >= recentSlots {
			return
		}
		ci := -1
		for i, s := range v.cats {
			if s == cat {
				ci = i
				break
			}
		}
		if ci < 0 || t.catCount[ci] > 0 || t.catCount[ci] >= maxPerCat {
			continue // no candidate of the category, or already shown
		}
		pick := -1
		for _, i := range t.order {
			if v.cands[i].cat == ci && !t.inSlate[i] {
				pick = i
				break
			}
		}
		if pick < 0 {
			continue
		}
		slot := len(t.slate)
		if slot >= K {
			slot = -1
			for j := len(t.slate) - 1; j >= 0; j-- {
				if !t.fixed[j] {
					slot = j
					break
				}
			}
			if slot < 0 {
				return
			}
			old := t.slate[slot]
			t.inSlate[old] = false
			t.catCount[v.cands[old].cat]--
		} else {
			t.slate = append(t.slate, 0)
			t.fixed = append(t.fixed, false)
		}
		t.slate[slot], t.fixed[slot] = pick, true
		t.inSlate[pick] = true
		t.catCount[ci]++
	}
}

// slotResult is a target's weight and model terms at one slot.
type slotResult struct {
	// pi is the target's probability of the logged item in this slot.
	pi float64
	// dm is the reward model's expected reward of the target's choice
	// (the direct method term of DR); qa its prediction for the logged item.
	dm, qa float64
	// unsup is the target's probability mass on choices the logging
	// policy could never have made in this slot.
	unsup float64
}

// slot evaluates the target at slot k of v, after buildSlate.
func (t *target) slot(v *view, k, maxPerCat int) slotResult {
	a := v.shown[k]
	tk := t.slate[k]
	res := slotResult{qa: t.q[a]}
	eps := t.spec.Explore
	if eps == 0 || t.fixed[k] {
		if tk < 0 {
			unsup := 1.0
			if k < len(t.outside) && t.outside[k] && !v.unknownUnsupported(k) {
				unsup = 0
			}
			return slotResult{qa: t.q[a], unsup: unsup}
		}
		res.dm = t.q[tk]
		if tk == a {
			res.pi = 1
		}
		if v.unsupported(tk, k) {
			res.unsup = 1
		}
		return res
	}
	// A stochastic target: its own pick with 1-ε+ε/n, each other member
	// of its window (usable candidates not in its slate above, its best
	// explore_top of them) with ε/n, where n counts the eligible
	// candidates the log does not list as well (they are below the pool).
	var (
		known  int // window members known, the pick included
		sumQ   float64
		sumUns float64
		inWin  bool
	)
	for _, i := range t.order {
		if t.spec.ExploreTop > 0 && known >= t.spec.ExploreTop {
			break
		}
		if t.takenAbove(i, k) || t.capAbove(v, i, k, maxPerCat) || !v.pooled(i) {
			continue
		}
		known++
		if i == tk {
			continue
		}
		sumQ += t.q[i]
		if v.unsupported(i, k) {
			sumUns++
		}
		if i == a {
			inWin = true
		}
	}
	n := max(known, int(v.d.Eligible)-k, 1)
	if t.spec.ExploreTop > 0 {
		n = min(n, t.spec.ExploreTop)
	}
	unknown := float64(max(n-known, 0))
	others := float64(known)
	if tk >= 0 {
		others-- // known members other than the pick
	}
	meanQ := 0.0
	if others > 0 {
		meanQ = sumQ / others
	}
	nf := float64(n)
	pPick := 1 - eps + eps/nf
	if tk < 0 {
		pPick = 0
	}
	switch {
	case a == tk:
		res.pi = pPick
	case inWin:
		res.pi = eps / nf
	}
	if tk >= 0 {
		res.dm = pPick * t.q[tk]
		if v.unsupported(tk, k) {
			res.unsup = pPick
		}
	}
	res.dm += eps / nf * (sumQ + unknown*meanQ)
	if v.unknownUnsupported(k) {
		sumUns += unknown
	}
	res.unsup += eps / nf * sumUns
	return res
}

// takenAbove reports whether candidate i is in the target's slate above
// slot k.
func (t *target) takenAbove(i, k int) bool {
	for j := range k {
		if t.slate[j] == i {
			return true
		}
	}
	return false
}

// capAbove reports whether candidate i's category is at the cap in the
// target's slate above slot k.
func (t *target) capAbove(v *view, i, k, maxPerCat int) bool {
	c := v.cands[i].cat
	n := 0
	for j := range k {
		if s := t.slate[j]; s >= 0 && v.cands[s].cat == c {
			n++
		}
	}
	return n >= maxPerCat
}

// learn trains an ftrl target on v's outcomes as the serving model
// updater does: each impression a negative, each click a positive (a flip
// of the negative its impression taught).
func (t *target) learn(v *view) {
	for k, ci := range v.shown {
		b := v.bits[k]
		if b&(bitImpression|bitClick) == 0 {
			continue
		}
		it := event.Item{ID: v.cands[ci].id, Category: v.cands[ci].category, Available: true}
		if b&bitImpression != 0 {
			t.m.LearnPrepared(&v.prep, it, model.Negative)
		}
		if b&bitClick != 0 {
			l := model.Positive
			if b&bitImpression != 0 {
				l = model.Flip
			}
			t.m.LearnPrepared(&v.prep, it, l)
		}
	}
}
