package engine

import (
	"context"
	"sync"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
)

// ModelScorer adapts a *model.Model to the Scorer interface, pooling the
// per-request prepared features.
type ModelScorer struct {
	m    *model.Model
	pool sync.Pool
}

// NewModelScorer returns a Scorer backed by m.
func NewModelScorer(m *model.Model) *ModelScorer {
	s := &ModelScorer{m: m}
	s.pool.New = func() any { return new(model.Prepared) }
	return s
}

// Score implements Scorer: the probabilities of ScoreLogits.
func (s *ModelScorer) Score(ctx context.Context, x *model.Context, items []event.Item, out []float64) error {
	if err := s.ScoreLogits(ctx, x, items, out); err != nil {
		return err
	}
	for i := range items {
		out[i] = model.Sigmoid(out[i])
	}
	return nil
}

// ScoreLogits implements LogitScorer.
func (s *ModelScorer) ScoreLogits(_ context.Context, x *model.Context, items []event.Item, out []float64) error {
	p := s.pool.Get().(*model.Prepared)
	s.m.Prepare(x, p)
	s.m.Logits(p, items, out)
	s.pool.Put(p)
	return nil
}

// Probability implements LogitScorer.
func (s *ModelScorer) Probability(logit float64) float64 { return model.Sigmoid(logit) }

// Version implements Scorer.
func (s *ModelScorer) Version() string { return s.m.Version() }

// Calibrated reports that the model's scores are click probabilities.
func (s *ModelScorer) Calibrated() bool { return true }

// popularityScorer is the control variant: items ranked by popularity.
type popularityScorer struct{ ix *Index }

func (p popularityScorer) Score(_ context.Context, _ *model.Context, items []event.Item, out []float64) error {
	v := p.ix.view.Load()
	for i := range items {
		out[i] = v.pop[items[i].ID]
	}
	return nil
}

func (popularityScorer) Version() string { return "popularity-v1" }
