package decisionlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		crashChild()
		return
	}
	goleak.VerifyTestMain(m)
}

// start runs w until the returned stop is called; stop returns Run's error.
func start(t testing.TB, w *Writer) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var err error
	stopped := false
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			err = <-done
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// newWriter is New that fails the test on an error.
func newWriter(t testing.TB, cfg Config) *Writer {
	t.Helper()
	w, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return w
}

// wantRow is the row a decision should become, built from the decision the
// engine returned (not from the decoded record).
func wantRow(d *engine.Decision, node string, recent []string) Decision {
	r := Decision{
		RequestID: d.RequestID, Time: d.Time.UTC().Truncate(time.Microsecond), UserHash: d.UserHash,
		KnownUser: d.KnownUser, Node: node, Channel: d.Channel, Variant: d.Variant, ModelVersion: d.ModelVersion,
		UserAgeBucket: d.Features[event.AttrAgeBucket], UserSegment: d.Features[event.AttrSegment],
		UserRegion: d.Features[event.AttrRegion], UserDevice: d.Features[event.AttrDevice],
		Hour: int32(d.Time.Hour()), RecentCategories: recent, Candidates: int32(d.Candidates),
		Eligible: int32(d.Eligible), Explore: d.Explore, ExploreTop: int32(d.ExploreTop),
		Confidence: d.Confidence, FallbackReason: string(d.Fallback), DurationNS: int64(d.Duration),
		TraceID: d.TraceID, TraceSampled: d.TraceSampled,
	}
	for _, it := range d.Items {
		r.Items = append(r.Items, Slot{ItemID: it.ItemID, Category: it.Category, Score: it.Score, Reason: it.Reason, Propensity: it.Propensity})
	}
	for _, p := range d.Pool {
		r.Pool = append(r.Pool, Candidate{ItemID: p.ItemID, Category: p.Category, Score: p.Score, Popularity: p.Popularity})
	}
	if sh := d.Shadow; sh != nil {
		r.ShadowModelVersion, r.ShadowError, r.ShadowDurationNS = sh.ModelVersion, sh.Error, int64(sh.Duration)
		for i, id := range sh.Items {
			r.ShadowItems = append(r.ShadowItems, ShadowSlot{ItemID: id, Score: sh.Scores[i]})
		}
	}
	return r
}

func readDecisions(t testing.TB, dir string) []Decision {
	t.Helper()
	var out []Decision
	if err := ReadDecisions(context.Background(), dir, func(d *Decision) error {
		out = append(out, *d)
		return nil
	}); err != nil {
		t.Fatalf("ReadDecisions: %v", err)
	}
	return out
}

func readEvents(t testing.TB, dir string) []Event {
	t.Helper()
	var out []Event
	if err := ReadEvents(context.Background(), dir, func(e *Event) error {
		out = append(out, *e)
		return nil
	}); err != nil {
		t.Fatalf("ReadEvents: %v", err)
	}
	return out
}

// relFiles lists the closed files under dir relative to it, with their
// kind and rows.
func relFiles(t testing.TB, dir string) []string {
	t.Helper()
	files, err := Files(dir)
	if err != nil {
		t.Fatalf("Files: %v", err)
	}
	var out []string
	for _, f := range files {
		rel, _ := filepath.Rel(dir, f.Path)
		out = append(out, fmt.Sprintf("%s %s %d", filepath.Dir(rel), f.Kind, f.Rows))
	}
	return out
}

var sortDecisions = cmpopts.SortSlices(func(a, b Decision) bool { return a.RequestID < b.RequestID })
var sortEvents = cmpopts.SortSlices(func(a, b Event) bool { return a.EventID < b.EventID })

