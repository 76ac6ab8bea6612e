package evaluate

import (
	"math/rand/v2"
	"slices"
)

// rollouts is the number of logging slates simulated per decision to
// estimate item-position propensities when the diversity cap can bind.
const rollouts = 48

// capBinds reports whether the diversity cap can change the serving
// ranking within the decision's slots: some category holds more pool
// candidates than the cap, and there are more slots than the cap.
func (v *view) capBinds() bool {
	if v.maxPer <= 0 || len(v.d.Items) <= v.maxPer {
		return false
	}
	v.catN = slices.Grow(v.catN[:0], v.ncat)[:v.ncat]
	clear(v.catN)
	for i := range v.d.Pool {
		if i >= len(v.cands) || v.cands[i].rank != i {
			break
		}
		c := v.cands[i].cat
		v.catN[c]++
		if v.catN[c] > v.maxPer {
			return true
		}
	}
	return false
}

// cappedMarginals estimates, for each slot k, the probability that the
// logging policy shows the item it showed there (its marginal
// item-position propensity) when the diversity cap binds, where
// marginalRank's count of candidates above is not enough: the cap drops a
// whole category from the ranking once it is shown maxPer times, which
// depends on which items the slots above drew.
//
// It simulates the engine's ranked fill (engine/recommend.go applyRules)
// over the pool rollouts times: per slot, the window is the m best usable
// candidates (not taken, category under the cap), m = min(ExploreTop,
// eligible left); the head is drawn with probability 1-ε+ε/m, each other
// with ε/m. Each rollout adds, for every slot, the exact probability of
// the logged item given that rollout's slots above (a Rao-Blackwellized
// estimate: far less noisy than counting draws); then it applies the
// recent-category rule to the drawn slate, and a slot the rule took counts
// as showing the logged item when the rule put that item there.
// Candidates below the pool are taken as uncapped and interchangeable.
//
// The result is in v.cap (0 for slots it does not estimate: the first,
// whose logged propensity is exact, and items outside the pool).
func (v *view) cappedMarginals() {
	d := v.d
	K := len(d.Items)
	v.cap = slices.Grow(v.cap[:0], K)[:K]
	clear(v.cap)
	pool := 0
	for pool < len(d.Pool) && pool < len(v.cands) && v.cands[pool].rank == pool {
		pool++
	}
	// logged[k] is the pool rank of slot k's item, -1 when it is not in
	// the pool.
	v.logged = slices.Grow(v.logged[:0], K)[:K]
	for k := range K {
		v.logged[k] = -1
		if c := &v.cands[v.shown[k]]; c.rank < pool {
			v.logged[k] = c.rank
		}
	}
	eps, top := d.Explore, int(d.ExploreTop)
	elig0 := max(int(d.Eligible), pool)
	// catOf is the category of each pool candidate, compact for the loops.
	v.catOf = slices.Grow(v.catOf[:0], pool)[:pool]
	for i := range pool {
		v.catOf[i] = int32(v.cands[i].cat)
	}
	catOf, maxPer := v.catOf, int32(v.maxPer)
	v.taken = slices.Grow(v.taken[:0], pool)[:pool]
	v.win = slices.Grow(v.win[:0], max(top, 1))
	v.fill = slices.Grow(v.fill[:0], K)[:K]
	v.fillP = slices.Grow(v.fillP[:0], K)[:K]
	v.flag = slices.Grow(v.flag[:0], K)[:K]
	v.catN = slices.Grow(v.catN[:0], v.ncat)[:v.ncat]
	v.rng.Seed(hashString(d.RequestID), 0xca9)
	if v.rand == nil {
		v.rand = rand.New(&v.rng)
	}
	rng := v.rand
	taken, catN := v.taken, v.catN
	for range rollouts {
		clear(taken)
		clear(v.fillP)
		clear(v.flag)
		clear(catN)
		elig, below := elig0, 0 // below: candidates under the pool taken
		filled, head := 0, 0
		for k := 0; k < K && elig > 0; k++ {
			m := elig
			if top > 0 && top < m {
				m = top
			}
			// The window: the first m usable candidates in rank order.
			for head < pool && (taken[head] || int32(catN[catOf[head]]) >= maxPer) {
				head++
			}
			win := v.win[:0]
			at := -1 // the logged item's place in the window
			r := v.logged[k]
			for i := head; i < pool && len(win) < m; i++ {
				if !taken[i] && int32(catN[catOf[i]]) < maxPer {
					if i == r {
						at = len(win)
					}
					win = append(win, i)
				}
			}
			// Past the pool, anonymous candidates fill the window.
			total := len(win) + max(min(m-len(win), elig0-pool-below), 0)
			if total == 0 {
				break
			}
			switch mf := float64(m); {
			case at == 0:
				v.fillP[k] = 1 - eps + eps/mf
			case at > 0:
				v.fillP[k] = eps / mf
			}
			pick := pool // an anonymous candidate
			if len(win) > 0 {
				pick = win[0]
			}
			// One draw decides both: explore (its top 32 bits) and which
			// window member (its low 32 bits, scaled to [0, m)).
			if u := rng.Uint64(); eps > 0 && float64(u>>32)*0x1p-32 < eps {
				if j := int((u & 0xffffffff) * uint64(m) >> 32); j != 0 && j < total {
					pick = pool
					if j < len(win) {
						pick = win[j]
					}
					v.flag[k] = flagExplored
				}
			}
			v.fill[k] = pick
			filled = k + 1
			elig--
			if pick >= pool {
				below++
				continue
			}
			taken[pick] = true
			c := catOf[pick]
			catN[c]++
			if int32(catN[c]) == maxPer {
				for i := range pool {
					if !taken[i] && catOf[i] == c {
						elig--
					}
				}
			}
		}
		if v.recentSlots > 0 && len(d.RecentCategories) > 0 {
			v.recentRule(pool, filled)
		}
		for k := 1; k < K; k++ {
			switch {
			case v.logged[k] < 0:
			case v.flag[k] == flagRecent:
				if v.fill[k] == v.logged[k] {
					v.cap[k]++
				}
			default:
				v.cap[k] += v.fillP[k]
			}
		}
	}
	for k := range v.cap {
		v.cap[k] /= rollouts
	}
	v.win = v.win[:0]
}

