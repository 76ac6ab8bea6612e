package decisionlog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/parquet-go/parquet-go"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
)

// reverseScorer ranks the items in the reverse of testScorer's order: a
// shadow challenger that disagrees with the champion.
type reverseScorer struct{}

func (reverseScorer) Score(_ context.Context, _ *model.Context, items []event.Item, out []float64) error {
	for i := range items {
		out[i] = 0.01 + 0.9*float64(i)/float64(len(items))
	}
	return nil
}
func (reverseScorer) Version() string  { return "shadow-v2" }
func (reverseScorer) Calibrated() bool { return true }

// TestShadowColumns writes decisions that a shadow challenger scored
// beside ones it did not (the popularity arm's) and reads the shadow
// columns back: the challenger's version, its would-be items with their
// scores, its error and duration; empty for the others.
func TestShadowColumns(t *testing.T) {
	var rec []byte
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	e, err := engine.New(testStore{}, engine.Config{
		Split:             model.Split{{Name: "ftrl", Weight: 1}, {Name: "popularity", Weight: 1}},
		Scorers:           map[string]engine.Scorer{"ftrl": testScorer{}},
		ChallengerVariant: "challenger",
		Explore:           0.2, ExploreTop: 4, PoolSize: 5,
		RequiredFeatures: []string{},
		FeatureBudget:    time.Hour, ModelBudget: time.Hour,
		Now:      func() time.Time { return now },
		OnRecord: func(_ string, r []byte) { rec = append(rec[:0], r...) },
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		e.Index().PutItem(event.Item{ID: fmt.Sprintf("i%03d", i), Category: fmt.Sprintf("c%d", i%4), Available: true})
	}
	e.Index().Refresh()
	if err := e.SetChallenger(&engine.Challenger{Base: "ftrl", Scorer: reverseScorer{}, Shadow: true}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	w := newWriter(t, Config{Dir: dir, Node: "n1"})
	stop := start(t, w)
	var want []Decision
	shadowed := 0
	for i, user := range []string{"alice", "newbie", "stranger", "bob", "carol", "dave", "erin", "frank"} {
		now = now.Add(time.Second)
		d, err := e.Recommend(context.Background(), engine.Request{RequestID: fmt.Sprintf("r%d", i), UserID: user, Count: 4, Channel: "web"})
		if err != nil {
			t.Fatal(err)
		}
		if d.Shadow != nil {
			shadowed++
		}
		if !w.Record(append([]byte(nil), rec...)) {
			t.Fatalf("Record(%d) = false", i)
		}
		want = append(want, wantRow(d, "n1", testActivity[user].RecentCategories))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if shadowed == 0 || shadowed == len(want) {
		t.Fatalf("%d of %d decisions shadowed, want some and not all (the popularity arm has no challenger)", shadowed, len(want))
	}
	got := readDecisions(t, dir)
	if diff := cmp.Diff(want, got, sortDecisions, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("decisions read back (-want +got):\n%s", diff)
	}
	files, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	if since, err := FilesSince(dir, now.Add(-time.Hour)); err != nil || len(since) != len(files) {
		t.Errorf("FilesSince(an hour before) = %d files, %v; want the %d of Files", len(since), err, len(files))
	}
	if later, err := FilesSince(dir, now.Add(time.Hour)); err != nil || len(later) != 0 {
		t.Errorf("FilesSince(an hour after) = %d files, %v; want none", len(later), err)
	}
	var one []Decision
	for _, f := range files {
		if err := ReadFile(context.Background(), f, func(d *Decision) error { one = append(one, *d); return nil }, nil); err != nil {
			t.Fatalf("ReadFile(%s): %v", f.Path, err)
		}
	}
	if diff := cmp.Diff(got, one, sortDecisions, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("ReadFile file by file differs from ReadDecisions (-dir +files):\n%s", diff)
	}
	for _, g := range got {
		if (g.Variant == "ftrl") != (g.ShadowModelVersion == "shadow-v2") || (g.ShadowModelVersion != "") != (len(g.ShadowItems) == 4) {
			t.Errorf("decision %s of %s: shadow %q with %d items, want shadow-v2 with 4 items exactly for ftrl", g.RequestID, g.Variant, g.ShadowModelVersion, len(g.ShadowItems))
		}
	}
}

// decisionV1 is a row of schema version 1: Decision without the shadow
// columns.
type decisionV1 struct {
	RequestID    string    `parquet:"request_id"`
	Time         time.Time `parquet:"time,timestamp(microsecond)"`
	Variant      string    `parquet:"variant,dict"`
	Items        []Slot    `parquet:"items,list"`
	TraceSampled bool      `parquet:"trace_sampled"`
}

// TestReadSchemaV1 reads a file of schema version 1 (no shadow columns):
// its rows come back with the shadow columns empty; a file of a version
// newer than the reader's is refused.
func TestReadSchemaV1(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	rows := []decisionV1{
		{RequestID: "a", Time: at, Variant: "ftrl", Items: []Slot{{ItemID: "i1", Category: "c", Score: 0.2, Reason: "model", Propensity: 0.9}}},
		{RequestID: "b", Time: at.Add(time.Second), Variant: "popularity", TraceSampled: true},
	}
	write := func(name, schema string) {
		t.Helper()
		part := filepath.Join(dir, partitionDir(at))
		if err := os.MkdirAll(part, 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(part, name))
		if err != nil {
			t.Fatal(err)
		}
		pw := parquet.NewGenericWriter[decisionV1](f, parquet.KeyValueMetadata(MetaSchema, schema))
		if _, err := pw.Write(rows); err != nil {
			t.Fatal(err)
		}
		if err := pw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	write("decisions-old-1.parquet", "decisions/1")
	got := readDecisions(t, dir)
	want := []Decision{
		{RequestID: "a", Time: at, Variant: "ftrl", Items: rows[0].Items},
		{RequestID: "b", Time: at.Add(time.Second), Variant: "popularity", TraceSampled: true},
	}
	if diff := cmp.Diff(want, got, sortDecisions, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("version 1 rows read back (-want +got):\n%s", diff)
	}
	write("decisions-new-2.parquet", fmt.Sprintf("decisions/%d", SchemaVersion+1))
	if err := ReadDecisions(context.Background(), dir, func(*Decision) error { return nil }); err == nil {
		t.Errorf("ReadDecisions of a version %d file: no error, want ErrUnknownSchema", SchemaVersion+1)
	}
}
