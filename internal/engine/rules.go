package engine

// The BusinessRules stage: filters, the ranked answer with its per-category
// cap and exploration, the recent-category slots, the logged candidate
// pool, and the popularity fallback.

import (
	"context"
	"hash/maphash"
	"slices"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/features"
	"github.com/sightline/sightline/internal/model"
)

// rulesFilter reports whether a candidate may be shown at all.
type rulesFilter struct {
	exclude map[string]struct{}
	// hashes holds model.IDHash of every id in exclude: a candidate whose
	// key's hash is not in it is not excluded, which spares most
	// candidates hashing their id as a string (a user's clicks are
	// excluded, and candidates are 200 a request).
	hashes *stampSet[uint64]
}

// newFilter fills the scratch exclusion sets from the request and the
// user's clicks.
func newFilter(sp *scratch, req *Request, act *features.Activity) rulesFilter {
	clear(sp.exclude)
	sp.excludeHashes.reset(len(req.Exclude) + len(act.Clicked))
	for _, ids := range [2][]string{req.Exclude, act.Clicked} {
		for _, id := range ids {
			sp.exclude[id] = struct{}{}
			sp.excludeHashes.add(model.IDHash(id))
		}
	}
	return rulesFilter{exclude: sp.exclude, hashes: &sp.excludeHashes}
}

// ok reports whether it may be shown.
func (f rulesFilter) ok(it *event.Item) bool {
	if !it.Available {
		return false
	}
	if len(f.exclude) == 0 {
		return true
	}
	_, bad := f.exclude[it.ID]
	return !bad
}

// okKey is ok for a candidate whose model key is k.
func (f rulesFilter) okKey(it *event.Item, k model.ItemKey) bool {
	if !it.Available {
		return false
	}
	if len(f.exclude) == 0 || !f.hashes.has(k.IDHash()) {
		return true
	}
	_, bad := f.exclude[it.ID]
	return !bad
}

// recordPool records the best Config.PoolSize eligible candidates in the
// ranking's order as d.Pool, skipping the candidates no slot can reach:
// with exploration among the best ExploreTop usable candidates, a
// category's j-th candidate can enter a slot's window only while fewer
// than MaxPerCategory of the category are shown, so only its first
// MaxPerCategory+ExploreTop-1 can (MaxPerCategory+1 without a window,
// where the deeper ones are drawn with a negligible probability). The pool
// then reaches as deep into the ranking as the slots do.
func (e *Engine) recordPool(sp *scratch, blk *decisionBlock) {
	d := &blk.d
	n := min(e.cfg.PoolSize, sp.rank.len())
	// Not an array in the decision block: it would grow the block (zeroed
	// on every request) by a kilobyte, also when no pool is recorded.
	d.Pool = slices.Grow(blk.pool[:0], n)
	per := int32(e.cfg.MaxPerCategory + max(e.cfg.ExploreTop-1, 1))
	sp.poolN = slices.Grow(sp.poolN[:0], len(sp.cats))[:len(sp.cats)]
	clear(sp.poolN)
	for k := 0; len(d.Pool) < n; k++ {
		i, ok := sp.rank.at(k)
		if !ok {
			break
		}
		if c := sp.cat[i]; sp.poolN[c] < per {
			sp.poolN[c]++
			it := &sp.cs.items[i]
			d.Pool = append(d.Pool, PoolItem{ItemID: it.ID, Category: it.Category, Score: sp.probability(sp.scores[i]), Popularity: e.index.popularityOf(sp.cs.keys[i])})
		}
	}
	blk.pool = d.Pool
}

// usable reports whether a slot may still take a candidate: a value
// rather than a closure, so that ranking.nth's scan of the candidates
// calls it inline.
type usable struct {
	taken []bool  // per candidate: in the answer
	cat   []int32 // per candidate: its entry in cats
	cats  []catState
	max   int // Config.MaxPerCategory
}

// ok reports whether candidate i is not taken and its category is below
// its cap.
func (u usable) ok(i int) bool { return !u.taken[i] && u.cats[u.cat[i]].shown < u.max }

