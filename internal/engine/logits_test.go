package engine

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
)

// TestLogitScorerRecordsProbabilities checks that ranking by the model's
// logits records what ranking by its probabilities did: the same items in
// the same order, each with its click probability, and the top probability
// as the confidence.
func TestLogitScorerRecordsProbabilities(t *testing.T) {
	m, err := model.New(model.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Teach the model some preferences so scores differ.
	for i := range 2000 {
		x := model.Context{User: event.User{AgeBucket: "25-34", Segment: "regular"}, Channel: "web", Hour: 9}
		it := event.Item{ID: fmt.Sprintf("i%02d-%03d", i%8, i%20), Category: fmt.Sprintf("c%02d", i%8)}
		label := model.Negative
		if i%(2+i%8) == 0 {
			label = model.Positive
		}
		m.Learn(&x, it, label)
	}
	fs := fakeStore{users: knownUsers()}
	logits := NewModelScorer(m)
	probs := probScorer{logits}
	decide := func(s Scorer) *Decision {
		e := newEngineFor(t, &fs, s, func(c *Config) {
			c.RecentSlots = -1
			// Not a test of the budgets: under the race detector on a loaded
			// machine scoring can take longer than the default 5 ms.
			c.FeatureBudget, c.ModelBudget = time.Minute, time.Minute
		})
		d, err := e.Recommend(t.Context(), Request{UserID: "alice", Count: 10, Channel: "web"})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	got, want := decide(logits), decide(probs)
	if len(got.Items) != len(want.Items) {
		t.Fatalf("%d items, want %d", len(got.Items), len(want.Items))
	}
	for i := range got.Items {
		g, w := got.Items[i], want.Items[i]
		if g.ItemID != w.ItemID || math.Abs(g.Score-w.Score) > 1e-12 {
			t.Errorf("item %d = %s score %v, want %s score %v", i, g.ItemID, g.Score, w.ItemID, w.Score)
		}
		if g.Score <= 0 || g.Score >= 1 {
			t.Errorf("item %d score %v, want a probability", i, g.Score)
		}
	}
	if math.Abs(got.Confidence-want.Confidence) > 1e-12 {
		t.Errorf("confidence %v, want %v", got.Confidence, want.Confidence)
	}
}

// probScorer hides ModelScorer's LogitScorer side: probabilities only.
type probScorer struct{ s *ModelScorer }

func (p probScorer) Score(ctx context.Context, x *model.Context, items []event.Item, out []float64) error {
	return p.s.Score(ctx, x, items, out)
}
func (p probScorer) Version() string  { return p.s.Version() }
func (p probScorer) Calibrated() bool { return true }
