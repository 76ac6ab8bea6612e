package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"

	"github.com/sightline/sightline/internal/event"
)

// The attribute values of the synthetic population, in a fixed order.
var (
	// AgeBuckets are the values of event.User.AgeBucket.
	AgeBuckets = []string{"18-24", "25-34", "35-44", "45-54", "55+"}
	// Segments are the values of event.User.Segment.
	Segments = []string{"new", "casual", "regular", "power"}
	// Regions are the values of event.User.Region.
	Regions = []string{"na", "eu", "apac", "latam"}
	// Devices are the values of event.User.Device.
	Devices = []string{"ios", "android", "web"}
	// Channels are the request channels the traffic generator uses.
	Channels = []string{"web", "ios", "android", "email"}
)

// Population mixes. Segment weights apply to the non-new share.
var (
	ageWeights     = []float64{0.18, 0.27, 0.22, 0.18, 0.15}
	segmentWeights = []float64{0, 0.5, 0.35, 0.15} // "new" gets NewUserShare
	regionWeights  = []float64{0.35, 0.30, 0.25, 0.10}
	deviceWeights  = []float64{0.40, 0.40, 0.20}
	// Activity multiplier per segment: power users come back far more often.
	segmentActivity = []float64{0.5, 1, 2, 5}
)

// Ground-truth shape. The base logit is solved for targetCTR; the rest are
// fixed so that the age bucket dominates the personal signal.
const (
	targetCTR      = 0.025 // mean CTR of a random item for a random user
	ageFavorites   = 3     // strongly liked categories per age bucket
	ageFavoriteAff = 2.0   // logit boost of an age bucket's favorites
	ageNoise       = 0.25  // sd of the age affinity elsewhere
	minorFavAff    = 0.5   // boost of the one favorite per minor dimension
	minorNoise     = 0.15  // sd of minor affinities
	qualitySD      = 0.3   // sd of item quality (logit)
	calibSamples   = 20000 // (user, item, channel) draws used to solve base
)

// WorldConfig configures [NewWorld]. The zero value of every field means its
// default.
type WorldConfig struct {
	// Seed makes the world reproducible: equal configs give equal worlds.
	// Zero is a valid seed.
	Seed int64
	// Users is the number of users; default 100,000.
	Users int
	// Items is the number of catalog items; default 10,000.
	Items int
	// Categories is the number of item categories ("c00", "c01", ...);
	// default 24, at least ageFavorites×len(AgeBuckets) = 15 are needed for
	// disjoint favorites and fewer are raised to that.
	Categories int
	// NewUserShare is the share of users in the "new" segment; default
	// 0.15. A negative value means none.
	NewUserShare float64
}

func (c WorldConfig) withDefaults() WorldConfig {
	if c.Users <= 0 {
		c.Users = 100_000
	}
	if c.Items <= 0 {
		c.Items = 10_000
	}
	if c.Categories <= 0 {
		c.Categories = 24
	}
	if minCats := ageFavorites * len(AgeBuckets); c.Categories < minCats {
		c.Categories = minCats
	}
	switch {
	case c.NewUserShare == 0:
		c.NewUserShare = 0.15
	case c.NewUserShare < 0:
		c.NewUserShare = 0
	case c.NewUserShare > 1:
		c.NewUserShare = 1
	}
	return c
}

// World is a synthetic population of users, a catalog of items and the
// ground truth of who clicks what. It is immutable after [NewWorld] and all
// methods are safe for concurrent use; slices it returns must not be
// modified.
type World struct {
	cfg   WorldConfig
	users []event.User
	items []event.Item

	// Dense attributes, parallel to users and items.
	uAttr   [][4]uint8 // age, segment, region, device
	itemCat []int
	quality []float64
	itemIdx map[string]int
	userIdx map[string]int

	// Ground truth: base logit and affinity[dim][value][category], dims
	// in the order age, segment, region, device, channel.
	base     float64
	affinity [5][][]float64
	ageFav   [][]int // favorite categories per age bucket

	// ageShift rotates which age bucket's affinities apply to whom: the
	// popularity-shift fault (concept drift) bumps it.
	ageShift atomic.Int32

	// byCat[c] lists item indexes of category c by quality, best first.
	byCat [][]int
	// activity is the cumulative activity weight of users, for PickUser.
	activity []float64
}