// reasonRecent marks an item shown because its category is one the user
// engaged with last (Config.RecentSlots).
const reasonRecent = "recent_category"

// applyRules is the BusinessRules stage: drop excluded, clicked and
// unavailable items, rank by score with at most MaxPerCategory per category,
// and explore a share of slots, recording each item's propensity. Last, the
// user's most recent categories get their slots (Config.RecentSlots).
func (e *Engine) applyRules(ctx context.Context, sp *scratch, req Request, act features.Activity, blk *decisionBlock) {
	d := &blk.d
	start, wall := e.stageStart(blk)
	_, span := e.stageSpan(ctx, blk, "BusinessRules")
	f := newFilter(sp, &req, &act)
	greedy := "popularity" // the control ranks by popularity, not by a model
	if c, ok := blk.scorer.(Calibrated); ok && c.Calibrated() {
		greedy = "model"
	}
	items, keys := sp.cs.items, sp.cs.keys
	scores := sp.scores
	// Per category: items shown and eligible candidates left. A category at
	// its cap leaves the eligible pool all at once, so each slot costs O(1)
	// except for the walk to the next eligible item. sp.cat maps each
	// candidate to its category's entry, -1 for a candidate the filter
	// drops.
	sp.resetCats(len(items))
	sp.cat = slices.Grow(sp.cat[:0], len(items))[:len(items)]
	sp.taken = slices.Grow(sp.taken[:0], len(items))[:len(items)]
	clear(sp.taken)
	rs := sp.ranked[:0]
	prevCat, prevK := "", -1
	for i := range items {
		it := &items[i]
		if i >= maxRanked || !f.okKey(it, keys[i]) { // a rankKey's index holds maxRanked
			sp.cat[i] = -1
			continue
		}
		rs = append(rs, newRankKey(scores[i], i))
		k := prevK
		if k < 0 || it.Category != prevCat {
			k = sp.catEntry(it.Category, keys[i].CategoryHash())
			prevCat, prevK = it.Category, k
		}
		sp.cat[i] = int32(k)
		sp.cats[k].left++
	}
	sp.ranked = rs
	// Rank eligible candidates by score, ties in candidate order (the order
	// of a stable sort), lazily: only as deep as the answer reads.
	rk := &sp.rank
	rk.reset(rs)
	sp.pcg.Seed(maphash.String(e.idSeed, d.RequestID), 0x5157)
	rng := sp.rng
	taken := sp.taken
	eligible := rk.len()
	free := usable{taken: taken, cat: sp.cat, cats: sp.cats, max: e.cfg.MaxPerCategory}
	if req.Count <= len(blk.items) {
		d.Items = blk.items[:0]
	} else {
		d.Items = make([]Item, 0, req.Count)
	}
	d.Eligible, d.Explore, d.ExploreTop = eligible, e.cfg.Explore, e.cfg.ExploreTop
	head := 0
	for len(d.Items) < req.Count && eligible > 0 {
		top, ok := rk.at(head)
		for ok && !free.ok(top) {
			head++
			top, ok = rk.at(head)
		}
		if !ok {
			break
		}
		// Exploration draws uniformly from the window of the m best usable
		// candidates (all of them without ExploreTop); the greedy pick is
		// one of them.
		m := eligible
		if t := e.cfg.ExploreTop; t > 0 && t < m {
			m = t
		}
		n := float64(m)
		pick, reason := top, greedy
		prop := (1 - e.cfg.Explore) + e.cfg.Explore/n
		if e.cfg.Explore > 0 && rng.Float64() < e.cfg.Explore {
			if j := rng.IntN(m); j != 0 {
				// The j-th eligible item after head.
				if i, ok := rk.nth(head, j, free); ok {
					pick, reason, prop = i, "explore", e.cfg.Explore/n
				}
			}
		}
		if !d.KnownUser && reason == greedy {
			reason = "cold_start"
		}
		it := &items[pick]
		taken[pick] = true
		c := &sp.cats[sp.cat[pick]]
		c.shown++
		c.left--
		eligible--
		if c.shown == e.cfg.MaxPerCategory {
			eligible -= c.left
		}
		d.Items = append(d.Items, Item{ItemID: it.ID, Category: it.Category, Score: sp.probability(scores[pick]), Reason: reason, Propensity: prop})
	}
	if greedy == "model" { // the popularity control stays unpersonalised
		e.recentSlots(sp, req.Count, act.RecentCategories, d)
	}
	if e.cfg.PoolSize > 0 {
		e.recordPool(sp, blk)
	}
	e.stage(blk, StageRules, start, wall, nil)
	span.End()
}

