package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sightline/sightline/internal/model"
)

// ErrChallenger reports a challenger the engine cannot serve.
var ErrChallenger = errors.New("engine: invalid challenger")

// Challenger is a model served beside a variant's during a rollout: a
// share of the variant's users, drawn by [model.InCanary], get the
// challenger's decisions instead, under the variant name
// Config.ChallengerVariant.
type Challenger struct {
	// Base is the variant (an arm of the split) whose users the challenger
	// takes a share of.
	Base string
	// Scorer scores the challenger's decisions; its Version is their model
	// version.
	Scorer Scorer
	// Share is the share (0..1) of Base's users the challenger serves; 0
	// serves none.
	Share float64
	// Shadow makes the challenger score the decisions of Base's other
	// users too, without being shown: each gets its would-be answer
	// (Decision.Shadow).
	Shadow bool
}

// SetChallenger makes c the challenger from the next request on; nil
// withdraws it. Requests already running finish with the routing they
// read. It returns ErrChallenger when the engine has no
// Config.ChallengerVariant, c's Base is not a scored variant of the split,
// or its share is outside [0, 1].
func (e *Engine) SetChallenger(c *Challenger) error {
	if c == nil {
		e.challenger.Store(nil)
		return nil
	}
	switch {
	case e.cfg.ChallengerVariant == "":
		return fmt.Errorf("%w: the engine has no challenger variant configured", ErrChallenger)
	case c.Scorer == nil:
		return fmt.Errorf("%w: no scorer", ErrChallenger)
	case !(c.Share >= 0 && c.Share <= 1):
		return fmt.Errorf("%w: share %v outside [0, 1]", ErrChallenger, c.Share)
	}
	if _, ok := e.scorers[c.Base]; !ok || c.Base == e.cfg.ChallengerVariant {
		return fmt.Errorf("%w: base variant %q is not in the split", ErrChallenger, c.Base)
	}
	cc := *c
	e.challenger.Store(&cc)
	return nil
}

// CurrentChallenger returns the challenger being served, nil when none.
func (e *Engine) CurrentChallenger() *Challenger {
	c := e.challenger.Load()
	if c == nil {
		return nil
	}
	cc := *c
	return &cc
}

// route returns the variant and scorer of the user's decision: the
// split's, or the challenger's for a user in its share of the base
// variant; shadow is the challenger's scorer when it shadows the decision.
func (e *Engine) route(userID string) (variant string, s, shadow Scorer) {
	variant = e.cfg.Split.Assign(userID)
	c := e.challenger.Load()
	if c == nil || variant != c.Base {
		return variant, e.scorers[variant], nil
	}
	if model.InCanary(userID, c.Share) {
		return e.cfg.ChallengerVariant, c.Scorer, nil
	}
	if c.Shadow {
		shadow = c.Scorer
	}
	return variant, e.scorers[variant], shadow
}

// shadowScore scores the decision's candidates with the shadow challenger
// and records its greedy answer among the eligible ones (after applyRules),
// under the same diversity cap, in the decision. It never changes what is shown: a failure is recorded
// in the Shadow.
func (e *Engine) shadowScore(ctx context.Context, s Scorer, x *model.Context, sp *scratch, d *Decision, count int) {
	start := time.Now()
	sh := &Shadow{ModelVersion: s.Version()}
	d.Shadow = sh
	ctx, budget := withBudget(ctx, s, e.cfg.ModelBudget, start)
	n := len(sp.cs.items)
	sp.shadow = slices.Grow(sp.shadow[:0], n)[:n]
	ls, _ := s.(LogitScorer)
	err := budget.end(ctx, safeScore(ctx, s, ls, x, &sp.cs, sp.shadow))
	if err != nil {
		sh.Error, sh.Duration = err.Error(), time.Since(start)
		return
	}
	// The challenger's greedy answer as serving's ranking rule makes it:
	// the eligible candidates by its score (ties in candidate order), at
	// most MaxPerCategory of a category, count of them. A ranking pops
	// only the prefix the answer reads, as serving's does (sorting every
	// eligible candidate was an eighth of the shadow stage's CPU).
	rs := sp.shadowRanked[:0]
	for i := range sp.cs.items {
		if i < len(sp.cat) && sp.cat[i] >= 0 {
			rs = append(rs, newRankKey(sp.shadow[i], i))
		}
	}
	sp.shadowRanked = rs
	sp.shadowRank.reset(rs)
	sp.shadowN = slices.Grow(sp.shadowN[:0], len(sp.cats))[:len(sp.cats)]
	clear(sp.shadowN)
	top := sp.top[:0]
	for k := 0; len(top) < count; k++ {
		i, ok := sp.shadowRank.at(k)
		if !ok {
			break
		}
		if c := sp.cat[i]; int(sp.shadowN[c]) < e.cfg.MaxPerCategory {
			sp.shadowN[c]++
			top = append(top, i)
		}
	}
	sp.top = top
	sh.Items, sh.Scores = make([]string, len(top)), make([]float64, len(top))
	for j, i := range top {
		sh.Items[j] = sp.cs.items[i].ID
		if ls != nil {
			sh.Scores[j] = ls.Probability(sp.shadow[i])
		} else {
			sh.Scores[j] = sp.shadow[i]
		}
		for _, it := range d.Items {
			if it.ItemID == sh.Items[j] {
				sh.Overlap++
				break
			}
		}
	}
	sh.Duration = time.Since(start)
}
