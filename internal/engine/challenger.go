package engine

import (
	"errors"
	"fmt"

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
// variant.
func (e *Engine) route(userID string) (string, Scorer) {
	variant := e.cfg.Split.Assign(userID)
	if c := e.challenger.Load(); c != nil && variant == c.Base && model.InCanary(userID, c.Share) {
		return e.cfg.ChallengerVariant, c.Scorer
	}
	return variant, e.scorers[variant]
}
