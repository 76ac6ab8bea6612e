package ingest

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sightline/sightline/internal/event"
)

func openLog(t *testing.T, dir string, cfg Config) *Log {
	t.Helper()
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatalf("Open(%q) error = %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mustAppend(t *testing.T, l *Log, evs []event.Event) AppendResult {
	t.Helper()
	res, err := l.Append(context.Background(), evs)
	if err != nil {
		t.Fatalf("Append(%d events) error = %v", len(evs), err)
	}
	return res
}

// readAll reads every retained record.
func readAll(t *testing.T, l *Log) []Record {
	t.Helper()
	var all []Record
	for off := l.Oldest(); off < l.Next(); {
		recs, err := l.Read(off, 100, nil)
		if err != nil {
			t.Fatalf("Read(%d) error = %v", off, err)
		}
		if len(recs) == 0 {
			break
		}
		all = append(all, recs...)
		off = recs[len(recs)-1].Offset + 1
	}
	return all
}

func eventsOf(recs []Record) []event.Event {
	evs := make([]event.Event, len(recs))
	for i, r := range recs {
		evs[i] = r.Event
	}
	return evs
}

func TestAppendReadRoundTrip(t *testing.T) {
	now := time.Date(2026, 4, 1, 8, 0, 0, 0, time.UTC)
	l := openLog(t, t.TempDir(), Config{Now: func() time.Time { return now }})
	evs := testEvents("rt", 10)
	res := mustAppend(t, l, evs[:4])
	if want := (AppendResult{Appended: 4, First: 0, Last: 3}); res != want {
		t.Errorf("Append(4 events) = %+v, want %+v", res, want)
	}
	res = mustAppend(t, l, evs[4:])
	if want := (AppendResult{Appended: 6, First: 4, Last: 9}); res != want {
		t.Errorf("Append(6 events) = %+v, want %+v", res, want)
	}
	if got := l.Next(); got != 10 {
		t.Errorf("Next() = %d, want 10", got)
	}
	recs, err := l.Read(0, 100, nil)
	if err != nil {
		t.Fatalf("Read(0) error = %v", err)
	}
	if diff := cmp.Diff(evs, eventsOf(recs)); diff != "" {
		t.Errorf("Read(0) events mismatch (-want +got):\n%s", diff)
	}
	for i, r := range recs {
		if r.Offset != uint64(i) || !r.AppendTime.Equal(now) {
			t.Errorf("Read(0)[%d] = offset %d time %v, want %d %v", i, r.Offset, r.AppendTime, i, now)
		}
	}
	recs, err = l.Read(7, 2, recs)
	if err != nil || len(recs) != 2 || recs[0].Offset != 7 || recs[1].Offset != 8 {
		t.Errorf("Read(7, 2) = %d records (first %v), %v, want offsets 7, 8", len(recs), recs, err)
	}
	recs, err = l.Read(10, 5, nil)
	if err != nil || len(recs) != 0 {
		t.Errorf("Read(10) = %d records, %v, want 0, nil", len(recs), err)
	}
}

func TestSegmentRollAndReopen(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SegmentBytes: 4096}
	l := openLog(t, dir, cfg)
	var want []event.Event
	for i := range 20 {
		evs := testEvents("roll"+string(rune('a'+i)), 10)
		mustAppend(t, l, evs)
		want = append(want, evs...)
	}
	bases, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(bases) < 3 {
		t.Fatalf("segments = %v, want at least 3 with SegmentBytes 4096", bases)
	}
	for _, b := range bases {
		fi, err := os.Stat(filepath.Join(dir, segmentName(b)))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > cfg.SegmentBytes {
			t.Errorf("segment %d size = %d, want <= %d", b, fi.Size(), cfg.SegmentBytes)
		}
	}
	if diff := cmp.Diff(want, eventsOf(readAll(t, l))); diff != "" {
		t.Errorf("read across segments mismatch (-want +got):\n%s", diff)
	}
	// Read starting in the middle of a later segment.
	recs, err := l.Read(137, 3, nil)
	if err != nil || len(recs) != 3 || recs[0].Offset != 137 || recs[0].Event.ID != want[137].ID {
		t.Errorf("Read(137, 3) = %v, %v, want offsets 137..139", recs, err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close() error = %v", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close() error = %v, want nil", err)
	}
	if _, err := l.Append(context.Background(), testEvents("late", 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close error = %v, want %v", err, ErrClosed)
	}
	if _, err := l.Read(0, 1, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close error = %v, want %v", err, ErrClosed)
	}

	l2 := openLog(t, dir, cfg)
	if got := l2.Next(); got != 200 {
		t.Errorf("Next() after reopen = %d, want 200", got)
	}
	res := mustAppend(t, l2, testEvents("after", 5))
	if want := (AppendResult{Appended: 5, First: 200, Last: 204}); res != want {
		t.Errorf("Append after reopen = %+v, want %+v", res, want)
	}
	want = append(want, testEvents("after", 5)...)
	if diff := cmp.Diff(want, eventsOf(readAll(t, l2))); diff != "" {
		t.Errorf("read after reopen mismatch (-want +got):\n%s", diff)
	}
}

func TestOpenLocksDirectory(t *testing.T) {
	dir := t.TempDir()
	openLog(t, dir, Config{})
	if l, err := Open(dir, Config{}); !errors.Is(err, ErrLocked) {
		if l != nil {
			l.Close()
		}
		t.Errorf("second Open(%q) error = %v, want %v", dir, err, ErrLocked)
	}
}

func TestAppendDeduplicates(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewPedanticRegistry()
	l := openLog(t, dir, Config{Registerer: reg})
	evs := testEvents("d", 5)
	batch := append(append([]event.Event{}, evs...), evs[1], evs[3], evs[1])
	res := mustAppend(t, l, batch)
	if want := (AppendResult{Appended: 5, Duplicates: 3, First: 0, Last: 4}); res != want {
		t.Errorf("Append(batch with internal duplicates) = %+v, want %+v", res, want)
	}
	res = mustAppend(t, l, append(testEvents("e", 2), evs[0]))
	if want := (AppendResult{Appended: 2, Duplicates: 1, First: 5, Last: 6}); res != want {
		t.Errorf("Append(retry of one event) = %+v, want %+v", res, want)
	}
	if got := counterValue(t, l.m.duplicates); got != 4 {
		t.Errorf("sightline_ingest_duplicates_total = %v, want 4", got)
	}
	if got := counterValue(t, l.m.appended); got != 7 {
		t.Errorf("sightline_ingest_appended_total = %v, want 7", got)
	}
	if got := histCount(t, reg, "sightline_ingest_fsync_duration_seconds"); got < 1 {
		t.Errorf("sightline_ingest_fsync_duration_seconds count = %d, want >= 1 with FsyncAlways", got)
	}
	l.Close()

	// The window is rebuilt on Open.
	l2 := openLog(t, dir, Config{})
	res = mustAppend(t, l2, append(testEvents("d", 6), testEvents("e", 2)...))
	if want := (AppendResult{Appended: 1, Duplicates: 7, First: 7, Last: 7}); res != want {
		t.Errorf("Append(after reopen) = %+v, want %+v", res, want)
	}
	if got := len(readAll(t, l2)); got != 8 {
		t.Errorf("records after reopen = %d, want 8", got)
	}
}

func TestDedupeWindowEvicts(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{DedupeWindow: 3})
	mustAppend(t, l, testEvents("w", 5)) // window now holds w-2, w-3, w-4
	res := mustAppend(t, l, testEvents("w", 5))
	if want := (AppendResult{Appended: 2, Duplicates: 3, First: 5, Last: 6}); res != want {
		t.Errorf("Append(beyond window) = %+v, want %+v", res, want)
	}
}

