package engine

import (
	"context"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/sightline/sightline/internal/model"
)

// Discovery settings. A category's list holds up to IndexConfig.Discover
// items: at most discoverEvalSlots under evaluation, the rest the best
// evaluated. DiscoverCandidates takes whole lists for the discoverFocus
// categories the scorer ranks best and the first discoverShort items (the
// best evaluated) of the others. The figures were chosen with the learning
// quality harness (docs/quality.md).
const (
	defaultDiscover = 16
	// discoverEvalSlots bounds the items under evaluation per category.
	discoverEvalSlots = 12
	// discoverEval is the impressions (decayed) after which an item is
	// evaluated.
	discoverEval = 40.0
	// discoverMinShows is the impressions an item under evaluation gets
	// before it can be dropped early.
	discoverMinShows = 5.0
	// discoverPrior is the weight, in impressions, of the category's
	// click-through rate in an item's estimate.
	discoverPrior = 30.0
	// discoverZ scales the standard error in an item's upper bound.
	discoverZ = 1.0
	// discoverBar is the rank among the evaluated items of the rate an item
	// under evaluation must be able to reach to go on: the items a slot
	// limit of three per category would show.
	discoverBar = 3
	// discoverFocus and discoverShort shape DiscoverCandidates.
	discoverFocus = 6
	discoverShort = 3
	// discoverNoRate is a category's rate before any of its impressions.
	discoverNoRate = 0.02
	// maxFocusCats bounds the categories DiscoverCandidates ranks.
	maxFocusCats = 256
	// discoverWeightPrior is the prior precision of an item's weight when
	// an ItemValuer judges it (the standard error of a weight with
	// evidence n is 1/√(discoverWeightPrior+n)).
	discoverWeightPrior = 10.0
)

// discovery finds, per category, the items popularity cannot: popularity
// ranks by clicks, so an item that was never shown is never a candidate and
// never gets a click. A category's discovery list holds items under
// evaluation, taken in catalog order from those never shown, until they
// have had discoverEval impressions or their upper bound (click-through
// rate over decayed impressions, shrunk towards the category's rate, plus
// discoverZ standard errors) falls below the rate of the category's
// discoverBar-th best evaluated item; and the best evaluated items by
// their shrunk rate. The model that ranks the candidates decides what is
// shown (a model with Config.Optimism shows items it knows little about);
// the lists only decide what can be. It is guarded by the index's mutex.
type discovery struct {
	k      int
	dirty  map[*itemStat]struct{}
	unseen map[string][]*itemStat // per category: items never shown, in catalog order
	lists  map[string][]*itemStat // per category: the current list
	views  map[string][]entry     // per category: the list as published
	rates  map[string]*catRate    // per category: inflated decayed impressions and clicks
	scale  float64                // the latest inflation factor: deflates counts
	byCat  map[string][]*itemStat // scratch for refresh
	// value, if set, judges items by a model's own estimate of their
	// quality instead of their click-through rate: see ItemValuer.
	value ItemValuer
	rank  []ranked   // scratch for refresh: candidates of a list
	means []float64  // scratch for refresh
	est   []estimate // scratch for refresh
}

// estimate is what discovery knows of an item: its impressions, its
// estimated quality and the standard error of that.
type estimate struct{ shows, mean, se float64 }

// catRate is a category's inflated decayed impressions and clicks.
type catRate struct{ shows, clicks float64 }

// init sets the list length; k ≤ 0 turns discovery off.
func (d *discovery) init(k int) {
	d.k = k
	d.dirty = make(map[*itemStat]struct{})
	d.unseen = make(map[string][]*itemStat)
	d.lists = make(map[string][]*itemStat)
	d.views = make(map[string][]entry)
	d.rates = make(map[string]*catRate)
	d.byCat = make(map[string][]*itemStat)
	d.scale = 1
}

// put queues a new catalog item s for evaluation.
func (d *discovery) put(s *itemStat) {
	if d.k <= 0 {
		return
	}
	d.unseen[s.item.Category] = append(d.unseen[s.item.Category], s)
	d.dirty[s] = struct{}{}
}

