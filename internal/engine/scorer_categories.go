package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/sightline/sightline/internal/model"
)

// CategoryScores implements CategoryRanker with the current model.
func (s *ModelScorer) CategoryScores(ctx context.Context, x *model.Context, cats []string, out []float64) error {
	return s.cur.Load().CategoryScores(ctx, x, cats, out)
}

// CategoryScores implements CategoryRanker: the category part of an
// item's logit ([model.Model.CategoryLogits]).
func (s *PinnedScorer) CategoryScores(_ context.Context, x *model.Context, cats []string, out []float64) error {
	p := s.pool.Get().(*model.Prepared)
	s.m.Prepare(x, p)
	s.m.CategoryLogits(p, cats, out)
	s.pool.Put(p)
	return nil
}

// discovers reports whether variant takes its candidates from the
// discovery lists (Config.Discover).
func (e *Engine) discovers(variant string) bool {
	return len(e.cfg.Discover) > 0 && slices.Contains(e.cfg.Discover, variant)
}

// indexConfig is the candidate index's configuration: discovery lists are
// kept only when some variant discovers.
func (c *Config) indexConfig() IndexConfig {
	ic := c.Index
	if ic.Discover == 0 && len(c.Discover) > 0 {
		ic.Discover = defaultDiscover
	}
	return ic
}

// checkDiscover validates Config.Discover against the scorers: each
// variant that discovers must rank categories.
func (c *Config) checkDiscover(scorers map[string]Scorer) error {
	for _, v := range c.Discover {
		s, ok := scorers[v]
		if !ok {
			return fmt.Errorf("engine: discovering variant %q has no scorer", v)
		}
		if _, ok := s.(CategoryRanker); !ok {
			return fmt.Errorf("engine: discovering variant %q: its scorer does not rank categories", v)
		}
	}
	return nil
}