const (
	dimAge = iota
	dimSegment
	dimRegion
	dimDevice
	dimChannel
)

var dimValues = [5][]string{AgeBuckets, Segments, Regions, Devices, Channels}

// NewWorld builds the world described by cfg. It is deterministic: the same
// cfg always gives the same users, items and ground truth.
func NewWorld(cfg WorldConfig) *World {
	cfg = cfg.withDefaults()
	r := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5176_6874_6c69_6e65))
	w := &World{
		cfg:     cfg,
		itemIdx: make(map[string]int, cfg.Items),
		userIdx: make(map[string]int, cfg.Users),
	}
	w.buildAffinity(r)
	w.buildItems(r)
	w.buildUsers(r)
	w.calibrate(r)
	return w
}

func (w *World) buildAffinity(r *rand.Rand) {
	nc := w.cfg.Categories
	perm := r.Perm(nc)
	for d, values := range dimValues {
		w.affinity[d] = make([][]float64, len(values))
		for v := range values {
			row := make([]float64, nc)
			if d == dimAge {
				for c := range row {
					row[c] = r.NormFloat64() * ageNoise
				}
				// Disjoint favorites: no category is liked by every age.
				favs := perm[v*ageFavorites : (v+1)*ageFavorites]
				for _, c := range favs {
					row[c] = ageFavoriteAff + r.NormFloat64()*0.1
				}
				w.ageFav = append(w.ageFav, slices.Clone(favs))
			} else {
				for c := range row {
					row[c] = r.NormFloat64() * minorNoise
				}
				row[r.IntN(nc)] += minorFavAff
			}
			w.affinity[d][v] = row
		}
	}
}

func (w *World) buildItems(r *rand.Rand) {
	nc := w.cfg.Categories
	w.items = make([]event.Item, w.cfg.Items)
	w.itemCat = make([]int, w.cfg.Items)
	w.quality = make([]float64, w.cfg.Items)
	w.byCat = make([][]int, nc)
	for i := range w.items {
		c := i % nc // even category sizes; ids do not reveal the category
		if i >= nc*(w.cfg.Items/nc) {
			c = r.IntN(nc)
		}
		w.itemCat[i] = c
		w.quality[i] = r.NormFloat64() * qualitySD
		w.items[i] = event.Item{ID: ItemID(i), Category: CategoryID(c), Available: true}
		w.itemIdx[w.items[i].ID] = i
	}
	// Shuffle categories over ids so that "i00000" is not always c00.
	r.Shuffle(len(w.items), func(a, b int) {
		w.itemCat[a], w.itemCat[b] = w.itemCat[b], w.itemCat[a]
		w.items[a].Category, w.items[b].Category = w.items[b].Category, w.items[a].Category
	})
	for i, c := range w.itemCat {
		w.byCat[c] = append(w.byCat[c], i)
	}
	for _, ids := range w.byCat {
		sort.SliceStable(ids, func(a, b int) bool { return w.quality[ids[a]] > w.quality[ids[b]] })
	}
}

func (w *World) buildUsers(r *rand.Rand) {
	segW := slices.Clone(segmentWeights)
	rest := 1 - w.cfg.NewUserShare
	sum := segW[1] + segW[2] + segW[3]
	for i := 1; i < len(segW); i++ {
		segW[i] = segW[i] / sum * rest
	}
	segW[0] = w.cfg.NewUserShare

	w.users = make([]event.User, w.cfg.Users)
	w.uAttr = make([][4]uint8, w.cfg.Users)
	w.activity = make([]float64, w.cfg.Users)
	total := 0.0
	for i := range w.users {
		a := [4]uint8{
			uint8(pickWeighted(r, ageWeights)),
			uint8(pickWeighted(r, segW)),
			uint8(pickWeighted(r, regionWeights)),
			uint8(pickWeighted(r, deviceWeights)),
		}
		w.uAttr[i] = a
		w.users[i] = event.User{
			ID:        UserID(i),
			AgeBucket: AgeBuckets[a[0]],
			Segment:   Segments[a[1]],
			Region:    Regions[a[2]],
			Device:    Devices[a[3]],
		}
		w.userIdx[w.users[i].ID] = i
		// Pareto(α=2) activity scaled by segment: a few users return often.
		act := segmentActivity[a[1]] / math.Sqrt(1-r.Float64())
		total += act
		w.activity[i] = total
	}
}

