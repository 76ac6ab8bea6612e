package evaluate

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sightline/sightline/internal/evaluate/evaluatetest"
)

// TestDirSourceMatchesMemory: a log written as Parquet and read back by
// DirSource evaluates exactly as the same rows held in memory.
func TestDirSourceMatchesMemory(t *testing.T) {
	w := newWorld(6, worldConfig{items: 30, categories: 6, slots: 4, noise: 0.3, positionDecay: 0.9})
	w.pool = 12
	ds, es := w.log(6, 3000, logging{explore: 0.3, top: 6})
	dir := t.TempDir()
	if err := evaluatetest.WriteLog(dir, ds, es); err != nil {
		t.Fatalf("WriteLog: %v", err)
	}
	specs := []Spec{{Kind: KindLogged}, {Kind: KindPopularity}, {Kind: KindFTRL}}
	cfg := Config{Bootstrap: 30, Source: "x"}
	fromDir, err := Run(context.Background(), DirSource{Dir: dir}, specs, cfg)
	if err != nil {
		t.Fatalf("Run(DirSource): %v", err)
	}
	fromMem, err := Run(context.Background(), &MemorySource{DecisionRows: ds, EventRows: es}, specs, cfg)
	if err != nil {
		t.Fatalf("Run(MemorySource): %v", err)
	}
	fromMem.StoreRatio = 1
	ignore := cmpopts.IgnoreFields(Report{}, "Created", "ElapsedSeconds")
	if diff := cmp.Diff(fromMem, fromDir, ignore, cmpopts.EquateApproxTime(0)); diff != "" {
		t.Errorf("Run over Parquet differs from Run over memory (-memory +parquet):\n%s", diff)
	}
	if n, err := (DirSource{Dir: dir}).CountDecisions(context.Background()); err != nil || n != int64(len(ds)) {
		t.Errorf("CountDecisions = %d, %v; want %d", n, err, len(ds))
	}
	if fromDir.Decisions != int64(len(ds)) || fromDir.Policies[2].Diagnostics.Slots == 0 {
		t.Errorf("Run(DirSource) evaluated %d decisions, %d ftrl slots; want %d and some", fromDir.Decisions, fromDir.Policies[2].Diagnostics.Slots, len(ds))
	}
}
