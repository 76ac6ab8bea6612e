package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/features"
	"github.com/sightline/sightline/internal/model"
)

// TestClickChangesNextRecommendation checks freshness end to end over the
// real feature store and model: after a user clicks items of a category the
// answer did not show, the next answer shows that category (not as an
// explored slot), without waiting for an index refresh or for the model to
// learn from the click. With RecentSlots disabled the same click must not be
// enough here, which shows the rule is what carries it.
func TestClickChangesNextRecommendation(t *testing.T) {
	for _, tc := range []struct {
		recentSlots int
		wantVisible bool
	}{
		{0, true},
		{-1, false},
	} {
		t.Run(fmt.Sprintf("RecentSlots=%d", tc.recentSlots), func(t *testing.T) {
			ctx := t.Context()
			store, err := features.NewMemory(features.Config{})
			if err != nil {
				t.Fatal(err)
			}
			m, err := model.New(model.Config{Bits: 16})
			if err != nil {
				t.Fatal(err)
			}
			e, err := New(store, Config{
				Split:       model.Split{{Name: "ftrl", Weight: 1}},
				Scorers:     map[string]Scorer{"ftrl": NewModelScorer(m)},
				RecentSlots: tc.recentSlots,
				// Not a test of the budgets (see logits_test.go).
				FeatureBudget: time.Minute, ModelBudget: time.Minute,
			})
			if err != nil {
				t.Fatal(err)
			}
			store.OnItemChange(e.Index().PutItem)
			for _, it := range catalog(20, 30) {
				if err := store.PutItem(ctx, it); err != nil {
					t.Fatal(err)
				}
			}
			user := event.User{ID: "u1", AgeBucket: "25-34", Segment: "regular", Region: "eu", Device: "ios"}
			if err := store.PutUser(ctx, user); err != nil {
				t.Fatal(err)
			}
			// Other users' clicks make categories c00..c04 popular, and
			// the model learns that this profile likes them.
			now := time.Now()
			x := model.Context{User: user, Channel: "web", Hour: now.Hour()}
			for i := range 400 {
				it := event.Item{ID: fmt.Sprintf("i%02d-%03d", i%5, i%30), Category: fmt.Sprintf("c%02d", i%5), Available: true}
				ev := event.Event{ID: fmt.Sprint(i), Type: event.Click, UserID: fmt.Sprintf("o%d", i%50), ItemID: it.ID, Timestamp: now}
				e.Observe(ctx, &ev)
				_ = store.Apply(ctx, []*event.Event{&ev})
				m.Learn(&x, it, model.Positive)
				m.Learn(&x, event.Item{ID: fmt.Sprintf("i%02d-%03d", 5+i%15, i%30), Category: fmt.Sprintf("c%02d", 5+i%15), Available: true}, model.Negative)
			}
			e.Index().Refresh()

			req := Request{UserID: "u1", Count: 10, Channel: "web"}
			shown := func() map[string]bool {
				d, err := e.Recommend(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				if d.Fallback != ReasonNone {
					t.Fatalf("Recommend fell back: %s: %s", d.Fallback, d.FallbackDetail)
				}
				cats := map[string]bool{}
				for _, it := range d.Items {
					if it.Reason != "explore" {
						cats[it.Category] = true
					}
				}
				return cats
			}
			before := shown()
			const target = "c17"
			if before[target] {
				t.Fatalf("category %s shown before the click: %v", target, before)
			}
			for k := range 3 {
				ev := event.Event{ID: fmt.Sprint("click", k), Type: event.Click, UserID: "u1", ItemID: fmt.Sprintf("i17-%03d", k), Timestamp: time.Now()}
				e.Observe(ctx, &ev)
				_ = store.Apply(ctx, []*event.Event{&ev})
			}
			after := shown()
			if after[target] != tc.wantVisible {
				t.Errorf("category %s shown after the click = %v, want %v (shown: %v)", target, after[target], tc.wantVisible, after)
			}
		})
	}
}