func TestConcurrentAppendsGroupCommit(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{SegmentBytes: 64 << 10})
	const callers, batches, size = 8, 20, 50
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for b := range batches {
				evs := testEvents("c"+string(rune('A'+c))+"-"+string(rune('a'+b)), size)
				res, err := l.Append(context.Background(), evs)
				if err != nil || res.Appended != size || res.Last-res.First != size-1 {
					t.Errorf("Append() = %+v, %v, want %d contiguous events", res, err, size)
				}
			}
		})
	}
	wg.Wait()
	all := readAll(t, l)
	if len(all) != callers*batches*size {
		t.Fatalf("records = %d, want %d", len(all), callers*batches*size)
	}
	seen := make(map[string]bool)
	for i, r := range all {
		if r.Offset != uint64(i) {
			t.Fatalf("record %d offset = %d, want contiguous", i, r.Offset)
		}
		if seen[r.Event.ID] {
			t.Fatalf("event %q appears twice", r.Event.ID)
		}
		seen[r.Event.ID] = true
	}
}

func TestAppendRejectsOversizedEvent(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{})
	ev := testEvents("big", 1)
	ev[0].TraceState = strings.Repeat("x", MaxRecordBytes)
	if _, err := l.Append(context.Background(), ev); !errors.Is(err, ErrRecordTooLarge) {
		t.Errorf("Append(oversized) error = %v, want %v", err, ErrRecordTooLarge)
	}
	if got := l.Next(); got != 0 {
		t.Errorf("Next() = %d, want 0", got)
	}
}

