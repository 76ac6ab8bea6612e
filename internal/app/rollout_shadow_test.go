package app

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/api/apitest"
	"github.com/sightline/sightline/internal/model"
	"github.com/sightline/sightline/internal/rollout"
)

// TestRolloutShadowEstimate runs a rollout's shadow stage on a node: the
// decisions the shadow challenger scored reach the Parquet decision log
// with its would-be choices, and the check after a restart (which closes
// the log's files) estimates the challenger offline from exactly those
// decisions, shown by GET /v1/rollouts and kept by the state; a copy of
// the champion is estimated at the champion's CTR.
func TestRolloutShadowEstimate(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir, AdminToken: "s3cret", Rollout: rollout.Config{CheckEvery: time.Hour, ShadowHold: time.Hour}}
	n := startNode(t, cfg)
	w := smallWorld()
	if err := w.Load(t.Context(), n.c); err != nil {
		t.Fatal(err)
	}
	n.Engine().Index().Refresh()
	sendApplied(t, n, recommendAndEvents(t, n.c, w, 0, 150))
	snap := saveChallenger(t, n)
	if status, out := adminPost(t, n.base, "/admin/rollouts", "s3cret", `{"source": "`+snap+`"}`); status != 201 || out["stage"] != "shadow" {
		t.Fatalf("start: %d %v, want 201 in shadow", status, out)
	}
	shadowed := 0
	var evs []client.Event
	for i := range 400 {
		u := w.User(i % len(w.Users()))
		rec, err := n.c.Recommend(t.Context(), client.RecommendRequest{UserID: u.ID, Count: 5, Context: client.Context{Channel: "web"}})
		if err != nil {
			t.Fatal(err)
		}
		if rec.Variant == championVariant && rec.Fallback == nil {
			shadowed++
		}
		for j, it := range rec.Items {
			evs = append(evs, client.Event{EventID: fmt.Sprintf("s%d-%d", i, j), Type: client.TypeImpression, UserID: u.ID, ItemID: it.ItemID, RequestID: rec.RequestID, Channel: "web", Timestamp: time.Now()})
			if j == i%5 {
				evs = append(evs, client.Event{EventID: fmt.Sprintf("s%d-%d-c", i, j), Type: client.TypeClick, UserID: u.ID, ItemID: it.ItemID, RequestID: rec.RequestID, Channel: "web", Timestamp: time.Now()})
			}
		}
	}
	sendApplied(t, n, evs)
	n.Rollout().Check(t.Context())
	if st := getRolloutState(t, n.base); st.Offline != nil {
		t.Errorf("an estimate before any log file closed: %+v", st.Offline)
	}
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, cfg)
	n.Rollout().Check(t.Context())
	// Read through a client that validates the answer against
	// openapi.json (its schemas are closed: an undocumented field fails).
	status, body := call(t, contractHTTP(t, apitest.Requests|apitest.Responses), "GET", n.base+"/v1/rollouts", "")
	var st rollout.State
	if err := json.Unmarshal(body, &st); status != 200 || err != nil {
		t.Fatalf("GET /v1/rollouts = %d (%v): %s", status, err, body)
	}
	if st.Stage != rollout.Shadow || st.Offline == nil {
		t.Fatalf("after the restart and a check: %s with offline estimate %+v; want shadow with one", st.Stage, st.Offline)
	}
	o := st.Offline
	t.Logf("%s (%s, ESS %.0f, unsupported %.3f)", o.Verdict(), o.Estimator, o.ESS, o.Unsupported)
	if o.Decisions != int64(shadowed) || o.Estimator == "" {
		t.Errorf("estimate from %d decisions by %q, want the %d the challenger shadowed, by an estimator", o.Decisions, o.Estimator, shadowed)
	}
	for _, iv := range []rollout.Interval{o.Challenger, o.Champion} {
		if !(iv.Low <= iv.Value && iv.Value <= iv.High && iv.High > 0) {
			t.Errorf("interval %+v: want low ≤ value ≤ high, high > 0", iv)
		}
	}
	// The challenger is a copy of the champion: its estimate is the
	// champion's CTR, within the estimate's noise.
	if d := o.Challenger.Value - o.Champion.Value; d < -0.05 || d > 0.05 {
		t.Errorf("a copy of the champion estimated at %v against the champion's %v", o.Challenger.Value, o.Champion.Value)
	}
	// The champion's logged CTR is the clicks the test sent per shown slot.
	if c := o.Champion.Value; c < 0.15 || c > 0.25 {
		t.Errorf("champion's logged CTR %v, want about 0.2 (one click in five slots)", c)
	}
}

// sendApplied sends evs to n in batches of the API's largest and waits
// until n applied them.
func sendApplied(t *testing.T, n *testNode, evs []client.Event) {
	t.Helper()
	for len(evs) > 0 {
		k := min(len(evs), 1000)
		if _, err := n.c.SendEvents(t.Context(), evs[:k]); err != nil {
			t.Fatal(err)
		}
		evs = evs[k:]
	}
	if err := n.WaitApplied(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// saveChallenger saves a copy of n's model as a challenger snapshot and
// returns its path.
func saveChallenger(t *testing.T, n *testNode) string {
	t.Helper()
	snap := filepath.Join(t.TempDir(), "challenger.snap")
	if err := n.model().SaveFile(snap, model.SnapshotMeta{}); err != nil {
		t.Fatal(err)
	}
	return snap
}