// calibrate solves the base logit so that a random item shown to a random
// user on a random channel is clicked with probability targetCTR.
func (w *World) calibrate(r *rand.Rand) {
	logits := make([]float64, calibSamples)
	for s := range logits {
		u := r.IntN(len(w.users))
		it := r.IntN(len(w.items))
		ch := r.IntN(len(Channels))
		logits[s] = w.logit(w.uAttr[u], ch, it)
	}
	lo, hi := -15.0, 5.0
	for range 60 {
		mid := (lo + hi) / 2
		sum := 0.0
		for _, l := range logits {
			sum += sigmoid(mid + l)
		}
		if sum/float64(len(logits)) < targetCTR {
			lo = mid
		} else {
			hi = mid
		}
	}
	w.base = (lo + hi) / 2
}

// logit is the ground-truth logit without the base.
func (w *World) logit(a [4]uint8, ch, it int) float64 {
	c := w.itemCat[it]
	return w.quality[it] + w.catLogit(a, ch, c)
}

// catLogit is the user- and channel-dependent part of the logit for
// category c. ch < 0 means an unknown channel.
func (w *World) catLogit(a [4]uint8, ch, c int) float64 {
	l := 0.0
	for d := range 4 {
		if a[d] != noValue {
			v := int(a[d])
			if d == dimAge {
				v = (v + int(w.ageShift.Load())) % len(w.affinity[dimAge])
			}
			l += w.affinity[d][v][c]
		}
	}
	if ch >= 0 {
		l += w.affinity[dimChannel][ch][c]
	}
	return l
}

const noValue = math.MaxUint8

// ShiftAffinities changes the true tastes of users (concept drift): each
// age bucket takes on the category affinities of the next one. It is safe
// to call while traffic runs; ShiftAffinities(false) restores them.
func (w *World) ShiftAffinities(on bool) {
	if on {
		w.ageShift.Store(1)
	} else {
		w.ageShift.Store(0)
	}
}

// attrsOf maps u's attributes to value indexes; unknown values (for
// example a nulled age bucket) contribute nothing to the logit.
func attrsOf(u *event.User) [4]uint8 {
	return [4]uint8{
		indexOf(AgeBuckets, u.AgeBucket),
		indexOf(Segments, u.Segment),
		indexOf(Regions, u.Region),
		indexOf(Devices, u.Device),
	}
}

func indexOf(values []string, v string) uint8 {
	if i := slices.Index(values, v); i >= 0 {
		return uint8(i)
	}
	return noValue
}

func channelIndex(ch string) int {
	if i := indexOf(Channels, ch); i != noValue {
		return int(i)
	}
	return -1
}

// ClickProb is the ground truth: the probability that u clicks it on
// channel when it is shown in the top position. It is
// sigmoid(base + quality + Σ affinity[attribute][category]) over the age
// bucket, segment, region, device and channel; the age bucket dominates.
// Unknown attribute values, channels and items (not of this world) add
// nothing; an item of an unknown category is never clicked.
func (w *World) ClickProb(u *event.User, it *event.Item, channel string) float64 {
	c, ok := w.categoryIndex(it.Category)
	if !ok {
		return 0
	}
	q := 0.0
	if i, ok := w.itemIdx[it.ID]; ok {
		q = w.quality[i]
	}
	return sigmoid(w.base + q + w.catLogit(attrsOf(u), channelIndex(channel), c))
}

// PositionBias is the examination probability of zero-based position k:
// 1/log2(k+2), so 1 at the top.
func PositionBias(k int) float64 {
	return 1 / math.Log2(float64(k)+2)
}

// ClickProbAt is [World.ClickProb] discounted by [PositionBias] for
// zero-based position k.
func (w *World) ClickProbAt(u *event.User, it *event.Item, channel string, k int) float64 {
	return w.ClickProb(u, it, channel) * PositionBias(k)
}

func (w *World) categoryIndex(cat string) (int, bool) {
	if len(cat) < 2 || cat[0] != 'c' {
		return 0, false
	}
	n, err := strconv.Atoi(cat[1:])
	if err != nil || n < 0 || n >= w.cfg.Categories || CategoryID(n) != cat {
		return 0, false
	}
	return n, true
}

// Users returns every user, indexed like [World.User].
func (w *World) Users() []event.User { return w.users }

