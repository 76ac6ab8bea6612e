package engine

import (
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
)

// IndexConfig sizes the candidate index. The zero value means the defaults.
type IndexConfig struct {
	// Global is the number of globally popular items kept (default 100).
	Global int
	// PerCategory is the number of popular items kept per category (default 10).
	PerCategory int
	// MaxCategories bounds how many categories contribute candidates to one
	// request (default 64), the user's recent categories first.
	MaxCategories int
	// PerSegment is the number of popular items kept per user segment for the
	// fallback answer (default 100).
	PerSegment int
	// MaxSegments bounds the number of distinct segments tracked (default 32);
	// others share the global list.
	MaxSegments int
	// CoVisit is the number of co-visited neighbours kept per item (default 20).
	CoVisit int
	// HalfLife is the decay half-life of popularity (default 1h).
	HalfLife time.Duration
	// Discover is the length of each category's discovery list (see
	// [Index.DiscoverCandidates]): the variants of Config.Discover take
	// their candidates from it. Default 16 when the engine has such
	// variants, else none; negative: none.
	Discover int
}

func (c *IndexConfig) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Global, 100)
	def(&c.PerCategory, 10)
	def(&c.MaxCategories, 64)
	def(&c.PerSegment, 100)
	def(&c.MaxSegments, 32)
	def(&c.CoVisit, 20)
	if c.HalfLife <= 0 {
		c.HalfLife = time.Hour
	}
}

// Index is the candidate index: popularity lists (global, per category, per
// segment) with exponential decay, and item-to-item co-visitation. Writers
// (Observe, PutItem) take a mutex and mark items dirty; Refresh publishes an
// immutable view (copies, not shared state) that readers use without locks,
// so candidate generation never scans the catalog and never waits on writers.
type Index struct {
	cfg   IndexConfig
	epoch time.Time

	mu        sync.Mutex
	items     map[string]*itemStat
	dirty     map[*itemStat]struct{}
	dirtyCats map[string]struct{}
	segments  map[string]map[*itemStat]float64 // segment → item → inflated score
	segDirty  map[string]struct{}
	global    []*itemStat
	byCat     map[string][]*itemStat
	nextID    uint32
	disc      discovery
	// Refresh's scratch, reused: the changed items, by category, and the
	// mergeTop calls made so far (the marks).
	changed      []*itemStat
	changedByCat map[string][]*itemStat
	merges       uint64
	covisScratch []covisPair

	view atomic.Pointer[indexView]
}

type itemStat struct {
	id    uint32 // dense id, assigned once, for deduplicating candidates
	item  event.Item
	key   model.ItemKey // model.KeyOf(item), for scoring without hashing
	score float64       // inflated decayed popularity (clicks weighted)
	shows float64       // inflated decayed impressions
	// covis is the co-visitation weight with other items (items never
	// leave the catalog index, so a pointer names one for good).
	covis map[*itemStat]float64
	// mark is the mergeTop call that last took the item as changed, which
	// tells it apart from the same item in the previous list.
	mark uint64
}

// entry is an immutable copy of an item and its popularity in a view.
type entry struct {
	item  event.Item
	key   model.ItemKey
	id    uint32
	score float64
}

// indexView is an immutable snapshot of the popularity lists.
type indexView struct {
	global     []entry
	byCategory map[string][]entry
	categories []string  // ordered by popularity
	catLists   [][]entry // byCategory[categories[i]], in the same order
	bySegment  map[string][]entry
	covis      map[string][]entry
	// pop is the popularity of the listed items, 0..1, by model.IDHash of
	// their ids: the candidates' keys hold it, so the pool and the
	// popularity control look it up without hashing ids as strings (two
	// ids colliding, once in 2⁶⁴, would share a popularity).
	pop       map[uint64]float64
	maxScore  float64
	discCats  []string  // the categories with a discovery list, in name order
	discLists [][]entry // the discovery list of each of discCats
}

// NewIndex returns an empty index.
func NewIndex(cfg IndexConfig) *Index {
	cfg.defaults()
	ix := &Index{
		cfg:       cfg,
		epoch:     time.Now(),
		items:     make(map[string]*itemStat),
		dirty:     make(map[*itemStat]struct{}),
		dirtyCats: make(map[string]struct{}),
		segments:  make(map[string]map[*itemStat]float64),
		segDirty:  make(map[string]struct{}),
		byCat:     make(map[string][]*itemStat),
	}
	ix.disc.init(cfg.Discover)
	ix.view.Store(&indexView{byCategory: map[string][]entry{}, bySegment: map[string][]entry{}, covis: map[string][]entry{}, pop: map[uint64]float64{}})
	return ix
}

