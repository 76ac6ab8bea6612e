package api_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
)

// TestPublicClient drives the server with the public client, so the two
// wire formats cannot drift apart.
func TestPublicClient(t *testing.T) {
	e := newEnv(t, nil)
	e.rec.fallback = engine.ReasonLowConfidence
	c, err := client.New(e.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	ctx := context.Background()

	if err := c.Health(ctx); err != nil {
		t.Errorf("Health() error = %v", err)
	}
	rec, err := c.Recommend(ctx, client.RecommendRequest{UserID: "u/1", Count: 2, Context: client.Context{Channel: "home"}})
	if err != nil {
		t.Fatalf("Recommend() error = %v", err)
	}
	want := &client.Recommendation{RequestID: rec.RequestID, Variant: "control", ModelVersion: "ftrl-3",
		Fallback: &client.Fallback{Reason: "low_confidence", Detail: "fallback because low_confidence"},
		Items:    []client.ScoredItem{{ItemID: "item-0", Score: 0.5, Reason: "model"}, {ItemID: "item-1", Score: 1.0 / 3, Reason: "model"}}}
	if diff := cmp.Diff(want, rec); diff != "" {
		t.Errorf("Recommend() mismatch (-want +got):\n%s", diff)
	}
	raw, err := c.Decision(ctx, rec.RequestID)
	if err != nil || !strings.Contains(string(raw), rec.RequestID) {
		t.Errorf("Decision(%q) = %s, %v; want the record", rec.RequestID, raw, err)
	}

	ts := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	res, err := c.SendEvents(ctx, []client.Event{
		{EventID: "e1", Type: client.TypeClick, UserID: "u/1", ItemID: "item-0", RequestID: rec.RequestID, Channel: "home", Timestamp: ts, DwellMS: 300},
		{EventID: "e2", Type: "bogus", UserID: "u/1", ItemID: "item-0"},
	})
	if err != nil {
		t.Fatalf("SendEvents() error = %v", err)
	}
	if res.Accepted != 1 || len(res.Rejected) != 1 || res.Rejected[0].Index != 1 {
		t.Errorf("SendEvents() = %+v, want 1 accepted and event 1 rejected", res)
	}
	wantEv := []event.Event{{ID: "e1", Type: event.Click, UserID: "u/1", ItemID: "item-0", RequestID: rec.RequestID, Channel: "home", Timestamp: ts, DwellMS: 300}}
	if diff := cmp.Diff(wantEv, e.pub.events()); diff != "" {
		t.Errorf("published events mismatch (-want +got):\n%s", diff)
	}
	// A retry reports the duplicate.
	if res, err = c.SendEvents(ctx, []client.Event{{EventID: "e1", Type: client.TypeClick, UserID: "u/1", ItemID: "item-0"}}); err != nil || res.Duplicates != 1 {
		t.Errorf("SendEvents(retry) = %+v, %v; want 1 duplicate", res, err)
	}

	if err := c.PutUser(ctx, client.User{UserID: "u/1", Segment: "s", Attributes: map[string]string{"a": "b"}}); err != nil {
		t.Errorf("PutUser() error = %v", err)
	}
	if err := c.PutItem(ctx, client.Item{ItemID: "i 1", Category: "c", Available: true}); err != nil {
		t.Errorf("PutItem() error = %v", err)
	}
	if got := e.cat.users["u/1"].Segment; got != "s" {
		t.Errorf("stored user segment = %q, want s", got)
	}
	if got := e.cat.items["i 1"]; !got.Available || got.Category != "c" {
		t.Errorf("stored item = %+v, want available in category c", got)
	}
	ir, err := c.ImportItems(ctx, strings.NewReader(`{"item_id":"i2","category":"c"}`+"\n"+`{"item_id":"i3"}`+"\n"))
	if err != nil || ir.Imported != 1 || ir.Rejected != 1 || ir.Errors[0].Line != 2 {
		t.Errorf("ImportItems() = %+v, %v; want 1 imported and line 2 rejected", ir, err)
	}
	st, err := c.Stats(ctx)
	if err != nil || st.RequestsPerSecond != 10.5 || st.ModelVersion != "ftrl-3" {
		t.Errorf("Stats() = %+v, %v; want the fake stats", st, err)
	}

	_, err = c.Recommend(ctx, client.RecommendRequest{UserID: "u1", Count: 500})
	ce, ok := errors.AsType[*client.Error](err)
	if !ok || ce.Status != 400 || ce.Type != "https://sightline.dev/problems/invalid-request" ||
		ce.Detail != "count must be between 1 and 100, got 500" {
		t.Errorf("Recommend(count 500) error = %#v, want a 400 invalid-request problem", err)
	}
	_, err = c.Decision(ctx, "missing")
	if ce, ok := errors.AsType[*client.Error](err); !ok || ce.Status != 404 {
		t.Errorf("Decision(missing) error = %v, want a 404 *client.Error", err)
	}
}
