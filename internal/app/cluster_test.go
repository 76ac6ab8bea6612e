package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/decisionlog"
)

// TestClusterRoles runs a trainer and an API node in process on a kfake
// cluster and the test Redis: the trainer learns every event accepted by
// the API node exactly once, the API node serves the version the trainer
// published, and the API node's /v1/alerts carries the cluster's quality
// state, computed by the trainer from the decisions the API node made —
// here the null age bucket of the talk's ETL bug.
func TestClusterRoles(t *testing.T) {
	addr, prefix := testRedis(t)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(kc.Close)
	base := Config{
		Bus: BusKafka, KafkaBrokers: kc.ListenAddrs(), KafkaTopic: "events", KafkaDecisionsTopic: "decisions", KafkaPartitions: 2,
		FeatureStore: StoreRedis, RedisAddr: addr, RedisPrefix: prefix,
		PublishInterval: 100 * time.Millisecond, FollowInterval: 50 * time.Millisecond, TrainerLease: time.Second,
		AlertInterval: 100 * time.Millisecond,
	}
	tc := base
	tc.Role, tc.NodeName = RoleTrainer, "trainer-1"
	trainer := startNode(t, tc)
	ac := base
	ac.Role, ac.NodeName = RoleAPI, "api-1"
	apiNode := startNode(t, ac)

	poll(t, 10*time.Second, func() (bool, string) {
		s := getStats(t, trainer.base)
		return s.Active != nil && *s.Active, fmt.Sprintf("trainer active=%v", s.Active)
	})
	w := smallWorld()
	if err := w.Load(t.Context(), apiNode.c); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, func() (bool, string) {
		r, err := apiNode.c.Recommend(t.Context(), client.RecommendRequest{UserID: w.User(1).ID, Count: 5, Context: client.Context{Channel: "web"}})
		return err == nil && len(r.Items) > 0, fmt.Sprintf("recommendation: %v", err)
	})

	evs := recommendAndEvents(t, apiNode.c, w, 0, 20)
	res, err := apiNode.c.SendEvents(t.Context(), evs)
	if err != nil || res.Accepted != len(evs) {
		t.Fatalf("SendEvents = %+v, %v; want all %d accepted", res, err, len(evs))
	}
	// The same events again, as a client retry: accepted, learned once.
	if _, err := apiNode.c.SendEvents(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, func() (bool, string) {
		s := getStats(t, trainer.base)
		return s.ModelUpdates >= uint64(len(evs)), fmt.Sprintf("trainer model_updates %d, want %d", s.ModelUpdates, len(evs))
	})
	var ts, as Stats
	poll(t, 10*time.Second, func() (bool, string) {
		ts, as = getStats(t, trainer.base), getStats(t, apiNode.base)
		return as.ModelUpdates == ts.ModelUpdates && as.ModelVersion == ts.ModelVersion && ts.Cluster != nil && ts.Cluster.Published != nil && ts.Cluster.Published.Version == ts.ModelVersion,
			fmt.Sprintf("api serves %q (%d updates), trainer published %q (%d updates)", as.ModelVersion, as.ModelUpdates, ts.ModelVersion, ts.ModelUpdates)
	})
	if ts.ModelUpdates != uint64(len(evs)) {
		t.Errorf("trainer model_updates = %d after %d events sent twice, want %d (each learned once)", ts.ModelUpdates, len(evs), len(evs))
	}
	if ts.Role != RoleTrainer || ts.Node != "trainer-1" || ts.Cluster.Trainer != "trainer-1" {
		t.Errorf("trainer stats role=%q node=%q cluster.trainer=%q", ts.Role, ts.Node, ts.Cluster.Trainer)
	}
	if as.Active != nil || as.Role != RoleAPI {
		t.Errorf("api stats role=%q active=%v; want role api and no active field", as.Role, as.Active)
	}

	// New users whose age bucket the ETL nulled, served by the API node.
	for i := range 30 {
		id := fmt.Sprintf("etl-null-%d", i)
		if err := apiNode.c.PutUser(t.Context(), client.User{UserID: id, Segment: "new", Region: "eu", Device: "ios"}); err != nil {
			t.Fatal(err)
		}
		if _, err := apiNode.c.Recommend(t.Context(), client.RecommendRequest{UserID: id, Count: 5, Context: client.Context{Channel: "web"}}); err != nil {
			t.Fatal(err)
		}
	}
	poll(t, 10*time.Second, func() (bool, string) {
		var body struct {
			Alerts  []json.RawMessage `json:"alerts"`
			Cluster *clusterQuality   `json:"cluster"`
		}
		resp, err := http.Get(apiNode.base + "/v1/alerts")
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := json.Unmarshal(b, &body); err != nil {
			return false, err.Error()
		}
		if body.Cluster == nil {
			return false, "no cluster quality in /v1/alerts: " + strings.TrimSpace(string(b))
		}
		served := false
		for _, s := range body.Cluster.Served {
			served = served || s.Node == "api-1" && s.ModelVersion != "" && s.Decisions > 0
		}
		for _, f := range body.Cluster.Features {
			if f.Name == "user_age_bucket" && f.NullRatio > 0 {
				return body.Cluster.Trainer == "trainer-1" && served, fmt.Sprintf("cluster quality from %q, served %+v", body.Cluster.Trainer, body.Cluster.Served)
			}
		}
		return false, fmt.Sprintf("cluster features %+v: want user_age_bucket nulls seen by the trainer", body.Cluster.Features)
	})
	// The API node does not export the cluster's quality gauges: only the
	// trainer does, so a sum over instances counts the traffic once.
	resp, err := http.Get(apiNode.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, family := range []string{"sightline_impressions_total", "sightline_feature_null_ratio"} {
		if strings.Contains(string(b), "\n"+family) {
			t.Errorf("API node exports %s; only the trainer should", family)
		}
	}
	if !strings.Contains(string(b), `sightline_node_info{role="api"`) {
		t.Errorf("API node's /metrics lacks sightline_node_info{role=\"api\"}")
	}

	// The trainer wrote the cluster's decision log from the decision
	// stream; the API node wrote none.
	if err := apiNode.stop(); err != nil {
		t.Errorf("stop the API node: %v", err)
	}
	if err := trainer.stop(); err != nil {
		t.Errorf("stop the trainer: %v", err)
	}
	checkClusterLog(t, trainer.cfg.DataDir, apiNode.cfg.DataDir, evs)
}

