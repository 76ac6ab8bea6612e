package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/sim"
)

// testNode is a node serving on a loopback port for one test.
type testNode struct {
	*Node
	base string
	c    *client.Client
	stop func() error
}

func startNode(t testing.TB, cfg Config) *testNode {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.LogWriter == nil {
		cfg.LogWriter = io.Discard
	}
	if cfg.SnapshotInterval == 0 {
		cfg.SnapshotInterval = -1
	}
	n, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := n.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx, ln) }()
	tn := &testNode{Node: n, base: "http://" + n.Addr()}
	var stopped bool
	var stopErr error
	tn.stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			stopErr = <-done
		}
		return stopErr
	}
	// Only stops a node a test left running: the tests that care check
	// stop's error themselves.
	t.Cleanup(func() { _ = tn.stop() })
	tn.c, err = client.New(tn.base)
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, tn.base)
	return tn
}

func waitReady(t testing.TB, base string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("node at %s not ready", base)
}

func getStats(t testing.TB, base string) Stats {
	t.Helper()
	resp, err := http.Get(base + "/v1/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s Stats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("decode stats: %v", err)
	}
	return s
}

// waitApplied waits until the model consumer has applied every logged event.
func waitApplied(t testing.TB, base string) Stats {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := getStats(t, base)
		if s.EventsApplied >= s.EventsLogged {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("events applied %d of %d", s.EventsApplied, s.EventsLogged)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// smallWorld is a world small enough for tests.
func smallWorld() *sim.World {
	return sim.NewWorld(sim.WorldConfig{Seed: 7, Users: 2000, Items: 500})
}

// eventBatch builds n events for requests answered by the node: an
// impression per item and a click on the first.
func recommendAndEvents(t testing.TB, c *client.Client, w *sim.World, k, n int) []client.Event {
	t.Helper()
	var evs []client.Event
	for i := range n {
		u := w.User((k*n + i) % len(w.Users()))
		rec, err := c.Recommend(context.Background(), client.RecommendRequest{UserID: u.ID, Count: 5, Context: client.Context{Channel: "web"}})
		if err != nil {
			t.Fatalf("Recommend: %v", err)
		}
		for j, it := range rec.Items {
			evs = append(evs, client.Event{EventID: fmt.Sprintf("b%d-r%d-i%d", k, i, j), Type: client.TypeImpression, UserID: u.ID, ItemID: it.ItemID, RequestID: rec.RequestID, Channel: "web", Timestamp: time.Now()})
		}
		if len(rec.Items) == 0 {
			t.Fatalf("Recommend(%s) returned no items", u.ID)
		}
		{
			evs = append(evs, client.Event{EventID: fmt.Sprintf("b%d-r%d-c", k, i), Type: client.TypeClick, UserID: u.ID, ItemID: rec.Items[0].ItemID, RequestID: rec.RequestID, Channel: "web", Timestamp: time.Now()})
		}
	}
	return evs
}

func TestRestoreAfterCleanShutdownAndCorruptSnapshot(t *testing.T) {
	dir := t.TempDir()
	w := smallWorld()
	n1 := startNode(t, Config{DataDir: dir})
	if err := w.Load(t.Context(), n1.c); err != nil {
		t.Fatal(err)
	}
	n1.Engine().Index().Refresh()
	var sent int
	for k := range 3 {
		evs := recommendAndEvents(t, n1.c, w, k, 20)
		res, err := n1.c.SendEvents(t.Context(), evs)
		if err != nil || res.Accepted != len(evs) {
			t.Fatalf("SendEvents = %+v, %v; want all %d accepted", res, err, len(evs))
		}
		sent += len(evs)
	}
	before := waitApplied(t, n1.base)
	if before.ModelUpdates != uint64(sent) {
		t.Fatalf("model updates = %d, want %d (one per impression and click)", before.ModelUpdates, sent)
	}
	if err := n1.stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}

	// A clean restart restores the snapshot and replays nothing twice.
	n2 := startNode(t, Config{DataDir: dir})
	s := waitApplied(t, n2.base)
	if s.Restore.ModelSnapshot != "loaded" || s.ModelUpdates != uint64(sent) || s.Users != 2000 || s.Items != 500 {
		t.Errorf("after restart: snapshot %q, updates %d, users %d, items %d; want loaded, %d, 2000, 500",
			s.Restore.ModelSnapshot, s.ModelUpdates, s.Users, s.Items, sent)
	}
	// The same events again are duplicates: accepted, not applied.
	evs := recommendAndEvents(t, n2.c, w, 0, 20)
	res, err := n2.c.SendEvents(t.Context(), evs)
	if err != nil || res.Duplicates != len(evs) {
		t.Fatalf("resend = %+v, %v; want all %d duplicates", res, err, len(evs))
	}
	if s := waitApplied(t, n2.base); s.ModelUpdates != uint64(sent) {
		t.Errorf("after duplicates: updates %d, want %d", s.ModelUpdates, sent)
	}
	if err := n2.stop(); err != nil {
		t.Fatal(err)
	}

	// A corrupted snapshot is detected, reported and not loaded; the log
	// rebuilds the model.
	path := filepath.Join(dir, "model.snap")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	n3 := startNode(t, Config{DataDir: dir})
	s = waitApplied(t, n3.base)
	if s.Restore.ModelSnapshot != "corrupt" || len(s.Restore.CorruptSnapshots) != 1 {
		t.Errorf("restore = %+v, want the model snapshot reported corrupt", s.Restore)
	}
	if s.ModelUpdates != uint64(sent) {
		t.Errorf("rebuilt from the log: updates %d, want %d", s.ModelUpdates, sent)
	}
	if _, err := os.Stat(path); err == nil {
		t.Errorf("corrupt snapshot still at %s; want it moved aside", path)
	}
	matches, _ := filepath.Glob(path + ".corrupt-*")
	if len(matches) != 1 {
		t.Errorf("quarantined snapshots = %v, want one", matches)
	}
}

func TestDecisionExplainsWhatTheModelSaw(t *testing.T) {
	n := startNode(t, Config{})
	w := smallWorld()
	if err := w.Load(t.Context(), n.c); err != nil {
		t.Fatal(err)
	}
	// A user whose ETL lost the age bucket: missing_features, nulls shown.
	if err := n.c.PutUser(t.Context(), client.User{UserID: "etl-victim", Segment: "new", Region: "eu", Device: "ios"}); err != nil {
		t.Fatal(err)
	}
	n.Engine().Index().Refresh()
	rec, err := n.c.Recommend(t.Context(), client.RecommendRequest{UserID: "etl-victim", Count: 5})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Fallback == nil || rec.Fallback.Reason != "missing_features" || len(rec.Items) != 5 {
		t.Fatalf("Recommend = %+v, want a missing_features fallback with 5 items", rec)
	}
	raw, err := n.c.Decision(t.Context(), rec.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Features map[string]*string `json:"features"`
		Stages   []struct{ Stage string }
		Fallback string `json:"fallback_reason"`
		UserHash string `json:"user_hash"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	if v, ok := d.Features["user_age_bucket"]; !ok || v != nil {
		t.Errorf("decision features = %v, want user_age_bucket present and null", d.Features)
	}
	if d.Fallback != "missing_features" || len(d.Stages) == 0 || strings.Contains(string(raw), "etl-victim") {
		t.Errorf("decision = %s; want the reason, stage timings and no raw user id", raw)
	}
	if !strings.Contains(string(raw), `"user_age_bucket":null`) {
		t.Errorf("decision JSON does not show the null: %s", raw)
	}
}

// TestExperimentsRoute: GET /v1/experiments reports each variant's
// assignments and CTR, and the treatment against the popularity control.
func TestExperimentsRoute(t *testing.T) {
	n := startNode(t, Config{})
	w := smallWorld()
	if err := w.Load(t.Context(), n.c); err != nil {
		t.Fatal(err)
	}
	n.Engine().Index().Refresh()
	evs := recommendAndEvents(t, n.c, w, 0, 40)
	if _, err := n.c.SendEvents(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitApplied(t.Context()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(n.base + "/v1/experiments")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Control  string `json:"control"`
		Variants []struct {
			Name        string   `json:"name"`
			Assignments int64    `json:"assignments"`
			PValue      *float64 `json:"p_value"`
			CTR         struct {
				Trials int64 `json:"trials"`
			} `json:"ctr"`
		} `json:"variants"`
		SRM struct {
			P float64 `json:"p_value"`
		} `json:"srm"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	var assigned, impressions int64
	for _, v := range r.Variants {
		assigned += v.Assignments
		impressions += v.CTR.Trials
		if (v.Name == "popularity") == (v.PValue != nil) {
			t.Errorf("variant %s: p-value %v; want one on the treatment only", v.Name, v.PValue)
		}
	}
	if r.Control != "popularity" || len(r.Variants) != 2 || assigned < 40 || impressions == 0 || r.SRM.P <= 0 {
		t.Errorf("experiments = %+v; want both variants, ≥ 40 decisions, impressions and an SRM p-value", r)
	}
}

// TestSampleRatioMismatchAlert: when one variant's decisions go missing,
// the in-process SampleRatioMismatch alert fires after its 10 minutes.
func TestSampleRatioMismatchAlert(t *testing.T) {
	n := startNode(t, Config{AlertInterval: -1})
	for i := range 20_000 {
		if i%10 != 0 { // the ftrl arm loses a tenth of its users
			n.experiments.ObserveDecision("ftrl")
		}
		n.experiments.ObserveDecision("popularity")
	}
	now := time.Now()
	state := func() string {
		for _, a := range n.Alerts() {
			if a.Name == "SampleRatioMismatch" {
				return a.State
			}
		}
		return ""
	}
	n.EvaluateAlerts(t.Context(), now)
	if s := state(); s != "pending" {
		t.Fatalf("after one evaluation: state %q, want pending", s)
	}
	n.EvaluateAlerts(t.Context(), now.Add(11*time.Minute))
	if s := state(); s != "firing" {
		t.Errorf("after 11 minutes: state %q, want firing", s)
	}
}