func TestRoundTrip(t *testing.T) {
	rc, err := newRecorder()
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 3, 1, 22, 59, 58, 123456789, time.UTC)
	tests := []struct {
		name, user string
		node       string // "" for Record
		traced     bool
		check      func(t *testing.T, got Decision)
	}{
		{"known user, every feature", "alice", "", true, func(t *testing.T, got Decision) {
			if got.UserAgeBucket == nil || *got.UserAgeBucket != "25-34" || len(got.RecentCategories) != 2 {
				t.Errorf("age %v, recent %v, want 25-34 and two categories", got.UserAgeBucket, got.RecentCategories)
			}
			if got.TraceID == "" || !got.TraceSampled {
				t.Errorf("trace %q sampled %v, want a sampled trace", got.TraceID, got.TraceSampled)
			}
		}},
		{"null age bucket", "newbie", "api-2", false, func(t *testing.T, got Decision) {
			if got.UserAgeBucket != nil || got.UserSegment == nil {
				t.Errorf("age %v segment %v, want null age and a segment", got.UserAgeBucket, got.UserSegment)
			}
		}},
		{"unknown user", "stranger", "api-1", false, func(t *testing.T, got Decision) {
			if got.KnownUser || got.UserAgeBucket != nil || got.UserDevice != nil {
				t.Errorf("known %v age %v device %v, want an unknown user with null features", got.KnownUser, got.UserAgeBucket, got.UserDevice)
			}
		}},
		{"feature store down", "broken", "", false, func(t *testing.T, got Decision) {
			if got.FallbackReason != string(engine.ReasonFeatureStoreError) || got.UserSegment != nil || len(got.Pool) != 0 {
				t.Errorf("fallback %q segment %v pool %d, want feature_store_error, nulls and no pool", got.FallbackReason, got.UserSegment, len(got.Pool))
			}
		}},
	}
	dir := t.TempDir()
	w := newWriter(t, Config{Dir: dir, Node: "trainer-1"})
	stop := start(t, w)
	var want []Decision
	var wantEv []Event
	for i, tc := range tests {
		at := base.Add(time.Duration(i) * time.Second) // crosses into the next day
		d, rec, err := rc.decide("req-"+tc.user, tc.user, at, tc.traced)
		if err != nil {
			t.Fatal(err)
		}
		node := tc.node
		if node == "" {
			node = "trainer-1"
			if !w.Record(rec) {
				t.Fatalf("Record(%s) = false", tc.user)
			}
		} else if !w.RecordFrom(node, rec) {
			t.Fatalf("RecordFrom(%s) = false", tc.user)
		}
		want = append(want, wantRow(d, node, testActivity[tc.user].RecentCategories))
		ev := clickFor(d, i, 1500*time.Millisecond)
		if !w.Event(ev) {
			t.Fatalf("Event(%s) = false", ev.ID)
		}
		wantEv = append(wantEv, Event{RequestID: d.RequestID, EventID: ev.ID, Type: "click",
			Time: ev.Timestamp.Truncate(time.Microsecond), ItemID: ev.ItemID, DwellMS: ev.DwellMS})
	}
	if w.Event(&event.Event{ID: "organic", Type: event.Click, ItemID: "x", Timestamp: base}) {
		t.Error("Event(no request id) = true, want false")
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	got := readDecisions(t, dir)
	if diff := cmp.Diff(want, got, sortDecisions, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("decisions read back (-want +got):\n%s", diff)
	}
	for _, tc := range tests {
		for _, g := range got {
			if g.RequestID == "req-"+tc.user {
				t.Run(tc.name, func(t *testing.T) { tc.check(t, g) })
			}
		}
	}
	if diff := cmp.Diff(wantEv, readEvents(t, dir), sortEvents); diff != "" {
		t.Errorf("events read back (-want +got):\n%s", diff)
	}
	for _, g := range got {
		if g.Time.Location() != time.UTC {
			t.Errorf("decision %s time in %v, want UTC", g.RequestID, g.Time.Location())
		}
	}
	nd, ne, err := Count(dir)
	if err != nil || nd != int64(len(tests)) || ne != int64(len(tests)) {
		t.Errorf("Count = %d, %d, %v; want %d, %d", nd, ne, err, len(tests), len(tests))
	}
	files, _ := Files(dir)
	for _, f := range files {
		if f.Node != "trainer-1" || f.StoreRatio != 1 {
			t.Errorf("file %s node %q ratio %v, want trainer-1 and 1", f.Path, f.Node, f.StoreRatio)
		}
		if base := filepath.Base(f.Path); !strings.HasPrefix(base, f.Kind+"-trainer-1-") || !strings.HasSuffix(base, ".parquet") {
			t.Errorf("file name %s, want %s-trainer-1-<stamp>.parquet", base, f.Kind)
		}
	}
}