// lastSegment returns the path of the newest segment in dir.
func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	bases, err := listSegments(dir)
	if err != nil || len(bases) == 0 {
		t.Fatalf("listSegments(%q) = %v, %v", dir, bases, err)
	}
	return filepath.Join(dir, segmentName(bases[len(bases)-1]))
}

func TestOpenTruncatesTornTail(t *testing.T) {
	frame := appendFrame(nil, 10, 1, &testEvents("torn", 1)[0])
	tests := []struct {
		name string
		tail []byte
	}{
		{"half header", frame[:5]},
		{"half record", frame[:len(frame)/2]},
		{"zeros", make([]byte, 100)},
		{"junk", []byte("this is not a record at all, just junk bytes")},
		{"full frame with bad crc", append(append([]byte{}, frame[:len(frame)-1]...), frame[len(frame)-1]^0xff)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, Config{})
			want := testEvents("ok", 10)
			mustAppend(t, l, want)
			l.Close()
			path := lastSegment(t, dir)
			before, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(tt.tail); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}

			var logs bytes.Buffer
			reg := prometheus.NewRegistry()
			l2 := openLog(t, dir, Config{Registerer: reg, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			after, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if after.Size() != before.Size() {
				t.Errorf("segment size after Open = %d, want %d (tail truncated)", after.Size(), before.Size())
			}
			if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "truncating") {
				t.Errorf("Open logs = %q, want a WARN about truncation", logs.String())
			}
			if got := counterValue(t, l2.m.corrupt); got != 1 {
				t.Errorf("sightline_ingest_corrupt_records_total = %v, want 1", got)
			}
			if got := l2.Next(); got != 10 {
				t.Errorf("Next() = %d, want 10", got)
			}
			more := testEvents("more", 3)
			if res := mustAppend(t, l2, more); res.First != 10 || res.Appended != 3 {
				t.Errorf("Append after recovery = %+v, want 3 events from offset 10", res)
			}
			if diff := cmp.Diff(append(want, more...), eventsOf(readAll(t, l2))); diff != "" {
				t.Errorf("records after recovery mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOpenSkipsCorruptSealedSegment(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SegmentBytes: 2048}
	l := openLog(t, dir, cfg)
	for i := range 6 {
		mustAppend(t, l, testEvents("s"+string(rune('a'+i)), 8))
	}
	l.Close()
	bases, err := listSegments(dir)
	if err != nil || len(bases) < 3 {
		t.Fatalf("segments = %v, %v, want at least 3", bases, err)
	}
	// Flip a byte in the middle of the first segment.
	first := filepath.Join(dir, segmentName(bases[0]))
	b, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x55
	if err := os.WriteFile(first, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	l2 := openLog(t, dir, Config{SegmentBytes: 2048, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if got := counterValue(t, l2.m.corrupt); got != 1 {
		t.Errorf("sightline_ingest_corrupt_records_total = %v, want 1", got)
	}
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("Open logs = %q, want an ERROR about the corrupt segment", logs.String())
	}
	all := readAll(t, l2)
	if len(all) >= 48 || len(all) == 0 {
		t.Fatalf("records after corruption = %d, want between 1 and 47", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].Offset <= all[i-1].Offset {
			t.Fatalf("offsets not increasing: %d then %d", all[i-1].Offset, all[i].Offset)
		}
	}
	if got, want := all[len(all)-1].Offset, uint64(47); got != want {
		t.Errorf("last offset = %d, want %d (later segments intact)", got, want)
	}
	if res := mustAppend(t, l2, testEvents("new", 1)); res.First != 48 {
		t.Errorf("Append after corruption = %+v, want offset 48", res)
	}
}

func TestRetention(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		l, err := Open(dir, Config{SegmentBytes: 1024, Retention: time.Hour, RetentionCheckInterval: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		for i := range 5 {
			mustAppend(t, l, testEvents("old"+string(rune('a'+i)), 5))
		}
		time.Sleep(30 * time.Minute)
		mustAppend(t, l, testEvents("new", 5))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- l.Run(ctx) }()

		time.Sleep(31 * time.Minute) // old segments are now 61 minutes old
		synctest.Wait()
		if got := l.Oldest(); got != 25 {
			t.Errorf("Oldest() after retention = %d, want 25", got)
		}
		_, err = l.Read(0, 1, nil)
		if oor, ok := errors.AsType[*OutOfRangeError](err); !ok || oor.Oldest != 25 || !errors.Is(err, ErrOffsetOutOfRange) {
			t.Errorf("Read(0) error = %v, want OutOfRangeError with Oldest 25", err)
		}
		bases, _ := listSegments(dir)
		if len(bases) != 1 || bases[0] != 25 {
			t.Errorf("segments on disk = %v, want [25]", bases)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
	})
}

func TestRetentionBytes(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Config{SegmentBytes: 1024, RetentionBytes: 2048})
	for i := range 10 {
		mustAppend(t, l, testEvents("b"+string(rune('a'+i)), 5))
	}
	l.enforceRetention(context.Background())
	var total int64
	bases, _ := listSegments(dir)
	for _, b := range bases {
		fi, err := os.Stat(filepath.Join(dir, segmentName(b)))
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
	}
	if total > 2048 || len(bases) == 0 {
		t.Errorf("log size after retention = %d bytes in %d segments, want <= 2048", total, len(bases))
	}
	if got, want := l.Oldest(), bases[0]; got != want {
		t.Errorf("Oldest() = %d, want %d", got, want)
	}
	if got := l.Next(); got != 50 {
		t.Errorf("Next() = %d, want 50", got)
	}
}

func TestFsyncIntervalRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		l, err := Open(t.TempDir(), Config{Fsync: FsyncInterval, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		mustAppend(t, l, testEvents("i", 3))
		if got := histCount(t, reg, "sightline_ingest_fsync_duration_seconds"); got != 0 {
			t.Fatalf("fsyncs before Run with FsyncInterval = %d, want 0", got)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- l.Run(ctx) }()
		time.Sleep(250 * time.Millisecond)
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() after cancel error = %v", err)
		}
		if got := histCount(t, reg, "sightline_ingest_fsync_duration_seconds"); got != 2 {
			t.Errorf("fsyncs after 250ms with FsyncInterval 100ms = %d, want 2", got)
		}
	})
}

func histCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
