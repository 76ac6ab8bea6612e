package app

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/rollout"
)

// adminPost posts body to path with the admin token and returns the status
// and the decoded JSON answer.
func adminPost(t *testing.T, base, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("POST %s: undecodable answer: %v", path, err)
	}
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("POST %s: %d answered as %q, want problem+json", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, out
}

func getRolloutState(t *testing.T, base string) rollout.State {
	t.Helper()
	resp, err := http.Get(base + "/v1/rollouts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st rollout.State
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestRolloutAdminAPI: a challenger snapshot is registered through the
// admin API, serves its canary share of the ftrl users under the variant
// "challenger", is counted by the guardrails, survives a restart, and is
// rolled back by an operator.
func TestRolloutAdminAPI(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir, AdminToken: "s3cret", Rollout: rollout.Config{CheckEvery: time.Hour}}
	n := startNode(t, cfg)
	w := smallWorld()
	if err := w.Load(t.Context(), n.c); err != nil {
		t.Fatal(err)
	}
	n.Engine().Index().Refresh()
	sendApplied(t, n, recommendAndEvents(t, n.c, w, 0, 100))
	snap := saveChallenger(t, n)
	body := `{"source": "` + snap + `", "steps": [0.2, 0.5], "step_hold": "30m"}`

	for _, tc := range []struct {
		name, token, body string
		status            int
	}{
		{"no token", "", body, http.StatusUnauthorized},
		{"not JSON", "s3cret", `{"source":`, http.StatusBadRequest},
		{"unknown field", "s3cret", `{"source": "x", "share": 1}`, http.StatusBadRequest},
		{"no source", "s3cret", `{}`, http.StatusBadRequest},
		{"bad steps", "s3cret", `{"source": "` + snap + `", "steps": [0.5, 0.2]}`, http.StatusBadRequest},
		{"bad hold", "s3cret", `{"source": "` + snap + `", "step_hold": "soon"}`, http.StatusBadRequest},
		{"missing file", "s3cret", `{"source": "/nonexistent/model.snap"}`, http.StatusUnprocessableEntity},
	} {
		if status, out := adminPost(t, n.base, "/admin/rollouts", tc.token, tc.body); status != tc.status || out["detail"] == "" {
			t.Errorf("%s: %d %v, want %d with a detail", tc.name, status, out, tc.status)
		}
	}
	if status, _ := adminPost(t, n.base, "/admin/rollouts/abort", "s3cret", ""); status != http.StatusConflict {
		t.Errorf("abort with nothing under way: %d, want 409", status)
	}

	status, out := adminPost(t, n.base, "/admin/rollouts", "s3cret", body)
	if status != http.StatusCreated || out["stage"] != "canary" || out["share"] != 0.2 {
		t.Fatalf("start: %d %v, want 201 canary at 0.2", status, out)
	}
	if status, _ := adminPost(t, n.base, "/admin/rollouts", "s3cret", body); status != http.StatusConflict {
		t.Errorf("second start: %d, want 409", status)
	}

	// About a fifth of the ftrl half of the users get the challenger.
	served := map[string]int{}
	var evs2 []client.Event
	for i := range 400 {
		u := w.User(i)
		rec, err := n.c.Recommend(t.Context(), client.RecommendRequest{UserID: u.ID, Count: 5, Context: client.Context{Channel: "web"}})
		if err != nil {
			t.Fatal(err)
		}
		served[rec.Variant]++
		for j, it := range rec.Items {
			evs2 = append(evs2, client.Event{EventID: rec.RequestID + "-" + it.ItemID, Type: client.TypeImpression, UserID: u.ID, ItemID: it.ItemID, RequestID: rec.RequestID, Channel: "web", Timestamp: time.Now()})
			if j == 0 {
				evs2 = append(evs2, client.Event{EventID: rec.RequestID + "-c", Type: client.TypeClick, UserID: u.ID, ItemID: it.ItemID, RequestID: rec.RequestID, Channel: "web", Timestamp: time.Now()})
			}
		}
	}
	if c := served["challenger"]; c < 15 || c > 70 || served["popularity"] < 150 {
		t.Errorf("variants served %v, want about 40 challenger decisions and half popularity", served)
	}
	sendApplied(t, n, evs2)
	st := getRolloutState(t, n.base)
	ch, ca := st.Arms[rollout.Challenger], st.Arms[rollout.Champion]
	if ch.Decisions != int64(served["challenger"]) || ca.Decisions != int64(served["ftrl"]) || ch.Impressions == 0 || ch.Clicks == 0 || ch.Predicted <= 0 {
		t.Errorf("guardrail counts %+v / %+v, want the %d challenger and %d ftrl decisions with their events", ch, ca, served["challenger"], served["ftrl"])
	}

	// kill and restart: the rollout resumes at its step.
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	n2 := startNode(t, cfg)
	if st := getRolloutState(t, n2.base); st.Stage != rollout.Canary || st.Share != 0.2 || st.Version == "" {
		t.Fatalf("after a restart: %+v, want the canary at 0.2", st)
	}
	if got := n2.Engine().CurrentChallenger(); got == nil || got.Share != 0.2 {
		t.Fatalf("after a restart the engine serves challenger %+v", got)
	}
	status, out = adminPost(t, n2.base, "/admin/rollouts/abort", "s3cret", "")
	if status != http.StatusOK || out["stage"] != "rolled_back" {
		t.Fatalf("abort: %d %v", status, out)
	}
	if n2.Engine().CurrentChallenger() != nil {
		t.Error("the engine still serves the challenger after the abort")
	}
	for i := range 200 {
		rec, err := n2.c.Recommend(t.Context(), client.RecommendRequest{UserID: w.User(i).ID, Count: 3})
		if err != nil {
			t.Fatal(err)
		}
		if rec.Variant == "challenger" {
			t.Fatal("a challenger decision after the abort")
		}
	}
}
