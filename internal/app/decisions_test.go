package app

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sightline/sightline/internal/engine"
)

// TestTrainerReadsBackDecisions: a trainer that becomes active after the
// API node served and its events were appended learns those events joined
// to the decisions they answer, read back from the decision stream, not
// from contexts rebuilt from the current features; the records of the
// stream it cannot use are counted. Its log names its lease's epoch.
func TestTrainerReadsBackDecisions(t *testing.T) {
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
		AlertInterval: -1,
	}
	ac := base
	ac.Role, ac.NodeName = RoleAPI, "api-1"
	apiNode := startNode(t, ac)
	w := smallWorld()
	if err := w.Load(t.Context(), apiNode.c); err != nil {
		t.Fatal(err)
	}
	evs := recommendAndEvents(t, apiNode.c, w, 0, 10)
	res, err := apiNode.c.SendEvents(t.Context(), evs)
	if err != nil || res.Accepted != len(evs) {
		t.Fatalf("SendEvents = %+v, %v; want all %d accepted", res, err, len(evs))
	}
	poll(t, 10*time.Second, func() (bool, string) {
		got := counter(t, apiNode.Node, "sightline_decision_stream_published_total", nil)
		return got >= 10, fmt.Sprintf("decisions published %v, want 10", got)
	})
	// Two records no trainer can use: an unknown version, and a known one
	// whose body is cut short after the request id.
	bad := [][]byte{{0xff, 1, 'x'}, {engine.RecordVersion, 2, 'r', 'x', 0xff}}
	pc, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.DefaultProduceTopic("decisions"))
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range bad {
		if err := pc.ProduceSync(t.Context(), &kgo.Record{Key: []byte("bad"), Value: rec}).FirstErr(); err != nil {
			t.Fatalf("produce a bad decision record: %v", err)
		}
	}
	pc.Close()
	// Past the trainer's join wait: only decisions read back can join.
	time.Sleep(joinWait)

	tc := base
	tc.Role, tc.NodeName = RoleTrainer, "trainer-1"
	logs := new(syncBuffer)
	tc.LogWriter = logs
	trainer := startNode(t, tc)
	poll(t, 20*time.Second, func() (bool, string) {
		s := getStats(t, trainer.base)
		return s.ModelUpdates >= uint64(len(evs)), fmt.Sprintf("trainer model_updates %d, want %d", s.ModelUpdates, len(evs))
	})
	joined := counter(t, trainer.Node, "sightline_learn_joins_total", map[string]string{"source": "decision"})
	rebuilt := counter(t, trainer.Node, "sightline_learn_joins_total", map[string]string{"source": "rebuilt"})
	if joined != float64(len(evs)) || rebuilt != 0 {
		t.Errorf("trainer joins: decision %v, rebuilt %v; want %d and 0 (the decisions made before it became active read back)", joined, rebuilt, len(evs))
	}
	if got := counter(t, trainer.Node, "sightline_decision_stream_rejected_total", nil); got != float64(len(bad)) {
		t.Errorf("sightline_decision_stream_rejected_total = %v, want %d", got, len(bad))
	}
	if epoch := leaseEpoch(t, logs.String()); epoch < 1 {
		t.Errorf("trainer active log: lease_epoch = %v, want the lease's fencing token (>= 1)", epoch)
	}
}

// leaseEpoch returns the lease_epoch of the "trainer active" log line in
// logs (JSON lines), -1 when there is none or it is not a number (the
// redactor replaced it).
func leaseEpoch(t *testing.T, logs string) float64 {
	t.Helper()
	for line := range strings.Lines(logs) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "trainer active" {
			continue
		}
		if v, ok := rec["lease_epoch"].(float64); ok {
			return v
		}
		t.Logf("trainer active log line: %s", line)
		return -1
	}
	t.Logf("no trainer active log line in:\n%s", logs)
	return -1
}

// counter returns the value of the counter name with labels in n's
// registry, 0 when it has no such series.
func counter(t testing.TB, n *Node, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := n.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}
