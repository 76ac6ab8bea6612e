package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/decisionlog"
	"github.com/sightline/sightline/internal/event"
)

// TestDecisionLogOnANode serves recommendations and their events on a
// --role all node and reads back the Parquet decision log it wrote: every
// decision with its pool, nulls as nulls, every event joined by request
// id, the store ratio in the files; and nothing when the log is off.
func TestDecisionLogOnANode(t *testing.T) {
	tests := []struct {
		name  string
		store DecisionStoreConfig
		pool  int // the pool length of a model decision (0: no log)
	}{
		{name: "default: every decision, a pool of 20", pool: 20},
		{name: "pool of 3", store: DecisionStoreConfig{Pool: 3}, pool: 3},
		{name: "off", store: DecisionStoreConfig{Disabled: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			n := startNode(t, Config{DataDir: dir, DecisionStore: tt.store, Split: "ftrl=100"})
			w := smallWorld()
			if err := w.Load(t.Context(), n.c); err != nil {
				t.Fatal(err)
			}
			n.Engine().Index().Refresh()
			evs := recommendAndEvents(t, n.c, w, 0, 20)
			if _, err := n.c.SendEvents(t.Context(), evs); err != nil {
				t.Fatal(err)
			}
			// A user whose ETL lost the age bucket.
			if err := n.c.PutUser(t.Context(), client.User{UserID: "etl-victim", Segment: "new", Region: "eu", Device: "ios"}); err != nil {
				t.Fatal(err)
			}
			victim, err := n.c.Recommend(t.Context(), client.RecommendRequest{UserID: "etl-victim", Count: 5})
			if err != nil {
				t.Fatal(err)
			}
			waitApplied(t, n.base)
			if err := n.stop(); err != nil {
				t.Fatalf("stop: %v", err)
			}

			logDir := filepath.Join(dir, "decisions")
			if tt.pool == 0 {
				if _, err := os.Stat(logDir); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("the log is off, yet %s exists (%v)", logDir, err)
				}
				return
			}
			wantEvents := map[string]int{}
			for _, e := range evs {
				wantEvents[e.RequestID]++
			}
			byID := map[string]decisionlog.Decision{}
			err = decisionlog.ReadDecisions(context.Background(), logDir, func(d *decisionlog.Decision) error {
				byID[d.RequestID] = *d
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(byID) != len(wantEvents)+1 {
				t.Fatalf("read %d decisions, want %d (every request)", len(byID), len(wantEvents)+1)
			}
			for id := range wantEvents {
				d, ok := byID[id]
				if !ok {
					t.Fatalf("decision %s missing from the log", id)
				}
				if d.Variant != "ftrl" || len(d.Items) != 5 || d.UserAgeBucket == nil || d.Node != n.cfg.NodeName {
					t.Errorf("decision %s = variant %q, %d items, age %v, node %q; want ftrl, 5 items, an age bucket, node %q", id, d.Variant, len(d.Items), d.UserAgeBucket, d.Node, n.cfg.NodeName)
				}
				if d.FallbackReason == "" && len(d.Pool) != tt.pool {
					t.Errorf("decision %s has a pool of %d, want %d", id, len(d.Pool), tt.pool)
				}
				for _, s := range d.Items {
					if s.Propensity <= 0 || s.Propensity > 1 {
						t.Errorf("decision %s slot %s propensity %v, want in (0, 1]", id, s.ItemID, s.Propensity)
					}
				}
				if strings.Contains(d.UserHash, "user") {
					t.Errorf("decision %s user_hash %q looks like a raw user id", id, d.UserHash)
				}
			}
			v, ok := byID[victim.RequestID]
			if !ok || v.UserAgeBucket != nil || v.FallbackReason != "missing_features" || v.UserSegment == nil {
				t.Errorf("the ETL victim's decision = %+v, want user_age_bucket null, the segment kept, fallback missing_features", v)
			}
			gotEvents := map[string]int{}
			err = decisionlog.ReadEvents(context.Background(), logDir, func(e *decisionlog.Event) error {
				gotEvents[e.RequestID]++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for id, want := range wantEvents {
				if gotEvents[id] != want {
					t.Errorf("events of %s logged %d, want %d", id, gotEvents[id], want)
				}
			}
			if r, err := decisionlog.StoreRatio(logDir); err != nil || r != 1 {
				t.Errorf("StoreRatio = %v, %v, want 1", r, err)
			}
		})
	}
}

// TestDecisionLogRule: the in-process DecisionLogDropping alert counts the
// rows the writer dropped over the last 10 minutes, as the Prometheus
// rule's increase(...[10m]) does.
func TestDecisionLogRule(t *testing.T) {
	w, err := decisionlog.New(decisionlog.Config{Dir: t.TempDir(), Buffer: 1})
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{dlog: w}
	rule := n.decisionLogRule()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	if got := rule.Expr(t0); got != nil {
		t.Fatalf("no drops: Expr = %v, want nothing", got)
	}
	// The writer is not running: the second event finds the queue full.
	for i := range 2 {
		w.Event(&event.Event{ID: fmt.Sprint("e", i), Type: event.Click, RequestID: "r1", ItemID: "i1", Timestamp: t0})
	}
	if got := rule.Expr(t0.Add(time.Minute)); len(got) != 1 || got[0].Value != 1 {
		t.Errorf("a drop a minute ago: Expr = %v, want one sample of 1", got)
	}
	if got := rule.Expr(t0.Add(12 * time.Minute)); got != nil {
		t.Errorf("the drop 11 minutes ago: Expr = %v, want nothing", got)
	}
}
