package evaluate

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/sightline/sightline/internal/decisionlog"
)

// world is a synthetic recommendation world whose click probabilities are
// known: contexts (segment × channel), items in categories with a
// popularity, a click probability per context and item, and a position
// effect per slot. It logs decisions under a logging policy that explores
// as the engine does (engine/recommend.go applyRules) and records the same
// per-slot propensities, so estimates can be checked against the truth.
type world struct {
	items    []witem
	segments []string
	channels []string
	// q[c][i] is the click probability of item i in context c at the
	// first position; theta[k] scales it at slot k.
	q     [][]float64
	theta []float64
	// logScore[c][i] is the logging model's score: q with noise, so the
	// logging ranking is not the truth's.
	logScore [][]float64
	maxPer   int
	// pool is the number of best candidates each decision lists (0: all).
	pool int
}

type witem struct {
	id, category string
	popularity   float64
}

type worldConfig struct {
	items, categories, slots int
	noise                    float64 // log-normal noise of the logging score
	positionDecay            float64 // theta[k] = decay^k
	base                     float64 // added to the click logit (-3 without it)
}

func newWorld(seed uint64, wc worldConfig) *world {
	rng := rand.New(rand.NewPCG(seed, 1))
	w := &world{segments: []string{"new", "casual", "regular", "power"}, channels: []string{"web", "ios"}, maxPer: 3}
	catAffinity := make([][]float64, len(w.segments)*len(w.channels))
	for c := range catAffinity {
		catAffinity[c] = make([]float64, wc.categories)
		for j := range catAffinity[c] {
			catAffinity[c][j] = rng.NormFloat64() * 0.6
		}
	}
	base := make([]float64, wc.items)
	for i := range wc.items {
		cat := i % wc.categories
		base[i] = -3 + wc.base + rng.NormFloat64()*0.7
		w.items = append(w.items, witem{id: fmt.Sprintf("i%03d", i), category: fmt.Sprintf("c%d", cat), popularity: rng.Float64()})
	}
	for c := range catAffinity {
		qs, ls := make([]float64, wc.items), make([]float64, wc.items)
		for i := range wc.items {
			qs[i] = 1 / (1 + math.Exp(-(base[i] + catAffinity[c][i%wc.categories])))
			ls[i] = min(qs[i]*math.Exp(rng.NormFloat64()*wc.noise), 0.99)
		}
		w.q = append(w.q, qs)
		w.logScore = append(w.logScore, ls)
	}
	for k := range wc.slots {
		w.theta = append(w.theta, math.Pow(wc.positionDecay, float64(k)))
	}
	return w
}

// logging is the policy the world logs under.
type logging struct {
	explore float64
	top     int
	// popularity: the control variant (ranks by popularity, scores are
	// popularity); otherwise a calibrated model by logScore.
	popularity bool
}

// rank returns the item indices by descending score, ties by index.
func rank(scores []float64) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(scores[b], scores[a]) })
	return idx
}

// log serves n decisions under lp and returns the rows, with impression,
// click and conversion events drawn from the true probabilities.
func (w *world) log(seed uint64, n int, lp logging) ([]decisionlog.Decision, []decisionlog.Event) {
	var ds []decisionlog.Decision
	var es []decisionlog.Event
	w.generate(seed, n, lp, func(d *decisionlog.Decision, evs []decisionlog.Event) {
		ds = append(ds, *d)
		es = append(es, evs...)
	})
	return ds, es
}

