package engine

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
)

// swapModel returns a model trained on n examples in which the items of
// category c%8 == k are clicked, so that models with different k score the
// same items differently.
func swapModel(tb testing.TB, name string, k, n int) *model.Model {
	tb.Helper()
	m, err := model.New(model.Config{Name: name})
	if err != nil {
		tb.Fatal(err)
	}
	x := model.Context{User: event.User{AgeBucket: "25-34", Segment: "regular"}, Channel: "web", Hour: 9}
	for i := range n {
		it := event.Item{ID: fmt.Sprintf("i%03d", i%200), Category: fmt.Sprintf("c%02d", i%8)}
		label := model.Negative
		if i%8 == k {
			label = model.Positive
		}
		m.Learn(&x, it, label)
	}
	return m
}

func swapItems(n int) []event.Item {
	items := make([]event.Item, n)
	for i := range items {
		items[i] = event.Item{ID: fmt.Sprintf("i%03d", i%200), Category: fmt.Sprintf("c%02d", i%8)}
	}
	return items
}

// TestModelScorerSwap checks that Swap changes the model of later calls
// (scores, version, Model) and leaves a pinned scorer on its model.
func TestModelScorerSwap(t *testing.T) {
	a, b := swapModel(t, "a", 1, 4000), swapModel(t, "b", 5, 4000)
	x := &model.Context{User: event.User{AgeBucket: "25-34", Segment: "regular"}, Channel: "web", Hour: 9}
	items := swapItems(64)
	want := func(m *model.Model) []float64 {
		var p model.Prepared
		m.Prepare(x, &p)
		out := make([]float64, len(items))
		m.Logits(&p, items, out)
		return out
	}
	wantA, wantB := want(a), want(b)
	if slices.Equal(wantA, wantB) {
		t.Fatal("models a and b score alike; the test cannot tell them apart")
	}

	s := NewModelScorer(a)
	pinned := s.Pin()
	got := make([]float64, len(items))
	check := func(sc Scorer, name string, want []float64, wantVersion string, wantModel *model.Model) {
		t.Helper()
		if err := sc.(LogitScorer).ScoreLogits(t.Context(), x, items, got); err != nil {
			t.Fatalf("%s.ScoreLogits = %v", name, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s.ScoreLogits = %v, want %v", name, got[:4], want[:4])
		}
		if err := sc.Score(t.Context(), x, items, got); err != nil {
			t.Fatalf("%s.Score = %v", name, err)
		}
		if p := model.Sigmoid(want[0]); got[0] != p {
			t.Errorf("%s.Score[0] = %v, want %v", name, got[0], p)
		}
		if v := sc.Version(); v != wantVersion {
			t.Errorf("%s.Version() = %q, want %q", name, v, wantVersion)
		}
		if m := sc.(interface{ Model() *model.Model }).Model(); m != wantModel {
			t.Errorf("%s.Model() = %p, want %p", name, m, wantModel)
		}
	}
	check(s, "scorer", wantA, a.Version(), a)
	s.Swap(b)
	check(s, "swapped scorer", wantB, b.Version(), b)
	check(pinned, "scorer pinned before the swap", wantA, a.Version(), a)
	check(s.Pin(), "scorer pinned after the swap", wantB, b.Version(), b)
	if a.Version() == b.Version() {
		t.Errorf("versions %q and %q are equal; want them to differ by name", a.Version(), b.Version())
	}
}

// TestModelScorerSwapRace scores from several goroutines while another
// swaps the model back and forth: every call must score all its items with
// one model (its output equals one model's, never a mix), and under -race
// no access is unsynchronized.
func TestModelScorerSwapRace(t *testing.T) {
	a, b := swapModel(t, "a", 1, 4000), swapModel(t, "b", 5, 4000)
	x := &model.Context{User: event.User{AgeBucket: "25-34", Segment: "regular"}, Channel: "web", Hour: 9}
	items := swapItems(200)
	logits := func(m *model.Model) []float64 {
		out := make([]float64, len(items))
		if err := NewModelScorer(m).ScoreLogits(t.Context(), x, items, out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	wantA, wantB := logits(a), logits(b)
	s := NewModelScorer(a)

	ctx := t.Context()
	stop := make(chan struct{})
	var swapper, workers sync.WaitGroup
	swaps := 0
	swapper.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				s.Swap(b)
			} else {
				s.Swap(a)
			}
			if v := s.Version(); v != a.Version() && v != b.Version() {
				t.Errorf("Version() = %q during swaps, want %q or %q", v, a.Version(), b.Version())
			}
			if m := s.Model(); m != a && m != b {
				t.Errorf("Model() = %p during swaps, want %p or %p", m, a, b)
			}
			swaps++
		}
	})
	const scorers, calls = 4, 300
	var seenA, seenB [scorers]int
	for g := range scorers {
		workers.Go(func() {
			out := make([]float64, len(items))
			for range calls {
				var err error
				if g%2 == 0 {
					err = s.ScoreLogits(ctx, x, items, out)
				} else {
					p := s.Pin()
					err = p.(LogitScorer).ScoreLogits(ctx, x, items, out)
					if v := p.Version(); err == nil && (v == a.Version()) != slices.Equal(out, wantA) {
						t.Errorf("scorer pinned to version %q scored with the other model", v)
						return
					}
				}
				if err != nil {
					t.Errorf("ScoreLogits = %v", err)
					return
				}
				switch {
				case slices.Equal(out, wantA):
					seenA[g]++
				case slices.Equal(out, wantB):
					seenB[g]++
				default:
					t.Errorf("ScoreLogits during swaps = %v..., want model a's %v... or b's %v...", out[:3], wantA[:3], wantB[:3])
					return
				}
			}
		})
	}
	workers.Wait()
	close(stop)
	swapper.Wait()
	t.Logf("%d swaps; calls scored with a: %v, with b: %v", swaps, seenA, seenB)
}

