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

// ItemEvidence implements ItemValuer with the current model.
func (s *ModelScorer) ItemEvidence(id string) (weight, evidence float64) {
	return s.cur.Load().m.ItemEvidence(id)
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

// setupDiscover validates Config.Discover against the scorers (each
// variant that discovers must rank categories) and, when the first of them
// values items (ItemValuer), lets the discovery lists judge items by it.
// New calls it before the engine is shared.
func (e *Engine) setupDiscover() error {
	for k, v := range e.cfg.Discover {
		s, ok := e.scorers[v]
		if !ok {
			return fmt.Errorf("engine: discovering variant %q has no scorer", v)
		}
		if _, ok := s.(CategoryRanker); !ok {
			return fmt.Errorf("engine: discovering variant %q: its scorer does not rank categories", v)
		}
		if iv, ok := s.(ItemValuer); ok && k == 0 {
			e.index.mu.Lock()
			e.index.disc.value = iv
			e.index.mu.Unlock()
		}
	}
	return nil
}