// observe records an impression (clicks 0) or clicks of weight clicks of s
// at inflation inf; s.shows and s.score already include them.
func (d *discovery) observe(s *itemStat, clicks, inf float64) {
	if d.k <= 0 {
		return
	}
	d.scale = max(d.scale, inf)
	r := d.rates[s.item.Category]
	if r == nil {
		r = &catRate{}
		d.rates[s.item.Category] = r
	}
	if clicks == 0 {
		r.shows += inf
	} else {
		r.clicks += clicks * inf
	}
	d.dirty[s] = struct{}{}
}

// estimate returns s's impressions and its click-through rate shrunk
// towards its category's rate p0.
func (d *discovery) estimate(s *itemStat, p0 float64) (shows, rate float64) {
	shows = s.shows / d.scale
	return shows, (s.score/d.scale + discoverPrior*p0) / (shows + discoverPrior)
}

// refresh recomputes the lists of the categories with changed items and
// returns every list, by category in name order; cats and lists are the
// previous ones, returned as they are when nothing changed.
func (d *discovery) refresh(cats []string, lists [][]entry) ([]string, [][]entry) {
	if d.k <= 0 || len(d.dirty) == 0 {
		return cats, lists
	}
	for c := range d.byCat {
		d.byCat[c] = d.byCat[c][:0]
	}
	for s := range d.dirty {
		d.byCat[s.item.Category] = append(d.byCat[s.item.Category], s)
	}
	clear(d.dirty)
	for c, changed := range d.byCat {
		if len(changed) > 0 {
			d.refreshCategory(c, changed)
		}
	}
	cats = make([]string, 0, len(d.views))
	for c := range d.views {
		cats = append(cats, c)
	}
	slices.Sort(cats)
	lists = make([][]entry, len(cats))
	for i, c := range cats {
		lists[i] = d.views[c]
	}
	return cats, lists
}

// refreshCategory recomputes category c's list from its current list, its
// changed items and the next items never shown.
func (d *discovery) refreshCategory(c string, changed []*itemStat) {
	p0 := discoverNoRate
	if r := d.rates[c]; r != nil && r.shows > 0 {
		p0 = (r.clicks + discoverNoRate*discoverPrior*d.scale) / (r.shows + discoverPrior*d.scale)
	}
	q := d.unseen[c]
	for len(q) > 0 && (q[0].shows > 0 || q[0].item.Category != c || !q[0].item.Available) {
		q = q[1:]
	}
	d.unseen[c] = q

	// The candidates of the list, without repeats; score is filled below.
	var cand []*itemStat
	add := func(s *itemStat) {
		if s.item.Category == c && s.item.Available && !slices.Contains(cand, s) {
			cand = append(cand, s)
		}
	}
	for _, s := range d.lists[c] {
		add(s)
	}
	for _, s := range changed {
		add(s)
	}
	for i := 0; i < len(q) && i < d.k; i++ {
		add(q[i])
	}

	// Each candidate's estimate and the standard error of it: a model's
	// weight for the item when there is a valuer, else its shrunk CTR.
	d.est = d.est[:0]
	for _, s := range cand {
		n, m := d.estimate(s, p0)
		se := math.Sqrt(m / (n + discoverPrior))
		if d.value != nil {
			var ev float64
			m, ev = d.value.ItemEvidence(s.item.ID)
			se = 1 / math.Sqrt(discoverWeightPrior+ev)
		}
		d.est = append(d.est, estimate{shows: n, mean: m, se: se})
	}
	// The bar an item under evaluation must be able to reach.
	d.means = d.means[:0]
	for _, e := range d.est {
		if e.shows >= discoverEval {
			d.means = append(d.means, e.mean)
		}
	}
	bar := math.Inf(-1) // until discoverBar items are evaluated, none
	if len(d.means) >= discoverBar {
		slices.SortFunc(d.means, cmpDesc)
		bar = d.means[discoverBar-1]
	} else if d.value == nil {
		bar = p0
	}
	// An item under evaluation ranks above every evaluated one (the
	// furthest along first, to finish evaluations), unless its bound has
	// fallen below the bar; an evaluated item ranks by its estimate.
	const underEval = 1e6
	d.rank = d.rank[:0]
	for i, e := range d.est {
		score := e.mean
		if e.shows < discoverEval && (e.shows < discoverMinShows || e.mean+discoverZ*e.se >= bar) {
			score = underEval + e.shows
		}
		d.rank = append(d.rank, ranked{score: score, i: i})
	}
	slices.SortFunc(d.rank, func(a, b ranked) int {
		if r := cmpDesc(a.score, b.score); r != 0 {
			return r
		}
		return strings.Compare(cand[a.i].item.ID, cand[b.i].item.ID)
	})
	// Keep at most discoverEvalSlots under evaluation and k in all; the
	// published list has the evaluated items first, best first, so that
	// its prefix holds the best known.
	var eval, done []*itemStat
	for _, r := range d.rank {
		if len(eval)+len(done) == d.k {
			break
		}
		if r.score >= underEval {
			if len(eval) < discoverEvalSlots {
				eval = append(eval, cand[r.i])
			}
			continue
		}
		done = append(done, cand[r.i])
	}
	l := append(d.lists[c][:0], done...)
	l = append(l, eval...)
	d.lists[c] = l
	el := make([]entry, len(l))
	for i, s := range l {
		el[i] = entry{item: s.item, key: s.key, id: s.id, score: s.score}
	}
	d.views[c] = el
}