// generate draws the decisions of log one at a time and passes each with
// its events to emit, which must not keep them: a log of any length in
// little memory.
func (w *world) generate(seed uint64, n int, lp logging, emit func(*decisionlog.Decision, []decisionlog.Event)) {
	rng := rand.New(rand.NewPCG(seed, 2))
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	var es []decisionlog.Event
	pops := make([]float64, len(w.items))
	for i, it := range w.items {
		pops[i] = it.popularity
	}
	popRank := rank(pops)
	orders := make([][]int, len(w.logScore))
	for c := range orders {
		orders[c] = rank(w.logScore[c])
	}
	catOf := make([]int, len(w.items))
	cats := map[string]int{}
	for i, it := range w.items {
		if _, ok := cats[it.category]; !ok {
			cats[it.category] = len(cats)
		}
		catOf[i] = cats[it.category]
	}
	K := len(w.theta)
	poolOf := func(order []int, scores []float64) []decisionlog.Candidate {
		size := len(order)
		if w.pool > 0 {
			size = min(w.pool, size)
		}
		p := make([]decisionlog.Candidate, 0, size)
		for _, i := range order[:size] {
			it := w.items[i]
			p = append(p, decisionlog.Candidate{ItemID: it.id, Category: it.category, Score: scores[i], Popularity: it.popularity})
		}
		return p
	}
	pools := make([][]decisionlog.Candidate, len(orders))
	for c := range orders {
		pools[c] = poolOf(orders[c], w.logScore[c])
	}
	popPool := poolOf(popRank, pops)
	var picks []int
	taken := make([]bool, len(w.items))
	shown := make([]int, len(cats))
	usable := make([]int, 0, len(w.items))
	for j := range n {
		c := rng.IntN(len(w.q))
		seg, ch := w.segments[c/len(w.channels)], w.channels[c%len(w.channels)]
		scores, order := w.logScore[c], orders[c]
		if lp.popularity {
			scores, order = pops, popRank
		}
		d := decisionlog.Decision{
			RequestID: "r" + strconv.Itoa(j), Time: t0.Add(time.Duration(j) * time.Second),
			UserHash: "u", KnownUser: true, Channel: ch, Variant: "ftrl", ModelVersion: "ftrl-v1.0",
			UserSegment: &seg, Hour: 12, Candidates: int32(len(w.items)), Eligible: int32(len(w.items)),
			Explore: lp.explore, ExploreTop: int32(lp.top),
		}
		if lp.popularity {
			d.Variant, d.ModelVersion = "popularity", "popularity-v1"
		}
		if lp.popularity {
			d.Pool = popPool
		} else {
			d.Pool = pools[c] // shared: readers do not modify rows
		}
		d.Items = make([]decisionlog.Slot, 0, K)
		picks = picks[:0]
		clear(taken)
		clear(shown)
		for len(d.Items) < K {
			usable = usable[:0]
			for _, i := range order {
				if !taken[i] && shown[catOf[i]] < w.maxPer {
					usable = append(usable, i)
					if lp.top > 0 && len(usable) == lp.top {
						break // the window is all that is drawn from
					}
				}
			}
			if len(usable) == 0 {
				break
			}
			m := len(usable)
			if lp.top > 0 && lp.top < m {
				m = lp.top
			}
			pick, reason, prop := usable[0], "model", (1-lp.explore)+lp.explore/float64(m)
			if lp.explore > 0 && rng.Float64() < lp.explore {
				if x := rng.IntN(m); x != 0 {
					pick, reason, prop = usable[x], "explore", lp.explore/float64(m)
				}
			}
			taken[pick] = true
			it := w.items[pick]
			shown[catOf[pick]]++
			picks = append(picks, pick)
			d.Items = append(d.Items, decisionlog.Slot{ItemID: it.id, Category: it.category, Score: scores[pick], Reason: reason, Propensity: prop})
		}
		for k, s := range d.Items {
			ev := decisionlog.Event{RequestID: d.RequestID, ItemID: s.ItemID, Time: d.Time.Add(time.Second)}
			ev.Type, ev.EventID = "impression", d.RequestID+"-i"+strconv.Itoa(k)
			es = append(es, ev)
			i := picks[k]
			if rng.Float64() < w.q[c][i]*w.theta[k] {
				ev.Type, ev.EventID = "click", d.RequestID+"-c"+strconv.Itoa(k)
				es = append(es, ev)
				if rng.Float64() < 0.3 {
					ev.Type, ev.EventID = "conversion", d.RequestID+"-v"+strconv.Itoa(k)
					es = append(es, ev)
				}
			}
		}
		emit(&d, es)
		es = es[:0]
	}
}

// truth returns the expected clicks per slot of a deterministic target
// that ranks every item by score(c, i) with the diversity cap, averaged
// over the (uniform) contexts, and the per-position values.
func (w *world) truth(score func(c, i int) float64) (ctr float64, perPos []float64) {
	K := len(w.theta)
	perPos = make([]float64, K)
	for c := range w.q {
		s := make([]float64, len(w.items))
		for i := range s {
			s[i] = score(c, i)
		}
		shown := map[string]int{}
		k := 0
		for _, i := range rank(s) {
			if k == K {
				break
			}
			if shown[w.items[i].category] >= w.maxPer {
				continue
			}
			shown[w.items[i].category]++
			perPos[k] += w.q[c][i] * w.theta[k] / float64(len(w.q))
			k++
		}
	}
	for _, v := range perPos {
		ctr += v / float64(K)
	}
	return ctr, perPos
}
