package app

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sightline/sightline/internal/model"
)

// TestFamilyVariant serves the ftrl-ucb family beside ftrl: both variants
// answer, the family's model learns every event, and its snapshot is saved
// with the champion's and restored.
func TestFamilyVariant(t *testing.T) {
	dir := t.TempDir()
	w := smallWorld()
	n1 := startNode(t, Config{DataDir: dir, Split: "ftrl=50,ftrl-ucb=50"})
	if err := w.Load(t.Context(), n1.c); err != nil {
		t.Fatal(err)
	}
	n1.Engine().Index().Refresh()
	var sent int
	variants := map[string]int{}
	for k := range 3 {
		evs := recommendAndEvents(t, n1.c, w, k, 20)
		res, err := n1.c.SendEvents(t.Context(), evs)
		if err != nil || res.Accepted != len(evs) {
			t.Fatalf("SendEvents = %+v, %v; want all %d accepted", res, err, len(evs))
		}
		sent += len(evs)
		n1.Engine().Index().Refresh()
	}
	for i := range 40 {
		variants[n1.Engine().Variant(w.User(i).ID)]++
	}
	if variants["ftrl"] == 0 || variants["ftrl-ucb"] == 0 {
		t.Fatalf("variants of 40 users = %v, want both ftrl and ftrl-ucb", variants)
	}
	s := waitApplied(t, n1.base)
	ev, ok := s.VariantModels["ftrl-ucb"]
	if !ok || ev.Count == 0 {
		t.Fatalf("stats variant_models = %+v, want ftrl-ucb's evaluation with examples", s.VariantModels)
	}
	if err := n1.Snapshot(t.Context()); err != nil {
		t.Fatalf("Snapshot() = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "model-ftrl-ucb.snap")); err != nil {
		t.Fatalf("family snapshot: %v", err)
	}
	updates := n1.families.scorers[0].Model().Updates()
	if updates != uint64(sent) {
		t.Errorf("ftrl-ucb model updates = %d, want %d (every event)", updates, sent)
	}
	if err := n1.stop(); err != nil {
		t.Fatal(err)
	}

	n2 := startNode(t, Config{DataDir: dir, Split: "ftrl=50,ftrl-ucb=50"})
	waitApplied(t, n2.base)
	m := n2.families.scorers[0].Model()
	if got := m.Updates(); got != updates {
		t.Errorf("restored ftrl-ucb updates = %d, want %d", got, updates)
	}
	if v := m.Version(); v[:len("ftrl-ucb-v1.")] != "ftrl-ucb-v1." {
		t.Errorf("restored ftrl-ucb version = %q, want ftrl-ucb-v1.*", v)
	}
}

func TestFamilyVariantNeedsRoleAll(t *testing.T) {
	n := &Node{cfg: Config{Role: RoleAPI}}
	split, err := model.ParseSplit("ftrl=1,ftrl-ucb=1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.buildFamilies(split); err == nil {
		t.Errorf("buildFamilies(ftrl-ucb) on an API node = nil error, want one")
	}
}