// Slot flags of a rollout.
const (
	flagExplored = 1
	flagRecent   = 2
)

// recentRule applies the engine's recent-category rule
// (engine/recommend.go recentSlots) to the rollout's slate of filled
// slots: for each of the user's recentSlots most recent categories that no
// slot shows unexplored, the best untaken pool candidate of the category
// takes the last slot neither explored nor already given to the rule.
func (v *view) recentRule(pool, filled int) {
	d := v.d
	K := len(d.Items)
	for r, cat := range d.RecentCategories {
		if r >= v.recentSlots {
			return
		}
		ci := slices.Index(v.cats, cat)
		shown := false
		for k := range filled {
			if f := v.fill[k]; f < pool && v.flag[k] != flagExplored && v.cands[f].cat == ci {
				shown = true
				break
			}
		}
		if shown || ci < 0 || v.catN[ci] >= v.maxPer {
			continue
		}
		pick := -1
		for i := range pool {
			if !v.taken[i] && v.cands[i].cat == ci {
				pick = i
				break
			}
		}
		if pick < 0 {
			continue
		}
		slot := filled
		if slot >= K {
			slot = -1
			for j := K - 1; j >= 0; j-- {
				if v.flag[j] == 0 {
					slot = j
					break
				}
			}
			if slot < 0 {
				return
			}
			if f := v.fill[slot]; f < pool {
				v.catN[v.cands[f].cat]--
			}
		} else {
			filled++
		}
		v.taken[pick] = true
		v.catN[ci]++
		v.fill[slot], v.flag[slot] = pick, flagRecent
	}
}

// hashString is FNV-1a of s: a seed that is the same in every run.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