// weight is the inflation factor for an observation at t: instead of decaying
// every score, newer observations weigh exponentially more, which keeps the
// ordering of scores equal to that of decayed scores.
func (ix *Index) weight(t time.Time) float64 {
	h := t.Sub(ix.epoch).Hours() / ix.cfg.HalfLife.Hours()
	if h > 500 { // keep far from overflow; a restart resets the epoch
		h = 500
	}
	return math.Exp2(h)
}

// PutItem adds or updates a catalog item. It is called for every catalog
// change and must stay cheap.
func (ix *Index) PutItem(it event.Item) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	s, ok := ix.items[it.ID]
	if !ok {
		s = &itemStat{id: ix.nextID}
		ix.nextID++
		ix.items[it.ID] = s
	} else {
		ix.dirtyCats[s.item.Category] = struct{}{}
	}
	s.item, s.key = it, model.KeyOf(it)
	ix.dirtyCats[it.Category] = struct{}{}
	ix.dirty[s] = struct{}{}
	if !ok {
		ix.disc.put(s)
	}
}

// Observe records an interaction event: clicks and conversions raise an
// item's popularity (overall and for segment), impressions its exposure; a
// click also strengthens co-visitation with the user's recent items.
func (ix *Index) Observe(ev *event.Event, segment string, recent []string) {
	var w float64
	switch ev.Type {
	case event.Click:
		w = 1
	case event.Conversion:
		w = 2
	case event.Impression:
	default:
		return
	}
	t := ev.Timestamp
	if t.IsZero() {
		t = time.Now()
	}
	inf := ix.weight(t)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	s, ok := ix.items[ev.ItemID]
	if !ok {
		return // not in the catalog: never a candidate
	}
	if w == 0 {
		s.shows += inf
		ix.disc.observe(s, 0, inf)
		return
	}
	s.score += w * inf
	ix.disc.observe(s, w, inf)
	ix.dirty[s] = struct{}{}
	ix.dirtyCats[s.item.Category] = struct{}{}
	if segment != "" {
		m, ok := ix.segments[segment]
		if !ok && len(ix.segments) < ix.cfg.MaxSegments {
			m = make(map[*itemStat]float64)
			ix.segments[segment] = m
		}
		if m != nil {
			m[s] += w * inf
			ix.segDirty[segment] = struct{}{}
		}
	}
	for i, id := range recent {
		if i >= 5 {
			break
		}
		if id == ev.ItemID {
			continue
		}
		o, ok := ix.items[id]
		if !ok {
			continue
		}
		ix.bumpCovis(s, o, inf)
		ix.bumpCovis(o, s, inf)
	}
}

func (ix *Index) bumpCovis(s, other *itemStat, w float64) {
	if s.covis == nil {
		s.covis = make(map[*itemStat]float64, 4)
	}
	s.covis[other] += w
	if len(s.covis) > 2*ix.cfg.CoVisit {
		// Evict the weakest half so memory stays bounded per item.
		type kv struct {
			k *itemStat
			v float64
		}
		all := make([]kv, 0, len(s.covis))
		for k, v := range s.covis {
			all = append(all, kv{k, v})
		}
		slices.SortFunc(all, func(a, b kv) int { return cmpDesc(a.v, b.v) })
		for _, e := range all[ix.cfg.CoVisit:] {
			delete(s.covis, e.k)
		}
	}
	ix.dirty[s] = struct{}{}
}

