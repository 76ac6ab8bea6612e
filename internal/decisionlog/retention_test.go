package decisionlog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// writeHours writes n decisions in each of the given hours with a writer
// that keeps everything, and returns the closed files, oldest first.
func writeHours(t *testing.T, dir string, n int, hours ...time.Time) []File {
	t.Helper()
	rc, err := newRecorder()
	if err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, Config{Dir: dir, Retention: -1})
	stop := start(t, w)
	for _, h := range hours {
		for i := range n {
			_, rec, err := rc.decide(fmt.Sprintf("%s-%d", h.Format("0102T15"), i), "alice", h.Add(time.Duration(i)*time.Second), false)
			if err != nil {
				t.Fatal(err)
			}
			w.Record(rec)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	files, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(hours) {
		t.Fatalf("wrote %d files, want %d", len(files), len(hours))
	}
	return files
}

// runOnce runs w over its directory once (start-up retention) and stops.
func runOnce(t *testing.T, w *Writer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// dirs lists the partition directories under dir.
func dirs(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	ents, _ := filepath.Glob(filepath.Join(dir, "date=*"))
	for _, e := range ents {
		hours, _ := filepath.Glob(filepath.Join(e, "hour=*"))
		if len(hours) == 0 {
			out = append(out, filepath.Base(e)+" (empty)")
		}
		for _, h := range hours {
			rel, _ := filepath.Rel(dir, h)
			out = append(out, rel)
		}
	}
	slices.Sort(out)
	return out
}

func TestRetentionByAge(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	files := writeHours(t, dir, 5,
		time.Date(2026, 3, 1, 5, 0, 0, 0, time.UTC),  // 9 days old: deleted, with its date
		time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC), // ended 7d 1h ago: deleted
		time.Date(2026, 3, 3, 11, 0, 0, 0, time.UTC), // ended exactly 7d ago: kept
		time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC),  // kept
	)
	var sizes []int64
	for _, f := range files {
		sizes = append(sizes, f.size(t))
	}
	reg := prometheus.NewRegistry()
	w := newWriter(t, Config{Dir: dir, Retention: 7 * 24 * time.Hour, Now: func() time.Time { return now }, Registerer: reg})
	runOnce(t, w)
	want := []string{"date=2026-03-03/hour=11", "date=2026-03-09/hour=00"}
	if diff := cmp.Diff(want, dirs(t, dir)); diff != "" {
		t.Errorf("partitions after retention (-want +got):\n%s", diff)
	}
	if got := value(w.met.deletedFiles.WithLabelValues(retainAge)); got != 2 {
		t.Errorf("retention_deleted_files{age} = %v, want 2", got)
	}
	wantBytes := sizes[0] + sizes[1]
	if got := value(w.met.deletedBytes.WithLabelValues(retainAge)); got != float64(wantBytes) {
		t.Errorf("retention_deleted_bytes{age} = %v, want %d", got, wantBytes)
	}
	if got, want := gaugeValue(t, reg, "sightline_decisionlog_disk_bytes"), sizes[2]+sizes[3]; got != float64(want) {
		t.Errorf("disk_bytes = %v, want %d", got, want)
	}
	if got := gaugeValue(t, reg, "sightline_decisionlog_disk_files"); got != 2 {
		t.Errorf("disk_files = %v, want 2", got)
	}
}

// size is the file's size on disk.
func (f File) size(t *testing.T) int64 {
	t.Helper()
	st, err := os.Stat(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func TestRetentionBySize(t *testing.T) {
	hours := []time.Time{
		time.Date(2026, 3, 1, 22, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC),
	}
	tests := []struct {
		name     string
		maxBytes func(s []int64) int64
		want     []string
		deleted  int
	}{
		{"under the bound", func(s []int64) int64 { return s[0] + s[1] + s[2] + s[3] }, []string{
			"date=2026-03-01/hour=22", "date=2026-03-01/hour=23", "date=2026-03-02/hour=00", "date=2026-03-02/hour=01"}, 0},
		{"one byte over", func(s []int64) int64 { return s[0] + s[1] + s[2] + s[3] - 1 }, []string{
			"date=2026-03-01/hour=23", "date=2026-03-02/hour=00", "date=2026-03-02/hour=01"}, 1},
		{"half", func(s []int64) int64 { return s[2] + s[3] }, []string{
			"date=2026-03-02/hour=00", "date=2026-03-02/hour=01"}, 2},
		{"less than the newest file", func([]int64) int64 { return 1 }, nil, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			files := writeHours(t, dir, 20, hours...)
			var sizes []int64
			for _, f := range files {
				sizes = append(sizes, f.size(t))
			}
			w := newWriter(t, Config{Dir: dir, Retention: -1, MaxBytes: tc.maxBytes(sizes)})
			runOnce(t, w)
			if diff := cmp.Diff(tc.want, dirs(t, dir)); diff != "" {
				t.Errorf("partitions after retention (-want +got):\n%s", diff)
			}
			if got := value(w.met.deletedFiles.WithLabelValues(retainSize)); got != float64(tc.deleted) {
				t.Errorf("retention_deleted_files{size} = %v, want %d", got, tc.deleted)
			}
		})
	}
}

// TestRollInterval checks that a file becomes visible RollInterval after
// its first row, not later and not earlier, and that retention runs while
// the writer runs.
func TestRollInterval(t *testing.T) {
	rc, err := newRecorder()
	if err != nil {
		t.Fatal(err)
	}
	// synctest's clock starts at 2000-01-01 00:00 UTC.
	t0 := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	var recs [][]byte
	for i := range 10 {
		_, rec, err := rc.decide(fmt.Sprint("r", i), "alice", t0.Add(time.Duration(i)*time.Second), false)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		w := newWriter(t, Config{Dir: dir, RollInterval: time.Minute, Retention: time.Hour})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		rows := func() []string {
			synctest.Wait()
			var out []string
			files, err := Files(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				out = append(out, fmt.Sprint(f.Rows))
			}
			return out
		}
		for _, r := range recs[:5] {
			w.Record(r)
		}
		time.Sleep(59 * time.Second)
		if got := rows(); len(got) != 0 {
			t.Errorf("files after 59s = %v, want none visible", got)
		}
		time.Sleep(time.Second)
		if diff := cmp.Diff([]string{"5"}, rows()); diff != "" {
			t.Errorf("files after 60s (-want +got):\n%s", diff)
		}
		// The interval counts from a file's first row, not its last.
		w.Record(recs[5])
		time.Sleep(30 * time.Second)
		for _, r := range recs[6:] {
			w.Record(r)
		}
		time.Sleep(29 * time.Second)
		if diff := cmp.Diff([]string{"5"}, rows()); diff != "" {
			t.Errorf("files 59s after the second file's first row (-want +got):\n%s", diff)
		}
		time.Sleep(time.Second)
		if diff := cmp.Diff([]string{"5", "5"}, rows()); diff != "" {
			t.Errorf("files 60s after the second file's first row (-want +got):\n%s", diff)
		}
		// The hour 00 partition ends at 01:00; one hour later retention,
		// run every minute, deletes it.
		time.Sleep(time.Hour + 58*time.Minute + 30*time.Second)
		synctest.Wait()
		if got := dirs(t, dir); len(got) != 1 {
			t.Errorf("partitions at 02:00:30 = %v, want the 00 one still (it ended an hour ago)", got)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := dirs(t, dir); len(got) != 0 {
			t.Errorf("partitions at 02:01:30 = %v, want none", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
