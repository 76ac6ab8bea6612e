package app

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sightline/sightline/internal/features"
	"github.com/sightline/sightline/internal/ingest"
)

// TestKafkaBus runs nodes on a 3-partition Kafka topic (an in-process
// kfake cluster) and one data dir: the model learns every acknowledged
// event; a clean restart resumes each partition where the snapshot left
// it; and a restart from an older snapshot, as after a crash, applies from
// the topic exactly the events the snapshot lacks.
func TestKafkaBus(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(cluster.Close)
	dir := t.TempDir()
	cfg := Config{DataDir: dir, Bus: BusKafka, KafkaBrokers: cluster.ListenAddrs(), KafkaTopic: "events", KafkaPartitions: 3}
	w := smallWorld()

	send := func(tn *testNode, k int) int {
		t.Helper()
		evs := recommendAndEvents(t, tn.c, w, k, 10)
		res, err := tn.c.SendEvents(t.Context(), evs)
		if err != nil || res.Accepted != len(evs) || res.Duplicates != 0 {
			t.Fatalf("SendEvents = %+v, %v; want all %d accepted", res, err, len(evs))
		}
		return len(evs)
	}
	applied := func(tn *testNode, when string, want int) Stats {
		t.Helper()
		if err := tn.WaitApplied(t.Context()); err != nil {
			t.Fatal(err)
		}
		s := getStats(t, tn.base)
		if s.EventsLogged != uint64(want) || s.ModelUpdates != uint64(want) {
			t.Errorf("%s: %d events in the topic, %d model updates; want %d of each: every acknowledged event applied exactly once (restore %+v)",
				when, s.EventsLogged, s.ModelUpdates, want, s.Restore)
		}
		return s
	}

	n1 := startNode(t, cfg)
	if err := w.Load(t.Context(), n1.c); err != nil {
		t.Fatal(err)
	}
	n1.Engine().Index().Refresh()
	acked := send(n1, 0)
	applied(n1, "first batch", acked)
	if err := n1.Snapshot(t.Context()); err != nil {
		t.Fatal(err)
	}
	early := acked
	older := copySnapshots(t, dir)
	for k := 1; k < 4; k++ {
		acked += send(n1, k)
	}
	applied(n1, "before restart", acked)
	if err := n1.stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}

	n2 := startNode(t, cfg)
	s := applied(n2, "after a clean restart", acked)
	if s.Restore.ModelSnapshot != "loaded" || len(s.Restore.ModelOffsets) != 3 || s.Restore.ModelOffset != uint64(acked) {
		t.Errorf("restore = %+v; want the model loaded at offsets on 3 partitions summing to %d", s.Restore, acked)
	}
	n2.Engine().Index().Refresh()
	acked += send(n2, 4)
	applied(n2, "events after the restart", acked)
	if err := n2.stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}

	// As after a crash right after the first snapshot: the state on disk is
	// older than the topic.
	restoreSnapshots(t, dir, older)
	n3 := startNode(t, cfg)
	s = applied(n3, "after restoring an older snapshot", acked)
	if s.Restore.ModelOffset != uint64(early) || s.Users != 2000 || s.Items != 500 {
		t.Errorf("restore = %+v, users %d, items %d; want the model at %d and 2000 users, 500 items", s.Restore, s.Users, s.Items, early)
	}
}

// copySnapshots returns the snapshot files of dir by name.
func copySnapshots(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, name := range []string{"model.snap", "features.snap", "features.snap.offsets", "features.snap.journal"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	return files
}

func restoreSnapshots(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKafkaRedis runs the full scale-out shape, Kafka and Redis: a click
// produced to the topic reaches the user's activity in Redis, and a node
// stopped leaves the feature updater's position committed in Kafka (it has no
// snapshot) and the model's uncommitted (its snapshot has it).
func TestKafkaRedis(t *testing.T) {
	addr, prefix := testRedis(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(cluster.Close)
	cfg := Config{FeatureStore: StoreRedis, RedisAddr: addr, RedisPrefix: prefix, Bus: BusKafka, KafkaBrokers: cluster.ListenAddrs(), KafkaPartitions: 3}
	n1 := startNode(t, cfg)
	w := smallWorld()
	if err := w.Load(t.Context(), n1.c); err != nil {
		t.Fatal(err)
	}
	n1.Engine().Index().Refresh()
	evs := recommendAndEvents(t, n1.c, w, 0, 10)
	if res, err := n1.c.SendEvents(t.Context(), evs); err != nil || res.Accepted != len(evs) {
		t.Fatalf("SendEvents = %+v, %v; want all %d accepted", res, err, len(evs))
	}
	if err := n1.WaitApplied(t.Context()); err != nil {
		t.Fatal(err)
	}
	store, err := features.NewRedis(features.RedisConfig{Addr: addr, KeyPrefix: prefix, ReadTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	click := evs[len(evs)-1]
	if act, err := store.Activity(t.Context(), click.UserID); err != nil || !slices.Contains(act.Clicked, click.ItemID) {
		t.Fatalf("Redis Activity(%s) = %+v, %v; want the clicked item %s", click.UserID, act, err, click.ItemID)
	}
	if err := n1.stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	k, err := ingest.OpenKafka(t.Context(), ingest.KafkaConfig{Brokers: cfg.KafkaBrokers, Topic: cfg.KafkaTopic})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	for _, c := range []struct {
		name string
		want uint64
	}{
		{consumerFeatures, uint64(len(evs))}, // Redis: the bus keeps the position
		{consumerModel, 0},                   // the snapshot keeps it
	} {
		if got, _, err := k.Committed(t.Context(), c.name); err != nil || got != c.want {
			t.Errorf("committed offsets of %s after stop = %d, %v; want %d", c.name, got, err, c.want)
		}
	}
}