// recentSlots makes a click visible in the user's next answer: for each of
// the user's RecentSlots most recent categories that the ranked answer does
// not already show (explored items aside), the best eligible candidate of
// that category takes the last slot not explored nor already given to a
// recent category (or a free slot), deterministically (propensity 1). The
// model learns slowly from one user's click; this rule does not wait for it.
func (e *Engine) recentSlots(sp *scratch, count int, recent []string, d *Decision) {
	items, scores := sp.cs.items, sp.scores
	for r, cat := range recent {
		if r >= e.cfg.RecentSlots {
			return
		}
		shown := false
		for i := range d.Items {
			if d.Items[i].Category == cat && d.Items[i].Reason != "explore" {
				shown = true
				break
			}
		}
		if shown {
			continue
		}
		k, ok := sp.lookupCat(cat, model.CategoryHash(cat))
		if !ok || sp.cats[k].shown >= e.cfg.MaxPerCategory {
			continue // no eligible candidate of the category
		}
		// The best eligible candidate of the category not yet taken.
		pick := -1
		for i, ki := range sp.cat {
			if int(ki) == k && !sp.taken[i] && (pick < 0 || newRankKey(scores[i], i) < newRankKey(scores[pick], pick)) {
				pick = i
			}
		}
		if pick < 0 {
			continue
		}
		sp.taken[pick] = true
		slot := len(d.Items)
		if slot >= count {
			slot = -1
			for j := len(d.Items) - 1; j >= 0; j-- {
				if rs := d.Items[j].Reason; rs != "explore" && rs != reasonRecent {
					slot = j
					break
				}
			}
			if slot < 0 {
				return
			}
			c := d.Items[slot].Category
			if k, ok := sp.lookupCat(c, model.CategoryHash(c)); ok {
				sp.cats[k].shown--
			}
		} else {
			d.Items = append(d.Items, Item{})
		}
		sp.cats[k].shown++
		it := &items[pick]
		d.Items[slot] = Item{ItemID: it.ID, Category: it.Category, Score: sp.probability(scores[pick]), Reason: reasonRecent, Propensity: 1}
	}
}

// fallback answers from popular items for the user's segment, under the same
// exclusion and diversity rules. It is deterministic: propensity 1.
func (e *Engine) fallback(ctx context.Context, sp *scratch, req Request, act features.Activity, blk *decisionBlock) {
	d := &blk.d
	start, wall := e.stageStart(blk)
	_, span := e.stageSpan(ctx, blk, "BusinessRules")
	if span.IsRecording() {
		span.SetAttributes(attrFallback.String(string(d.Fallback)))
	}
	f := newFilter(sp, &req, &act)
	// sp.catIdx counts items per category here; seen ids are in the
	// candidate set's id-free twin: a linear scan of the answer, which
	// holds at most Count (≤ 100) items.
	clear(sp.catIdx)
	if req.Count <= len(blk.items) {
		d.Items = blk.items[:0]
	} else {
		d.Items = make([]Item, 0, req.Count)
	}
	e.index.Popular(d.Segment, func(it event.Item, score float64) bool {
		if !f.ok(&it) || sp.catIdx[it.Category] >= e.cfg.MaxPerCategory {
			return true
		}
		for i := range d.Items {
			if d.Items[i].ItemID == it.ID {
				return true
			}
		}
		sp.catIdx[it.Category]++
		d.Items = append(d.Items, Item{ItemID: it.ID, Category: it.Category, Score: score, Reason: "popular", Propensity: 1})
		return len(d.Items) < req.Count
	})
	e.stage(blk, StageRules, start, wall, nil)
	span.End()
}