// Items returns every item, indexed like [World.Item].
func (w *World) Items() []event.Item { return w.items }

// User returns user i (0 ≤ i < len(Users())).
func (w *World) User(i int) *event.User { return &w.users[i] }

// Item returns item i (0 ≤ i < len(Items())).
func (w *World) Item(i int) *event.Item { return &w.items[i] }

// ItemByID returns the item with the given id and whether it exists.
func (w *World) ItemByID(id string) (*event.Item, bool) {
	i, ok := w.itemIdx[id]
	if !ok {
		return nil, false
	}
	return &w.items[i], true
}

// UserIndex returns the index of the user with the given id and whether it
// exists.
func (w *World) UserIndex(id string) (int, bool) {
	i, ok := w.userIdx[id]
	return i, ok
}

// Quality returns the latent quality (a logit offset) of item i.
func (w *World) Quality(i int) float64 { return w.quality[i] }

// Categories returns the number of item categories.
func (w *World) Categories() int { return w.cfg.Categories }

// FavoriteCategories returns the categories the given age bucket likes
// most, or nil for an unknown bucket.
func (w *World) FavoriteCategories(ageBucket string) []string {
	a := indexOf(AgeBuckets, ageBucket)
	if a == noValue {
		return nil
	}
	out := make([]string, 0, len(w.ageFav[a]))
	for _, c := range w.ageFav[a] {
		out = append(out, CategoryID(c))
	}
	return out
}

// Channels returns the request channels, the same as the package variable
// [Channels].
func (w *World) Channels() []string { return Channels }

// PickUser draws a user index with skewed (Pareto) activity, so some users
// come back often; power users more than new ones.
func (w *World) PickUser(r *rand.Rand) int {
	x := r.Float64() * w.activity[len(w.activity)-1]
	i, _ := slices.BinarySearch(w.activity, x)
	return min(i, len(w.activity)-1)
}

// PickChannel draws a channel for user i: mostly the app of the user's
// device, sometimes the web or email.
func (w *World) PickChannel(r *rand.Rand, i int) string {
	switch x := r.Float64(); {
	case x < 0.6:
		return Devices[w.uAttr[i][dimDevice]] // device names are channel names
	case x < 0.85:
		return "web"
	default:
		return "email"
	}
}

// Oracle returns the indexes of the k items with the highest ground-truth
// click probability for u on channel, best first: the best any policy can
// show.
func (w *World) Oracle(u *event.User, channel string, k int) []int {
	a, ch := attrsOf(u), channelIndex(channel)
	type head struct {
		cat  int
		next int
		l    float64
	}
	heads := make([]head, 0, len(w.byCat))
	for c, ids := range w.byCat {
		if len(ids) > 0 {
			heads = append(heads, head{cat: c, l: w.catLogit(a, ch, c)})
		}
	}
	out := make([]int, 0, k)
	for len(out) < k {
		best := -1
		bestL := math.Inf(-1)
		for h, hd := range heads {
			if hd.next >= len(w.byCat[hd.cat]) {
				continue
			}
			if l := hd.l + w.quality[w.byCat[hd.cat][hd.next]]; l > bestL {
				best, bestL = h, l
			}
		}
		if best < 0 {
			break
		}
		out = append(out, w.byCat[heads[best].cat][heads[best].next])
		heads[best].next++
	}
	return out
}

// ListCTR is the expected CTR of showing items (indexes, top first) to u on
// channel: the mean over positions of ClickProb × PositionBias.
func (w *World) ListCTR(u *event.User, channel string, items []int) float64 {
	if len(items) == 0 {
		return 0
	}
	s := 0.0
	for k, i := range items {
		s += w.ClickProbAt(u, &w.items[i], channel, k)
	}
	return s / float64(len(items))
}

// UserID returns the id of user i, like "u000123".
func UserID(i int) string { return fmt.Sprintf("u%06d", i) }

// ItemID returns the id of item i, like "i00042".
func ItemID(i int) string { return fmt.Sprintf("i%05d", i) }

// CategoryID returns the name of category c, like "c07".
func CategoryID(c int) string { return fmt.Sprintf("c%02d", c) }

func pickWeighted(r *rand.Rand, weights []float64) int {
	sum := 0.0
	for _, w := range weights {
		sum += w
	}
	x := r.Float64() * sum
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	return len(weights) - 1
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