// checkClusterLog checks that the trainer's decision log holds the
// decision of every request in evs, served by api-1, and every event
// (at least once: a takeover logs again), and that the API node's data
// directory has no log.
func checkClusterLog(t *testing.T, trainerDir, apiDir string, evs []client.Event) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(apiDir, "decisions")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the API node wrote a decision log (%v): only the trainer should", err)
	}
	nodes := map[string]string{}
	err := decisionlog.ReadDecisions(t.Context(), filepath.Join(trainerDir, "decisions"), func(d *decisionlog.Decision) error {
		nodes[d.RequestID] = d.Node
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	logged := map[string]bool{}
	err = decisionlog.ReadEvents(t.Context(), filepath.Join(trainerDir, "decisions"), func(e *decisionlog.Event) error {
		logged[e.EventID] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if nodes[e.RequestID] != "api-1" {
			t.Errorf("decision %s in the trainer's log: node %q, want api-1", e.RequestID, nodes[e.RequestID])
		}
		if !logged[e.EventID] {
			t.Errorf("event %s missing from the trainer's log", e.EventID)
		}
	}
}

// poll calls cond until it reports true or d passes, then fails t with
// cond's last description.
func poll(t *testing.T, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var why string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, why = cond(); ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("not within %v: %s", d, why)
}
