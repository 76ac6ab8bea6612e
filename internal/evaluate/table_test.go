package evaluate

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestWriteTableGolden renders a fixed run: a trustworthy target, one that
// is not, and the logged policy.
func TestWriteTableGolden(t *testing.T) {
	w := newWorld(4, worldConfig{items: 20, categories: 4, slots: 3, noise: 0.3, positionDecay: 0.8})
	ds, es := w.log(4, 2000, logging{explore: 0.5})
	now := time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC)
	specs := []Spec{{Kind: KindLogged}, {Kind: KindPopularity}, {Kind: KindPopularity, Explore: 0.1}}
	r := run(t, ds, es, specs, Config{Source: "data/decisions", Bootstrap: 50, Seed: 1, Now: func() time.Time { return now }, Thresholds: Thresholds{MinESS: 200}})
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatalf("WriteTable: %v", err)
	}
	golden := filepath.Join("testdata", "table.golden")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("WriteTable differs from %s (run with -update if intended):\n%s", golden, got)
	}
	if !strings.Contains(b.String(), "NOT TRUSTWORTHY") {
		t.Errorf("WriteTable shows no untrustworthy policy; the fixture's thresholds should make one")
	}
}