// BenchmarkModelScorerScoreLogits scores 200 candidates through the
// swappable scorer, the model inference stage of one request. Compare with
// BenchmarkModelLogits (the model alone) for the cost of the indirection.
func BenchmarkModelScorerScoreLogits(b *testing.B) {
	m := swapModel(b, "ftrl", 1, 20_000)
	x := &model.Context{User: event.User{AgeBucket: "25-34", Segment: "regular", Region: "eu", Device: "ios"},
		Channel: "web", Hour: 9, RecentCategories: []string{"c01", "c03", "c05"}}
	items := swapItems(200)
	out := make([]float64, len(items))
	s := NewModelScorer(m)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.ScoreLogits(ctx, x, items, out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkModelScorerScoreLogitsSwapping is the same while another
// goroutine swaps the model every 100µs, as a node that loads snapshots
// far more often than the trainer publishes them would.
func BenchmarkModelScorerScoreLogitsSwapping(b *testing.B) {
	m1, m2 := swapModel(b, "ftrl", 1, 20_000), swapModel(b, "ftrl", 2, 20_000)
	x := &model.Context{User: event.User{AgeBucket: "25-34", Segment: "regular", Region: "eu", Device: "ios"},
		Channel: "web", Hour: 9, RecentCategories: []string{"c01", "c03", "c05"}}
	items := swapItems(200)
	out := make([]float64, len(items))
	s := NewModelScorer(m1)
	ctx := b.Context()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Microsecond)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if i%2 == 0 {
				s.Swap(m2)
			} else {
				s.Swap(m1)
			}
		}
	})
	b.ReportAllocs()
	for b.Loop() {
		if err := s.ScoreLogits(ctx, x, items, out); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
}

// BenchmarkModelLogits is the model's own Prepare and Logits on the same
// input, without the scorer: the floor of BenchmarkModelScorerScoreLogits.
func BenchmarkModelLogits(b *testing.B) {
	m := swapModel(b, "ftrl", 1, 20_000)
	x := &model.Context{User: event.User{AgeBucket: "25-34", Segment: "regular", Region: "eu", Device: "ios"},
		Channel: "web", Hour: 9, RecentCategories: []string{"c01", "c03", "c05"}}
	items := swapItems(200)
	out := make([]float64, len(items))
	var p model.Prepared
	b.ReportAllocs()
	for b.Loop() {
		m.Prepare(x, &p)
		m.Logits(&p, items, out)
	}
}
