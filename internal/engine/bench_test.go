package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/features"
	"github.com/sightline/sightline/internal/model"
)

// benchEngine is an engine over the real in-memory store and FTRL model with
// 10,000 items in 40 categories and 10,000 users, popularity warmed up.
func benchEngine(b *testing.B) *Engine {
	b.Helper()
	return benchEngineWith(b, nil)
}

// benchEngineWith is benchEngine with mutate applied to its Config.
func benchEngineWith(b *testing.B, mutate func(*Config)) *Engine {
	b.Helper()
	store, err := features.NewMemory(features.Config{})
	if err != nil {
		b.Fatal(err)
	}
	m, err := model.New(model.Config{})
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{
		Split:   model.Split{{Name: "ftrl", Weight: 1}},
		Scorers: map[string]Scorer{"ftrl": NewModelScorer(m)},
		Index:   IndexConfig{PerCategory: 5, Global: 100},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	e, err := New(store, cfg)
	if err != nil {
		b.Fatal(err)
	}
	store.OnItemChange(e.Index().PutItem)
	ctx := b.Context()
	for i := range 10_000 {
		if err := store.PutItem(ctx, event.Item{ID: fmt.Sprintf("i%05d", i), Category: fmt.Sprintf("c%02d", i%40), Available: true}); err != nil {
			b.Fatal(err)
		}
	}
	ages := []string{"18-24", "25-34", "35-44", "45-54", "55+"}
	for i := range 10_000 {
		if err := store.PutUser(ctx, event.User{ID: fmt.Sprintf("u%05d", i), AgeBucket: ages[i%5], Segment: "regular", Region: "eu", Device: "ios"}); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now()
	for i := range 50_000 {
		ev := event.Event{ID: fmt.Sprint(i), Type: event.Click, UserID: fmt.Sprintf("u%05d", i%10_000), ItemID: fmt.Sprintf("i%05d", (i*7919)%10_000), Timestamp: now}
		e.Observe(ctx, &ev)
		_ = store.Apply(ctx, []*event.Event{&ev})
	}
	e.Index().Refresh()
	return e
}

// BenchmarkRecommend10k is one full decision: features, ≥200 candidates,
// FTRL scoring, rules and the decision record, with telemetry off.
func BenchmarkRecommend10k(b *testing.B) {
	e := benchEngine(b)
	ctx := b.Context()
	i := 0
	var cands int
	b.ReportAllocs()
	for b.Loop() {
		d, err := e.Recommend(ctx, Request{UserID: fmt.Sprintf("u%05d", i%10_000), Count: 10, Channel: "web"})
		if err != nil {
			b.Fatal(err)
		}
		cands += d.Candidates
		i++
	}
	b.ReportMetric(float64(cands)/float64(i), "candidates/op")
}

// BenchmarkRecommendShadow10k is BenchmarkRecommend10k with a challenger
// in shadow (every decision scored by a second model too, its would-be
// answer recorded) and without, in one run: the shadow stage's cost.
func BenchmarkRecommendShadow10k(b *testing.B) {
	for _, shadow := range []bool{false, true} {
		b.Run(fmt.Sprintf("shadow=%v", shadow), func(b *testing.B) {
			e := benchEngineWith(b, func(c *Config) {
				c.ChallengerVariant = "challenger"
				// No budget a profiled or loaded run can miss: this
				// measures work, not deadlines.
				c.FeatureBudget, c.ModelBudget = time.Hour, time.Hour
			})
			if shadow {
				m, err := model.New(model.Config{})
				if err != nil {
					b.Fatal(err)
				}
				if err := e.SetChallenger(&Challenger{Base: "ftrl", Scorer: NewModelScorer(m), Shadow: true}); err != nil {
					b.Fatal(err)
				}
			}
			ctx := b.Context()
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				d, err := e.Recommend(ctx, Request{UserID: fmt.Sprintf("u%05d", i%10_000), Count: 10, Channel: "web"})
				if err != nil {
					b.Fatal(err)
				}
				if shadow && d.Fallback == ReasonNone && (d.Shadow == nil || len(d.Shadow.Items) != 10) {
					b.Fatalf("shadow = %+v, want the challenger's 10 items", d.Shadow)
				}
				i++
			}
		})
	}
}

// BenchmarkObserve is the candidate index update per event.
func BenchmarkObserve(b *testing.B) {
	e := benchEngine(b)
	ctx := b.Context()
	ev := event.Event{ID: "x", Type: event.Click, UserID: "u00001", ItemID: "i00042", Timestamp: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		e.Observe(ctx, &ev)
	}
}