func cmpDesc(a, b float64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// Refresh publishes a new view of the popularity lists, merging the items
// changed since the last refresh into the previous top lists. Its cost is
// proportional to the changed items and the list sizes, not the catalog.
// The engine calls it periodically from Run; tests call it directly.
func (ix *Index) Refresh() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if len(ix.dirty) == 0 && len(ix.segDirty) == 0 && len(ix.disc.dirty) == 0 {
		return
	}
	old := ix.view.Load()
	// The changed items once, and by category: each category merges its
	// own, instead of every category filtering all of them (with a click
	// stream of 5,000/s that was a thousand items times each category,
	// five times a second).
	ix.changed = ix.changed[:0]
	if ix.changedByCat == nil {
		ix.changedByCat = make(map[string][]*itemStat)
	}
	for c, l := range ix.changedByCat {
		ix.changedByCat[c] = l[:0]
	}
	for s := range ix.dirty {
		ix.changed = append(ix.changed, s)
		ix.changedByCat[s.item.Category] = append(ix.changedByCat[s.item.Category], s)
	}
	ix.global = ix.mergeTop(ix.global, ix.changed, "", ix.cfg.Global)
	for c := range ix.dirtyCats {
		l := ix.mergeTop(ix.byCat[c], ix.changedByCat[c], c, ix.cfg.PerCategory)
		if len(l) == 0 {
			delete(ix.byCat, c)
		} else {
			ix.byCat[c] = l
		}
	}
	nv := &indexView{
		byCategory: make(map[string][]entry, len(ix.byCat)),
		bySegment:  make(map[string][]entry, len(ix.segments)),
		covis:      old.covis,
		pop:        make(map[uint64]float64, len(ix.global)+len(ix.byCat)*ix.cfg.PerCategory),
	}
	if len(ix.global) > 0 {
		nv.maxScore = ix.global[0].score
	}
	norm := func(v float64) float64 {
		if nv.maxScore <= 0 {
			return 0
		}
		return v / nv.maxScore
	}
	copyList := func(l []*itemStat) []entry {
		out := make([]entry, len(l))
		for i, s := range l {
			out[i] = entry{item: s.item, key: s.key, id: s.id, score: s.score}
			nv.pop[s.key.IDHash()] = norm(s.score)
		}
		return out
	}
	nv.global = copyList(ix.global)
	catScore := make(map[string]float64, len(ix.byCat))
	for c, l := range ix.byCat {
		nv.byCategory[c] = copyList(l)
		nv.categories = append(nv.categories, c)
		catScore[c] = l[0].score
	}
	slices.SortFunc(nv.categories, func(a, b string) int {
		if r := cmpDesc(catScore[a], catScore[b]); r != 0 {
			return r
		}
		return strings.Compare(a, b)
	})
	nv.catLists = make([][]entry, len(nv.categories))
	for i, c := range nv.categories {
		nv.catLists[i] = nv.byCategory[c]
	}
	for seg, l := range old.bySegment {
		nv.bySegment[seg] = l
	}
	for seg := range ix.segDirty {
		m := ix.segments[seg]
		l := make([]*itemStat, 0, len(m))
		for s := range m {
			if s.item.Available {
				l = append(l, s)
			}
		}
		slices.SortFunc(l, func(a, b *itemStat) int { return cmpDesc(m[a], m[b]) })
		if len(l) > ix.cfg.PerSegment {
			l = l[:ix.cfg.PerSegment]
		}
		el := make([]entry, len(l))
		for i, s := range l {
			el[i] = entry{item: s.item, key: s.key, id: s.id, score: m[s]}
		}
		nv.bySegment[seg] = el
	}
	// Co-visitation lists of the changed items.
	copied := false
	for s := range ix.dirty {
		if len(s.covis) == 0 {
			continue
		}
		if !copied {
			nv.covis = make(map[string][]entry, len(old.covis)+len(ix.dirty))
			for k, v := range old.covis {
				nv.covis[k] = v
			}
			copied = true
		}
		pairs := ix.covisScratch[:0]
		for o, w := range s.covis {
			pairs = append(pairs, covisPair{o, w})
		}
		slices.SortFunc(pairs, func(a, b covisPair) int {
			if r := cmpDesc(a.w, b.w); r != 0 {
				return r
			}
			return strings.Compare(a.s.item.ID, b.s.item.ID)
		})
		if len(pairs) > ix.cfg.CoVisit {
			pairs = pairs[:ix.cfg.CoVisit]
		}
		el := make([]entry, len(pairs))
		for i, p := range pairs {
			el[i] = entry{item: p.s.item, key: p.s.key, id: p.s.id, score: p.s.score}
		}
		nv.covis[s.item.ID] = el
		clear(pairs)
		ix.covisScratch = pairs[:0]
	}
	clear(ix.dirty)
	clear(ix.dirtyCats)
	clear(ix.segDirty)
	nv.discCats, nv.discLists = ix.disc.refresh(old.discCats, old.discLists)
	ix.view.Store(nv)
}

// covisPair is one co-visited item and its weight, for sorting.
type covisPair struct {
	s *itemStat
	w float64
}

// mergeTop returns the top k of old ∪ changed by popularity (ties by item
// id), keeping available items of category cat only ("" keeps every
// category). changed holds distinct items, all of cat when cat is set;
// old is the previous list, which may hold changed items too (taken once)
// and items that left cat since (dropped). ix.mu is held.
func (ix *Index) mergeTop(old, changed []*itemStat, cat string, k int) []*itemStat {
	ix.merges++
	mark := ix.merges
	out := make([]*itemStat, 0, len(old)+len(changed))
	for _, s := range changed {
		s.mark = mark
		if s.item.Available {
			out = append(out, s)
		}
	}
	for _, s := range old {
		if s.mark != mark && s.item.Available && (cat == "" || s.item.Category == cat) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *itemStat) int {
		if r := cmpDesc(a.score, b.score); r != 0 {
			return r
		}
		return strings.Compare(a.item.ID, b.item.ID)
	})
	if len(out) > k {
		clear(out[k:])
		out = out[:k:k]
	}
	return out
}

// candidateSet collects candidates for one request without duplicates.
type candidateSet struct {
	items []event.Item
	keys  []model.ItemKey // of items, for model.Context.ItemKeys
	seen  idSet
}

func (cs *candidateSet) reset(bound int) {
	cs.items = cs.items[:0]
	cs.keys = cs.keys[:0]
	cs.seen.reset(bound)
}

