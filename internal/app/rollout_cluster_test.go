package app

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/model"
	"github.com/sightline/sightline/internal/rollout"
	"github.com/sightline/sightline/internal/sim"
)

// TestClusterRollout runs a guarded rollout on a cluster in process (two
// trainers, two API nodes, kfake, the test Redis): the API nodes refuse to
// start one and name the trainer; the active trainer starts it and both
// API nodes serve the challenger to its share; the trainer stops and the
// standby resumes the rollout from the registry (the challenger's snapshot
// file is gone by then: it loads the published challenger); an abort
// withdraws the challenger from both API nodes; a second rollout is
// promoted from the guardrails, judged on both API nodes' decisions and
// events, and the API nodes then serve the promoted model.
func TestClusterRollout(t *testing.T) {
	began := time.Now()
	addr, prefix := testRedis(t)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(kc.Close)
	const token = "s3cret"
	// Guardrails a copy of the champion passes on a few hundred decisions;
	// internal/rollout tests their statistics.
	guards := rollout.Guards{MinImpressions: 100, NonInferiority: 0.9, CalibrationLow: 0.001, CalibrationHigh: 1000, MinClicks: 5,
		LatencySlack: time.Second, MinDecisions: 20, MaxRateIncrease: 0.5}
	base := Config{
		Bus: BusKafka, KafkaBrokers: kc.ListenAddrs(), KafkaTopic: "events", KafkaDecisionsTopic: "decisions", KafkaPartitions: 2,
		FeatureStore: StoreRedis, RedisAddr: addr, RedisPrefix: prefix, RedisTimeout: time.Second,
		PublishInterval: 100 * time.Millisecond, FollowInterval: 50 * time.Millisecond, TrainerLease: time.Second,
		AdminToken: token, Rollout: rollout.Config{CheckEvery: 100 * time.Millisecond, StepHold: time.Hour, Guards: guards},
	}
	start := func(role, name string) *testNode {
		c := base
		c.Role, c.NodeName = role, name
		return startNode(t, c)
	}
	trainer1 := start(RoleTrainer, "trainer-1")
	poll(t, 10*time.Second, func() (bool, string) {
		s := getStats(t, trainer1.base)
		return s.Active != nil && *s.Active, fmt.Sprintf("trainer-1 active=%v", s.Active)
	})
	trainer2 := start(RoleTrainer, "trainer-2")
	apis := []*testNode{start(RoleAPI, "api-1"), start(RoleAPI, "api-2")}
	w := smallWorld()
	if err := w.Load(t.Context(), apis[0].c); err != nil {
		t.Fatal(err)
	}
	for _, a := range apis {
		poll(t, 10*time.Second, func() (bool, string) {
			r, err := a.c.Recommend(t.Context(), client.RecommendRequest{UserID: w.User(1).ID, Count: 5, Context: client.Context{Channel: "web"}})
			return err == nil && len(r.Items) > 0, fmt.Sprintf("recommendation: %v", err)
		})
	}
	traffic(t, apis, w, 0, 200)
	poll(t, 10*time.Second, func() (bool, string) {
		s := getStats(t, trainer1.base)
		return s.ModelUpdates > 0 && s.Cluster != nil && s.Cluster.Published != nil, fmt.Sprintf("trainer-1 model_updates %d", s.ModelUpdates)
	})

	snap := filepath.Join(t.TempDir(), "challenger.snap")
	if err := trainer1.model().SaveFile(snap, model.SnapshotMeta{}); err != nil {
		t.Fatal(err)
	}
	body := `{"source": "` + snap + `", "steps": [0.3, 0.6]}`
	if status, out := adminPost(t, apis[0].base, "/admin/rollouts", token, body); status != http.StatusConflict || !strings.Contains(fmt.Sprint(out["detail"]), "trainer-1") {
		t.Errorf("start on an API node: %d %v, want 409 naming trainer-1", status, out)
	}
	if status, out := adminPost(t, apis[1].base, "/admin/rollouts/abort", token, ""); status != http.StatusConflict {
		t.Errorf("abort on an API node: %d %v, want 409", status, out)
	}
	t.Logf("%v: the rollout starts", time.Since(began))
	status, out := adminPost(t, trainer1.base, "/admin/rollouts", token, body)
	if status != http.StatusCreated || out["stage"] != "canary" || out["share"] != 0.3 {
		t.Fatalf("start on the trainer: %d %v, want 201 canary at 0.3", status, out)
	}
	// Both API nodes serve the challenger to its share of the ftrl users,
	// and show the cluster's rollout.
	for _, a := range apis {
		poll(t, 10*time.Second, func() (bool, string) {
			served := variants(t, a, w, 200)
			return served[challengerVariant] > 10, fmt.Sprintf("%s served %v, want the challenger to about 30 of 200", a.cfg.NodeName, served)
		})
		if st := getRolloutState(t, a.base); st.Stage != rollout.Canary || st.Share != 0.3 {
			t.Errorf("%s shows the rollout %s at %v, want canary at 0.3", a.cfg.NodeName, st.Stage, st.Share)
		}
	}
	// The trainer's guardrails count both API nodes' decisions and the
	// events of the challenger's users.
	traffic(t, apis, w, 1, 200)
	poll(t, 10*time.Second, func() (bool, string) {
		st := getRolloutState(t, trainer1.base)
		ch := st.Arms[rollout.Challenger]
		return ch.Decisions > 20 && ch.Impressions > 0 && st.Arms[rollout.Champion].Decisions > 20, fmt.Sprintf("arms %+v", st.Arms)
	})

	// The active trainer goes; the standby resumes the rollout from the
	// registry, without the snapshot file.
	if err := os.Remove(snap); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer wcancel()
	end, err := trainer1.log.End(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := trainer1.waitFor(wctx, end, []string{consumerModel}, 5*time.Millisecond); err != nil {
		t.Fatalf("trainer-1 does not catch up: %v", err)
	}
	t.Logf("%v: trainer-1 stops", time.Since(began))
	// Not checked: an active trainer's shutdown waits for the "features"
	// consumer, which a trainer no longer runs, until its deadline.
	if err := trainer1.stop(); err != nil {
		t.Logf("stop trainer-1: %v", err)
	}
	t.Logf("%v: trainer-1 stopped", time.Since(began))
	poll(t, 15*time.Second, func() (bool, string) {
		s := getStats(t, trainer2.base)
		st := getRolloutState(t, trainer2.base)
		return s.Active != nil && *s.Active && st.Stage == rollout.Canary && st.Share == 0.3 && trainer2.rolloutController() != nil && trainer2.rolloutController().Live(),
			fmt.Sprintf("trainer-2 active=%v, rollout %s at %v", s.Active, st.Stage, st.Share)
	})
	for _, a := range apis {
		if served := variants(t, a, w, 200); served[challengerVariant] == 0 {
			t.Errorf("%s stopped serving the challenger across the takeover: %v", a.cfg.NodeName, served)
		}
	}
	if status, out := adminPost(t, apis[0].base, "/admin/rollouts/abort", token, ""); status != http.StatusConflict || !strings.Contains(fmt.Sprint(out["detail"]), "trainer-2") {
		t.Errorf("abort on an API node after the takeover: %d %v, want 409 naming trainer-2", status, out)
	}
	status, out = adminPost(t, trainer2.base, "/admin/rollouts/abort", token, "")
	if status != http.StatusOK || out["stage"] != "rolled_back" {
		t.Fatalf("abort on trainer-2: %d %v", status, out)
	}
	for _, a := range apis {
		poll(t, 10*time.Second, func() (bool, string) {
			served := variants(t, a, w, 200)
			return served[challengerVariant] == 0, fmt.Sprintf("%s still serves the challenger after the abort: %v", a.cfg.NodeName, served)
		})
	}

	t.Logf("%v: the second rollout starts", time.Since(began))
	// A second challenger, promoted by the guardrails.
	snap2 := filepath.Join(t.TempDir(), "challenger2.snap")
	if err := trainer2.model().SaveFile(snap2, model.SnapshotMeta{}); err != nil {
		t.Fatal(err)
	}
	status, out = adminPost(t, trainer2.base, "/admin/rollouts", token, `{"source": "`+snap2+`", "steps": [0.5], "step_hold": "200ms"}`)
	if status != http.StatusCreated {
		t.Fatalf("second start: %d %v", status, out)
	}
	deadline := time.Now().Add(60 * time.Second)
	var st rollout.State
	for k := 2; time.Now().Before(deadline); k++ {
		if st = getRolloutState(t, trainer2.base); st.Stage != rollout.Canary {
			break
		}
		traffic(t, apis, w, k, 200)
	}
	if st.Stage != rollout.Promoted {
		t.Fatalf("second rollout ended %s, want promoted; checks %+v, arms %+v", st.Stage, st.Checks, st.Arms)
	}
	t.Logf("%v: promoted", time.Since(began))
	promoted := getStats(t, trainer2.base)
	for _, a := range apis {
		poll(t, 10*time.Second, func() (bool, string) {
			served := variants(t, a, w, 200)
			s := getStats(t, a.base)
			return served[challengerVariant] == 0 && s.Cluster != nil && s.Cluster.Serving != nil && s.Cluster.Serving.Seq >= promoted.Cluster.Serving.Seq,
				fmt.Sprintf("%s serves %v, publication %+v; want the promoted model's (seq ≥ %d)", a.cfg.NodeName, served, s.Cluster.Serving, promoted.Cluster.Serving.Seq)
		})
		if st := getRolloutState(t, a.base); st.Stage != rollout.Promoted {
			t.Errorf("%s shows the rollout %s, want promoted", a.cfg.NodeName, st.Stage)
		}
	}
}

// variants counts the variants node a serves to the first n users.
func variants(t *testing.T, a *testNode, w *sim.World, n int) map[string]int {
	t.Helper()
	served := map[string]int{}
	for i := range n {
		rec, err := a.c.Recommend(t.Context(), client.RecommendRequest{UserID: w.User(i).ID, Count: 5, Context: client.Context{Channel: "web"}})
		if err != nil {
			t.Fatal(err)
		}
		served[rec.Variant]++
	}
	return served
}

// traffic sends n recommendations, alternating between the API nodes, and
// their events (impressions, a click on the first item) through them; k
// makes the event ids of one call distinct from another's.
func traffic(t *testing.T, apis []*testNode, w *sim.World, k, n int) {
	t.Helper()
	for j, a := range apis {
		var evs []client.Event
		for i := j; i < n; i += len(apis) {
			u := w.User(i % len(w.Users()))
			rec, err := a.c.Recommend(t.Context(), client.RecommendRequest{UserID: u.ID, Count: 5, Context: client.Context{Channel: "web"}})
			if err != nil {
				t.Fatal(err)
			}
			for x, it := range rec.Items {
				evs = append(evs, client.Event{EventID: fmt.Sprintf("t%d-%d-%d", k, i, x), Type: client.TypeImpression, UserID: u.ID, ItemID: it.ItemID, RequestID: rec.RequestID, Channel: "web", Timestamp: time.Now()})
				if x == 0 {
					evs = append(evs, client.Event{EventID: fmt.Sprintf("t%d-%d-c", k, i), Type: client.TypeClick, UserID: u.ID, ItemID: it.ItemID, RequestID: rec.RequestID, Channel: "web", Timestamp: time.Now()})
				}
			}
		}
		if _, err := a.c.SendEvents(t.Context(), evs); err != nil {
			t.Fatal(err)
		}
	}
}