// ItemValuer is implemented by scorers whose model learns a weight per
// item apart from who saw it and where ([model.Model.ItemEvidence]): the
// discovery lists judge the items they evaluate by it instead of by their
// click-through rate, which the position they were shown at biases. Called
// by Refresh under the index's lock; it must be cheap, safe for concurrent
// use and must not block.
type ItemValuer interface {
	ItemEvidence(id string) (weight, evidence float64)
}

// CategoryRanker is implemented by scorers that can score item categories
// for a request before there are candidates: the part of an item's logit
// its category brings. A variant that discovers (Config.Discover) takes
// the discovery lists of the categories its scorer ranks best. Called on
// the request path under the inference budget's parent context; it must
// be safe for concurrent use and must not block.
type CategoryRanker interface {
	CategoryScores(ctx context.Context, x *model.Context, cats []string, out []float64) error
}

// catScores pools DiscoverCandidates' category scores (a buffer handed to
// the scorer would escape to the heap on every request).
var catScores = sync.Pool{New: func() any { return new([maxFocusCats]float64) }}

// DiscoverCandidates fills cs for a variant that discovers: the co-visited
// neighbours of the recent items, the whole discovery list of the
// discoverFocus categories r ranks best for x, and the first discoverShort
// items (the best evaluated) of every other category's list. When r fails
// it takes the categories in name order. It reads the published view only
// and does not allocate once cs has grown.
func (ix *Index) DiscoverCandidates(ctx context.Context, cs *candidateSet, recentItems []string, r CategoryRanker, x *model.Context) {
	v := ix.view.Load()
	cats := v.discCats[:min(len(v.discCats), maxFocusCats)]
	cs.reset(len(recentItems)*ix.cfg.CoVisit + discoverFocus*ix.cfg.Discover + len(cats)*discoverShort)
	for _, id := range recentItems {
		l := v.covis[id]
		for i := range l {
			if l[i].item.Available {
				cs.add(&l[i])
			}
		}
	}
	bp := catScores.Get().(*[maxFocusCats]float64)
	defer catScores.Put(bp)
	scores := bp[:len(cats)]
	if r.CategoryScores(ctx, x, cats, scores) != nil {
		for i := range scores {
			scores[i] = -float64(i)
		}
	}
	var fb [maxFocusCats]bool
	focus := fb[:len(scores)] // parallel to scores and cats; stays on the stack
	for range min(discoverFocus, len(cats)) {
		best, found := 0, false
		for i, s := range scores {
			if !focus[i] && (!found || s > scores[best]) {
				best, found = i, true
			}
		}
		if !found {
			break
		}
		focus[best] = true
	}
	for i := range cats {
		l := v.discLists[i]
		if !focus[i] {
			l = l[:min(len(l), discoverShort)]
		}
		for j := range l {
			if l[j].item.Available {
				cs.add(&l[j])
			}
		}
	}
}