func (cs *candidateSet) add(e *entry) {
	if cs.seen.add(e.id) {
		cs.items = append(cs.items, e.item)
		cs.keys = append(cs.keys, e.key)
	}
}

// stampSet is a set of keys for one request: open addressing over arrays
// that are reused across requests and emptied in O(1) by bumping a
// generation stamp, so a request hashes integers instead of strings and
// clears nothing.
type stampSet[K uint32 | uint64] struct {
	keys  []K
	stamp []uint32
	gen   uint32
	bits  uint // log2(len(keys))
}

// idSet is a set of the index's dense item ids.
type idSet = stampSet[uint32]

// reset empties the set and makes room for bound keys at a load of at most
// one half.
func (s *stampSet[K]) reset(bound int) {
	size := 256
	for size < 2*bound {
		size *= 2
	}
	if len(s.keys) < size {
		s.keys = make([]K, size)
		s.stamp = make([]uint32, size)
		s.gen = 0
	}
	s.bits = uint(bits.TrailingZeros(uint(len(s.keys))))
	s.gen++
	if s.gen == 0 { // wrapped: stale stamps could alias the new generation
		clear(s.stamp)
		s.gen = 1
	}
}

// home returns k's first probe: Fibonacci hashing, the top bits of k times
// 2⁶⁴/φ.
func (s *stampSet[K]) home(k K) uint64 {
	return (uint64(k) * 0x9e3779b97f4a7c15) >> (64 - s.bits)
}

// find returns the position of k in the arrays and true, or the position
// add would give it and false.
func (s *stampSet[K]) find(k K) (uint64, bool) {
	mask := uint64(len(s.keys) - 1)
	for h := s.home(k); ; h = (h + 1) & mask {
		if s.stamp[h] != s.gen {
			return h, false
		}
		if s.keys[h] == k {
			return h, true
		}
	}
}

// add inserts k and reports whether it was absent.
func (s *stampSet[K]) add(k K) bool {
	h, ok := s.find(k)
	if !ok {
		s.stamp[h], s.keys[h] = s.gen, k
	}
	return !ok
}

// has reports whether k is in the set.
func (s *stampSet[K]) has(k K) bool {
	_, ok := s.find(k)
	return ok
}

// candidateBound is the most candidates Candidates can add for a user with
// the given numbers of recent items and categories.
func (ix *Index) candidateBound(recentItems, recentCats int) int {
	c := ix.cfg
	return recentItems*c.CoVisit + (recentCats+c.MaxCategories)*c.PerCategory + c.Global
}

// Candidates fills cs with candidates for a user: co-visited neighbours of
// the recent items, the popular items of the recent categories, the popular
// items of every category (up to MaxCategories), and the global popular
// items. It reads the published view only.
func (ix *Index) Candidates(cs *candidateSet, recentItems, recentCats []string) {
	v := ix.view.Load()
	cs.reset(ix.candidateBound(len(recentItems), len(recentCats)))
	for _, id := range recentItems {
		l := v.covis[id]
		for i := range l {
			if l[i].item.Available {
				cs.add(&l[i])
			}
		}
	}
	for _, c := range recentCats {
		l := v.byCategory[c]
		for i := range l {
			cs.add(&l[i])
		}
	}
	for k, l := range v.catLists {
		if k >= ix.cfg.MaxCategories {
			break
		}
		for i := range l {
			cs.add(&l[i])
		}
	}
	for i := range v.global {
		cs.add(&v.global[i])
	}
}

// Popular calls fn with popular available items for segment, most popular
// first (the segment's list, then the global list, then each category's),
// with scores normalised to 0..1, until fn returns false.
func (ix *Index) Popular(segment string, fn func(it event.Item, score float64) bool) {
	v := ix.view.Load()
	emit := func(l []entry, top float64) bool {
		for _, e := range l {
			sc := 0.0
			if top > 0 {
				sc = e.score / top
			}
			if !fn(e.item, sc) {
				return false
			}
		}
		return true
	}
	if l := v.bySegment[segment]; len(l) > 0 {
		if !emit(l, l[0].score) {
			return
		}
	}
	if !emit(v.global, v.maxScore) {
		return
	}
	for _, c := range v.categories {
		if !emit(v.byCategory[c], v.maxScore) {
			return
		}
	}
}

// Popularity returns an item's popularity normalised to 0..1 against the most
// popular item, or 0 for an item outside the popularity lists. The popularity
// control variant ranks by it.
func (ix *Index) Popularity(id string) float64 {
	return ix.view.Load().pop[model.IDHash(id)]
}

// popularityOf is Popularity of the item whose model key is k.
func (ix *Index) popularityOf(k model.ItemKey) float64 {
	return ix.view.Load().pop[k.IDHash()]
}