// The writer reuses its record buffers and its rows, whose strings alias
// the records until the encoder copied them: thousands of distinct
// decisions of every shape, interleaved over two hour partitions, through
// small row groups and files that close mid-batch, read back exactly as
// served while the callers reuse their own buffers.
func TestRecycledRecords(t *testing.T) {
	rc, err := newRecorder()
	if err != nil {
		t.Fatal(err)
	}
	users := []string{"alice", "newbie", "stranger", "broken"}
	base := time.Date(2026, 3, 1, 10, 59, 0, 0, time.UTC)
	dir := t.TempDir()
	w := newWriter(t, Config{Dir: dir, Node: "api-1", MaxFileRows: 700, RowGroupRows: 100})
	stop := start(t, w)
	const n = 3000
	want := make([]Decision, 0, n)
	var buf []byte
	for i := range n {
		user := users[i%len(users)]
		at := base.Add(time.Duration(i%7) * 20 * time.Second) // 10:59 and 11:00
		d, rec, err := rc.decide(fmt.Sprintf("req-%05d-%s", i, user), user, at, i%3 == 0)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, wantRow(d, "api-1", testActivity[user].RecentCategories))
		buf = append(buf[:0], rec...)
		if !w.Record(buf) {
			t.Fatalf("Record(%d) = false", i)
		}
		for j := range buf {
			buf[j] = 0xff // the caller reuses its buffer at once
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := readDecisions(t, dir)
	if diff := cmp.Diff(want, got, sortDecisions, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("decisions read back (-want +got):\n%s", diff)
	}
	if st := w.Stats(); st.DecisionsWritten != n || st.DecisionsDropped != 0 {
		t.Errorf("Stats = %+v, want %d written and none dropped", st, n)
	}
}

func TestPartitions(t *testing.T) {
	rc, err := newRecorder()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	w := newWriter(t, Config{Dir: dir, Node: "n1"})
	stop := start(t, w)
	// Decisions in three hours across a day boundary; each one's click
	// comes 40 minutes later, so the last hour's events land in the next
	// hour's partition.
	times := []time.Time{
		time.Date(2026, 2, 28, 23, 10, 0, 0, time.UTC),
		time.Date(2026, 2, 28, 23, 50, 0, 0, time.UTC),
		time.Date(2026, 3, 1, 0, 5, 0, 0, time.UTC),
		// Not UTC: the partition is the UTC hour all the same.
		time.Date(2026, 3, 1, 3, 30, 0, 0, time.FixedZone("UTC+2", 2*3600)),
	}
	for i, at := range times {
		d, rec, err := rc.decide(fmt.Sprintf("r%d", i), "alice", at, false)
		if err != nil {
			t.Fatal(err)
		}
		w.Record(rec)
		w.Event(clickFor(d, 0, 40*time.Minute))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"date=2026-02-28/hour=23 decisions 2",
		"date=2026-02-28/hour=23 events 1",
		"date=2026-03-01/hour=00 decisions 1",
		"date=2026-03-01/hour=00 events 2",
		"date=2026-03-01/hour=01 decisions 1",
		"date=2026-03-01/hour=02 events 1",
	}
	got := relFiles(t, dir)
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestRollByRows(t *testing.T) {
	rc, err := newRecorder()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name              string
		n, maxRows, group int
		want              []string
	}{
		{"under the limit", 7, 10, 0, []string{"decisions 7"}},
		{"exactly the limit", 10, 10, 0, []string{"decisions 10"}},
		{"several files", 25, 10, 0, []string{"decisions 10", "decisions 10", "decisions 5"}},
		{"small row groups", 1100, 600, 100, []string{"decisions 600", "decisions 500"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w := newWriter(t, Config{Dir: dir, MaxFileRows: tc.maxRows, RowGroupRows: tc.group})
			stop := start(t, w)
			for i := range tc.n {
				_, rec, err := rc.decide(fmt.Sprintf("r%05d", i), "alice", at, false)
				if err != nil {
					t.Fatal(err)
				}
				for !w.Record(rec) {
					time.Sleep(time.Millisecond) // the queue is full: let the writer catch up
				}
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			files, err := Files(dir)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range files {
				got = append(got, fmt.Sprintf("%s %d", f.Kind, f.Rows))
			}
			// Files of one hour sort by their stamp, the order they were opened.
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
			if n := len(readDecisions(t, dir)); n != tc.n {
				t.Errorf("read %d decisions, want %d", n, tc.n)
			}
			if tc.group > 0 {
				pf := openForTest(t, files[0].Path)
				if g := len(pf.RowGroups()); g != tc.maxRows/tc.group {
					t.Errorf("%s has %d row groups, want %d", files[0].Path, g, tc.maxRows/tc.group)
				}
			}
		})
	}
}

// openForTest opens a Parquet file for inspection.
func openForTest(t testing.TB, path string) *parquet.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, _ := f.Stat()
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return pf
}

func TestStoreRatio(t *testing.T) {
	rc, err := newRecorder()
	if err != nil {
		t.Fatal(err)
	}
	const n, ratio = 2000, 0.3
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	w := newWriter(t, Config{Dir: dir, StoreRatio: ratio, Registerer: reg})
	stop := start(t, w)
	kept := map[string]bool{}
	for i := range n {
		d, rec, err := rc.decide(fmt.Sprintf("req-%d", i), "alice", at, false)
		if err != nil {
			t.Fatal(err)
		}
		for !w.Record(rec) {
			time.Sleep(time.Millisecond)
		}
		for j := range 2 {
			for !w.Event(clickFor(d, j, time.Second)) {
				time.Sleep(time.Millisecond)
			}
		}
		if Keep(d.RequestID, ratio) {
			kept[d.RequestID] = true
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	decs := readDecisions(t, dir)
	if lo, hi := int(n*ratio*0.85), int(n*ratio*1.15); len(decs) < lo || len(decs) > hi {
		t.Errorf("kept %d of %d decisions at ratio %v, want %d..%d", len(decs), n, ratio, lo, hi)
	}
	gotDec := map[string]bool{}
	for _, d := range decs {
		gotDec[d.RequestID] = true
	}
	evByReq := map[string]int{}
	for _, e := range readEvents(t, dir) {
		evByReq[e.RequestID]++
	}
	if diff := cmp.Diff(kept, gotDec); diff != "" {
		t.Errorf("decisions kept differ from Keep (-Keep +file):\n%s", diff)
	}
	for id := range gotDec {
		if evByReq[id] != 2 {
			t.Errorf("decision %s has %d events in the log, want 2", id, evByReq[id])
		}
	}
	for id := range evByReq {
		if !gotDec[id] {
			t.Errorf("event of dropped decision %s kept", id)
		}
	}
	if r, err := StoreRatio(dir); err != nil || r != ratio {
		t.Errorf("StoreRatio = %v, %v; want %v", r, err, ratio)
	}
	if got := value(w.met.sampledOut.WithLabelValues(kindDecisions)); got != float64(n-len(decs)) {
		t.Errorf("sampled_out{decisions} = %v, want %d", got, n-len(decs))
	}
}

func TestKeep(t *testing.T) {
	tests := []struct {
		ratio float64
		want  func(int) bool
	}{
		{1, func(k int) bool { return k == 10000 }},
		{0.5, func(k int) bool { return k > 4800 && k < 5200 }},
		{0.01, func(k int) bool { return k > 70 && k < 130 }},
		{0, func(k int) bool { return k == 0 }},
	}
	for _, tc := range tests {
		k := 0
		for i := range 10000 {
			if Keep(fmt.Sprintf("r-%08d", i), tc.ratio) {
				k++
			}
		}
		if !tc.want(k) {
			t.Errorf("Keep(ratio %v) kept %d of 10000", tc.ratio, k)
		}
	}
	// A smaller ratio keeps a subset of what a larger one keeps.
	for i := range 1000 {
		id := fmt.Sprint(i)
		if Keep(id, 0.1) && !Keep(id, 0.2) {
			t.Fatalf("Keep(%q, 0.1) but not Keep(%q, 0.2)", id, id)
		}
	}
}

func TestQueueFullDrops(t *testing.T) {
	rc, err := newRecorder()
	if err != nil {
		t.Fatal(err)
	}
	d, rec, err := rc.decide("r1", "alice", time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), false)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	clock := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	w := newWriter(t, Config{Dir: dir, Buffer: 4, Registerer: reg, Now: now})
	// Run has not started: nothing empties the queue, and Record must
	// still return at once.
	var accepted []bool
	for range 6 {
		accepted = append(accepted, w.Record(rec))
	}
	accepted = append(accepted, w.Event(clickFor(d, 0, time.Second)))
	want := []bool{true, true, true, true, false, false, false}
	if diff := cmp.Diff(want, accepted); diff != "" {
		t.Errorf("accepted (-want +got):\n%s", diff)
	}
	if got := value(w.met.dropped.WithLabelValues(kindDecisions, reasonQueueFull)); got != 2 {
		t.Errorf("dropped{decisions,queue_full} = %v, want 2", got)
	}
	if got := value(w.met.dropped.WithLabelValues(kindEvents, reasonQueueFull)); got != 1 {
		t.Errorf("dropped{events,queue_full} = %v, want 1", got)
	}
	if got := gaugeValue(t, reg, "sightline_decisionlog_queue_fill_ratio"); got != 1 {
		t.Errorf("queue_fill_ratio = %v, want 1", got)
	}
	mu.Lock()
	clock = clock.Add(90 * time.Second)
	mu.Unlock()
	if got := gaugeValue(t, reg, "sightline_decisionlog_queue_age_seconds"); got != 90 {
		t.Errorf("queue_age_seconds = %v, want 90", got)
	}
	if st := w.Stats(); st.DecisionsDropped != 2 || st.EventsDropped != 1 || st.QueueLen != 4 || st.QueueAge != 90*time.Second {
		t.Errorf("Stats = %+v, want 2 and 1 dropped, 4 queued for 90s", st)
	}
	// Once running, the writer empties the queue; a bad record is dropped
	// as an error by its goroutine.
	stop := start(t, w)
	for !w.Record([]byte{0x7f, 1, 2}) {
		time.Sleep(time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := len(readDecisions(t, dir)); got != 4 {
		t.Errorf("wrote %d decisions, want the 4 queued", got)
	}
	if got := value(w.met.dropped.WithLabelValues(kindDecisions, reasonError)); got != 1 {
		t.Errorf("dropped{decisions,error} = %v, want 1", got)
	}
	if got := value(w.met.written.WithLabelValues(kindDecisions)); got != 4 {
		t.Errorf("rows_written{decisions} = %v, want 4", got)
	}
	// After Run returned, records are refused and counted as closed.
	if w.Record(rec) {
		t.Error("Record after Run returned = true, want false")
	}
	if got := value(w.met.dropped.WithLabelValues(kindDecisions, reasonClosed)); got != 1 {
		t.Errorf("dropped{decisions,closed} = %v, want 1", got)
	}
	if err := w.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
}

// TestWaitRoom checks that a reader of a durable stream waits for the
// writer while its queue is half full, for a bounded time.
func TestWaitRoom(t *testing.T) {
	rc, err := newRecorder()
	if err != nil {
		t.Fatal(err)
	}
	_, rec, err := rc.decide("r1", "alice", time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), false)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		queued int
		drain  time.Duration // the queue empties after this (0: never)
		cancel bool
		want   time.Duration
	}{
		{name: "room: no wait", queued: 1, want: 0},
		{name: "half full, drained after 30ms", queued: 2, drain: 30 * time.Millisecond, want: 30 * time.Millisecond},
		{name: "full, never drained: a second at most", queued: 4, want: roomWait},
		{name: "full, context cancelled", queued: 4, cancel: true, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWriter(t, Config{Dir: t.TempDir(), Buffer: 4})
				for range tt.queued {
					w.Record(rec)
				}
				if tt.drain > 0 {
					go func() {
						time.Sleep(tt.drain)
						for {
							if _, ok := w.poll(); !ok {
								return
							}
						}
					}()
				}
				ctx, cancel := context.WithCancel(t.Context())
				if tt.cancel {
					cancel()
				}
				defer cancel()
				start := time.Now()
				w.WaitRoom(ctx)
				// It polls every 2ms.
				if got := time.Since(start); got < tt.want || got > tt.want+2*time.Millisecond {
					t.Errorf("WaitRoom waited %v, want %v (+2ms)", got, tt.want)
				}
			})
		})
	}
}

// gaugeValue gathers reg and returns the value of the unlabelled metric.
func gaugeValue(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero but dir", Config{Dir: "x"}, true},
		{"no dir", Config{}, false},
		{"ratio above 1", Config{Dir: "x", StoreRatio: 1.5}, false},
		{"negative ratio", Config{Dir: "x", StoreRatio: -0.1}, false},
		{"negative max bytes", Config{Dir: "x", MaxBytes: -1}, false},
	}
	for _, tc := range tests {
		if _, err := New(tc.cfg); (err == nil) != tc.ok {
			t.Errorf("New(%s) error = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	w := newWriter(t, Config{Dir: "x"})
	c := w.cfg
	if c.Node != DefaultNode || c.StoreRatio != 1 || c.Retention != DefaultRetention || c.Buffer != DefaultBuffer ||
		c.RollInterval != DefaultRollInterval || c.MaxFileRows != DefaultMaxFileRows {
		t.Errorf("defaults = %+v", c)
	}
}

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		panic(err)
	}
	if c := pb.GetCounter(); c != nil {
		return c.GetValue()
	}
	return pb.GetGauge().GetValue()
}
