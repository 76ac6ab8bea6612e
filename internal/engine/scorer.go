package engine

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
)

// ModelScorer adapts a *model.Model to the Scorer interface, pooling the
// per-request prepared features. The model can be replaced while requests
// are scored ([ModelScorer.Swap]): an API node hot-swaps each model snapshot
// the trainer publishes.
//
// Every method reads the current model once, so one call scores all its
// items with one model. A request that also records the version should pin
// the model first ([ModelScorer.Pin]): Version and ScoreLogits of the pinned
// scorer then name and use the same model even when a swap falls between
// them. All methods are safe for concurrent use.
type ModelScorer struct {
	cur  atomic.Pointer[PinnedScorer]
	pool *sync.Pool // of *model.Prepared, shared by every model (Prepared is model-independent)
}

// NewModelScorer returns a Scorer backed by m, which must not be nil.
func NewModelScorer(m *model.Model) *ModelScorer {
	s := &ModelScorer{pool: &sync.Pool{New: func() any { return new(model.Prepared) }}}
	s.Swap(m)
	return s
}

// Swap makes m the model of every call that starts after it returns; calls
// already running finish with the model they read. m must not be nil. Swap
// allocates once; scoring does not. The replaced model is not modified, so
// a caller may keep using it (e.g. to finish writing a snapshot of it).
func (s *ModelScorer) Swap(m *model.Model) {
	if m == nil {
		panic("engine: ModelScorer.Swap(nil)")
	}
	s.cur.Store(&PinnedScorer{m: m, pool: s.pool})
}

// Model returns the current model.
func (s *ModelScorer) Model() *model.Model { return s.cur.Load().m }

// Pin returns a scorer bound to the current model: later swaps do not
// change it. It does not allocate. The engine pins once per request so that
// the version it records is the version that scored.
func (s *ModelScorer) Pin() Scorer { return s.cur.Load() }

// Score implements Scorer: the probabilities of ScoreLogits.
func (s *ModelScorer) Score(ctx context.Context, x *model.Context, items []event.Item, out []float64) error {
	return s.cur.Load().Score(ctx, x, items, out)
}

// ScoreLogits implements LogitScorer.
func (s *ModelScorer) ScoreLogits(ctx context.Context, x *model.Context, items []event.Item, out []float64) error {
	return s.cur.Load().ScoreLogits(ctx, x, items, out)
}

// Probability implements LogitScorer.
func (s *ModelScorer) Probability(logit float64) float64 { return model.Sigmoid(logit) }

// Version implements Scorer: the version of the current model.
func (s *ModelScorer) Version() string { return s.cur.Load().m.Version() }

// Learn updates the current model from one labelled impression (the event
// path's learner): after a Swap, learning goes to the new model. A call
// running across a Swap updates the model it read.
func (s *ModelScorer) Learn(x *model.Context, it event.Item, l model.Label) float64 {
	return s.cur.Load().m.Learn(x, it, l)
}

// Calibrated reports that the model's scores are click probabilities.
func (s *ModelScorer) Calibrated() bool { return true }

// Immediate reports that scoring never waits: the model is in memory
// ([Immediate]).
func (s *ModelScorer) Immediate() bool { return true }

// PinnedScorer is a [ModelScorer]'s scorer for one model, returned by
// [ModelScorer.Pin]. It implements Scorer, LogitScorer and Calibrated like
// ModelScorer, always with the same model. It is safe for concurrent use.
type PinnedScorer struct {
	m    *model.Model
	pool *sync.Pool
}

// Model returns the model s scores with.
func (s *PinnedScorer) Model() *model.Model { return s.m }

// Score implements Scorer: the probabilities of ScoreLogits.
func (s *PinnedScorer) Score(ctx context.Context, x *model.Context, items []event.Item, out []float64) error {
	if err := s.ScoreLogits(ctx, x, items, out); err != nil {
		return err
	}
	for i := range items {
		out[i] = model.Sigmoid(out[i])
	}
	return nil
}

// ScoreLogits implements LogitScorer.
func (s *PinnedScorer) ScoreLogits(_ context.Context, x *model.Context, items []event.Item, out []float64) error {
	p := s.pool.Get().(*model.Prepared)
	s.m.Prepare(x, p)
	s.m.Logits(p, items, out)
	s.pool.Put(p)
	return nil
}

// Probability implements LogitScorer.
func (s *PinnedScorer) Probability(logit float64) float64 { return model.Sigmoid(logit) }

// Version implements Scorer.
func (s *PinnedScorer) Version() string { return s.m.Version() }

// Calibrated reports that the model's scores are click probabilities.
func (s *PinnedScorer) Calibrated() bool { return true }

// Immediate reports that scoring never waits ([Immediate]).
func (s *PinnedScorer) Immediate() bool { return true }

// popularityScorer is the control variant: items ranked by popularity.
type popularityScorer struct{ ix *Index }

func (p popularityScorer) Score(_ context.Context, x *model.Context, items []event.Item, out []float64) error {
	v := p.ix.view.Load()
	if keys := x.ItemKeys; len(keys) == len(items) {
		for i := range items {
			out[i] = v.pop[keys[i].IDHash()]
		}
		return nil
	}
	for i := range items {
		out[i] = v.pop[model.IDHash(items[i].ID)]
	}
	return nil
}

func (popularityScorer) Version() string { return "popularity-v1" }
