package learn

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/trace"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/features"
	"github.com/sightline/sightline/internal/ingest"
	"github.com/sightline/sightline/internal/model"
)

// decisions is a Joiner over fixed decisions: request id → the context and
// items it showed.
type decisions map[string]struct {
	x     model.Context
	items []string
}

func (d decisions) Joined(req, item string) (model.Context, event.Item, bool) {
	dec, ok := d[req]
	if !ok {
		return model.Context{}, event.Item{}, false
	}
	for _, id := range dec.items {
		if id == item {
			return dec.x, event.Item{ID: id, Category: "shown-" + id, Available: true}, true
		}
	}
	return model.Context{}, event.Item{}, false
}

func (d decisions) TraceOf(string, event.Type) (trace.SpanContext, bool) {
	return trace.SpanContext{}, false
}

// learned is one Learn call.
type learned struct {
	Age, Channel, Item, Category string
	Label                        model.Label
}

// recorder is a Learner that records its calls.
type recorder struct{ calls []learned }

func (r *recorder) Learn(x *model.Context, it event.Item, l model.Label) float64 {
	r.calls = append(r.calls, learned{x.User.AgeBucket, x.Channel, it.ID, it.Category, l})
	return 0
}

func newTestUpdater(t *testing.T, applied ingest.Offsets) (*ModelUpdater, *recorder) {
	t.Helper()
	store, err := features.NewMemory(features.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := store.PutUser(ctx, event.User{ID: "u1", AgeBucket: "25-34", Segment: "casual"}); err != nil {
		t.Fatal(err)
	}
	if err := store.PutItem(ctx, event.Item{ID: "organic", Category: "books", Available: true}); err != nil {
		t.Fatal(err)
	}
	j := decisions{"req1": {x: model.Context{User: event.User{AgeBucket: "18-24"}, Channel: "ios"}, items: []string{"a", "b"}}}
	rec := &recorder{}
	u, err := NewModelUpdater(applied, ModelConfig{Joiner: j, Features: store, Learner: rec})
	if err != nil {
		t.Fatal(err)
	}
	return u, rec
}

func records(from uint64, evs ...event.Event) []ingest.Record {
	out := make([]ingest.Record, len(evs))
	for i, ev := range evs {
		out[i] = ingest.Record{Offset: from + uint64(i), Event: ev}
	}
	return out
}

func TestModelUpdaterJoins(t *testing.T) {
	u, rec := newTestUpdater(t, nil)
	recs := records(0,
		event.Event{ID: "e1", Type: event.Impression, UserID: "u1", ItemID: "a", RequestID: "req1"},
		event.Event{ID: "e2", Type: event.Impression, UserID: "u1", ItemID: "b", RequestID: "req1"},
		event.Event{ID: "e3", Type: event.Click, UserID: "u1", ItemID: "b", RequestID: "req1"},
		event.Event{ID: "e4", Type: event.Click, UserID: "u1", ItemID: "organic", Channel: "web"},
		event.Event{ID: "e5", Type: event.Conversion, UserID: "u1", ItemID: "organic"},
		event.Event{ID: "e6", Type: event.Click, UserID: "u1", ItemID: "unknown-item"},
	)
	if err := u.HandlePartition(t.Context(), 0, recs); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	want := []learned{
		{"18-24", "ios", "a", "shown-a", model.Negative},
		{"18-24", "ios", "b", "shown-b", model.Negative},
		{"18-24", "ios", "b", "shown-b", model.Flip}, // the click corrects its impression
		{"25-34", "web", "organic", "books", model.Positive},
	}
	if diff := cmp.Diff(want, rec.calls); diff != "" {
		t.Errorf("Learn calls (-want +got):\n%s", diff)
	}
	if got := u.Applied(); got[0] != 6 {
		t.Errorf("Applied()[0] = %d, want 6", got[0])
	}
	if got := u.Learned(); got != 4 {
		t.Errorf("Learned() = %d, want 4", got)
	}
}

// TestModelUpdaterLearnsOnce: the same event id arriving again — a client
// retry through another node, or a batch delivered again — is learned once.
func TestModelUpdaterLearnsOnce(t *testing.T) {
	u, rec := newTestUpdater(t, nil)
	imp := event.Event{ID: "e1", Type: event.Impression, UserID: "u1", ItemID: "a", RequestID: "req1"}
	batch := records(0, imp, imp) // the retry, at the next offset
	ctx := t.Context()
	if err := u.HandlePartition(ctx, 0, batch); err != nil {
		t.Fatal(err)
	}
	if err := u.HandlePartition(ctx, 0, batch); err != nil { // the bus delivers again
		t.Fatal(err)
	}
	if err := u.HandlePartition(ctx, 1, records(0, imp)); err != nil { // through another partition
		t.Fatal(err)
	}
	if len(rec.calls) != 1 {
		t.Errorf("Learn called %d times for one event id, want 1: %v", len(rec.calls), rec.calls)
	}
	if got := u.Duplicates(); got != 2 {
		t.Errorf("Duplicates() = %d, want 2", got)
	}
}

// TestModelUpdaterRebuildsWindow: an updater restored at offset 3 and fed
// from offset 0 learns nothing before 3, yet knows those ids: the copy of
// one of them after 3 is not learned.
func TestModelUpdaterRebuildsWindow(t *testing.T) {
	u, rec := newTestUpdater(t, ingest.Offsets{0: 3})
	recs := records(0,
		event.Event{ID: "e1", Type: event.Impression, UserID: "u1", ItemID: "a", RequestID: "req1"},
		event.Event{ID: "e2", Type: event.Impression, UserID: "u1", ItemID: "b", RequestID: "req1"},
		event.Event{ID: "e3", Type: event.Impression, UserID: "u1", ItemID: "organic"},
		event.Event{ID: "e2", Type: event.Impression, UserID: "u1", ItemID: "b", RequestID: "req1"},
		event.Event{ID: "e4", Type: event.Impression, UserID: "u1", ItemID: "organic"},
	)
	if err := u.HandlePartition(t.Context(), 0, recs); err != nil {
		t.Fatal(err)
	}
	if len(rec.calls) != 1 || rec.calls[0].Item != "organic" {
		t.Errorf("Learn calls = %v, want only e4", rec.calls)
	}
}

// failing is a FeatureReader whose store is down.
type failing struct{}

func (failing) User(context.Context, string) (event.User, bool, error) {
	return event.User{}, false, context.DeadlineExceeded
}
func (failing) Activity(context.Context, string) (features.Activity, error) {
	return features.Activity{}, context.DeadlineExceeded
}
func (failing) Item(context.Context, string) (event.Item, bool, error) {
	return event.Item{}, false, context.DeadlineExceeded
}

// TestModelUpdaterStopsOnStoreError: a batch that needs the store while it
// is down stops there, and the bus's redelivery applies the rest once.
func TestModelUpdaterStopsOnStoreError(t *testing.T) {
	rec := &recorder{}
	u, err := NewModelUpdater(nil, ModelConfig{Joiner: decisions{"req1": {items: []string{"a"}}}, Features: failing{}, Learner: rec})
	if err != nil {
		t.Fatal(err)
	}
	recs := records(0,
		event.Event{ID: "e1", Type: event.Impression, UserID: "u1", ItemID: "a", RequestID: "req1"},
		event.Event{ID: "e2", Type: event.Click, UserID: "u1", ItemID: "organic"},
	)
	if err := u.HandlePartition(t.Context(), 0, recs); err == nil {
		t.Fatal("Handle with the store down = nil, want an error")
	}
	if got := u.Applied()[0]; got != 1 {
		t.Errorf("Applied()[0] after the error = %d, want 1 (the joined impression)", got)
	}
	if len(rec.calls) != 1 {
		t.Errorf("Learn calls = %d, want 1", len(rec.calls))
	}
}

// batchReader is a store that counts its reads.
type batchReader struct {
	*features.Memory
	batches, single int
	items, users    []string // asked for in batches
}

func (b *batchReader) ReadBatch(ctx context.Context, users, items []string) (features.Batch, error) {
	b.batches++
	b.items = append(b.items, items...)
	b.users = append(b.users, users...)
	return b.Memory.ReadBatch(ctx, users, items)
}

func (b *batchReader) Item(ctx context.Context, id string) (event.Item, bool, error) {
	b.single++
	return b.Memory.Item(ctx, id)
}

// TestModelUpdaterReadsAheadInBatches: the events of a batch that no
// decision explains are rebuilt from one batch read, not a read per event;
// joined events need none.
func TestModelUpdaterReadsAheadInBatches(t *testing.T) {
	mem, err := features.NewMemory(features.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, id := range []string{"u1", "u2"} {
		if err := mem.PutUser(ctx, event.User{ID: id, AgeBucket: "25-34", Segment: "casual"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := mem.PutItem(ctx, event.Item{ID: "organic", Category: "books", Available: true}); err != nil {
		t.Fatal(err)
	}
	store := &batchReader{Memory: mem}
	rec := &recorder{}
	u, err := NewModelUpdater(nil, ModelConfig{Joiner: decisions{"req1": {items: []string{"a"}}}, Features: store, Learner: rec})
	if err != nil {
		t.Fatal(err)
	}
	recs := records(0,
		event.Event{ID: "e1", Type: event.Impression, UserID: "u1", ItemID: "organic"},
		event.Event{ID: "e2", Type: event.Click, UserID: "u2", ItemID: "organic"},
		event.Event{ID: "e3", Type: event.Impression, UserID: "u1", ItemID: "a", RequestID: "req1"},
		event.Event{ID: "e4", Type: event.Impression, UserID: "u1", ItemID: "gone"},
	)
	if err := u.HandlePartition(ctx, 0, recs); err != nil {
		t.Fatal(err)
	}
	if store.batches != 1 || store.single != 0 {
		t.Errorf("%d batch reads and %d item reads, want 1 and 0", store.batches, store.single)
	}
	want := []learned{
		{"25-34", "", "organic", "books", model.Negative},
		{"25-34", "", "organic", "books", model.Positive},
		{"", "", "a", "shown-a", model.Negative},
	}
	if diff := cmp.Diff(want, rec.calls); diff != "" {
		t.Errorf("Learn calls (-want +got):\n%s", diff)
	}
}

type catalog map[string]event.Item

func (c catalog) Item(id string) (event.Item, bool) {
	it, ok := c[id]
	return it, ok
}

// TestModelUpdaterTakesItemsFromTheCatalog: with a catalog in memory, a
// rebuilt context takes its item from it, and the batch read asks the
// store only for the items the catalog does not have yet.
func TestModelUpdaterTakesItemsFromTheCatalog(t *testing.T) {
	mem, err := features.NewMemory(features.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := mem.PutUser(ctx, event.User{ID: "u1", AgeBucket: "25-34"}); err != nil {
		t.Fatal(err)
	}
	for _, it := range []event.Item{{ID: "known", Category: "store-books", Available: true}, {ID: "new", Category: "toys", Available: true}} {
		if err := mem.PutItem(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	store := &batchReader{Memory: mem}
	rec := &recorder{}
	u, err := NewModelUpdater(nil, ModelConfig{
		Joiner: decisions{}, Features: store, Learner: rec,
		Catalog: catalog{"known": {ID: "known", Category: "books", Available: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	recs := records(0,
		event.Event{ID: "e1", Type: event.Impression, UserID: "u1", ItemID: "known"},
		event.Event{ID: "e2", Type: event.Click, UserID: "u1", ItemID: "new"},
	)
	if err := u.HandlePartition(ctx, 0, recs); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"new"}, store.items); diff != "" || store.single != 0 {
		t.Errorf("items read from the store (-want +got):\n%s(and %d single reads)", diff, store.single)
	}
	want := []learned{
		{"25-34", "", "known", "books", model.Negative},
		{"25-34", "", "new", "toys", model.Positive},
	}
	if diff := cmp.Diff(want, rec.calls); diff != "" {
		t.Errorf("Learn calls (-want +got):\n%s", diff)
	}
}

// TestModelUpdaterCachesUsers: with UserCache, a user read for one batch
// is not read again for the next within the cache's time, except after a
// click (its recent activity changed) or once the time is up; what is
// learned uses the cached features.
func TestModelUpdaterCachesUsers(t *testing.T) {
	mem, err := features.NewMemory(features.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, id := range []string{"u1", "u2"} {
		if err := mem.PutUser(ctx, event.User{ID: id, AgeBucket: "25-34"}); err != nil {
			t.Fatal(err)
		}
	}
	store := &batchReader{Memory: mem}
	rec := &recorder{}
	now := time.Unix(1_700_000_000, 0)
	u, err := NewModelUpdater(nil, ModelConfig{
		Joiner: decisions{}, Features: store, Learner: rec, UserCache: 10 * time.Second,
		Catalog: catalog{"i": {ID: "i", Category: "books", Available: true}},
		Now:     func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	batch := func(off uint64, evs ...event.Event) []string {
		t.Helper()
		store.users = nil
		if err := u.HandlePartition(ctx, 0, records(off, evs...)); err != nil {
			t.Fatal(err)
		}
		return store.users
	}
	imp := func(id, user string) event.Event {
		return event.Event{ID: id, Type: event.Impression, UserID: user, ItemID: "i"}
	}
	steps := []struct {
		name    string
		advance time.Duration
		evs     []event.Event
		read    []string
	}{
		{"first sight", 0, []event.Event{imp("e1", "u1"), imp("e2", "u2")}, []string{"u1", "u2"}},
		{"within the cache's time", 5 * time.Second, []event.Event{imp("e3", "u1"), imp("e4", "u2")}, nil},
		{"a click reads its user again", 0, []event.Event{{ID: "e5", Type: event.Click, UserID: "u1", ItemID: "i"}, imp("e6", "u2")}, []string{"u1"}},
		{"time up for u2, not for u1", 6 * time.Second, []event.Event{imp("e7", "u1"), imp("e8", "u2")}, []string{"u2"}},
	}
	off := uint64(0)
	for _, st := range steps {
		now = now.Add(st.advance)
		if diff := cmp.Diff(st.read, batch(off, st.evs...)); diff != "" {
			t.Errorf("%s: users read (-want +got):\n%s", st.name, diff)
		}
		off += uint64(len(st.evs))
	}
	if len(rec.calls) != 8 {
		t.Fatalf("learned %d events, want 8", len(rec.calls))
	}
	for _, c := range rec.calls {
		if c.Age != "25-34" {
			t.Errorf("learned %+v without the user's features", c)
		}
	}
}

func TestTraceparentSampled(t *testing.T) {
	tests := []struct {
		tp   string
		want bool
	}{
		{"", false},
		{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", true},
		{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", false},
		{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03", true},
		{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0a", false},
		{"garbage", true}, // left to the propagator
	}
	for _, tc := range tests {
		if got := traceparentSampled(tc.tp); got != tc.want {
			t.Errorf("traceparentSampled(%q) = %v, want %v", tc.tp, got, tc.want)
		}
	}
}

type eventLog struct{ ids []string }

func (l *eventLog) Event(ev *event.Event) bool {
	l.ids = append(l.ids, ev.ID)
	return true
}

// Only events that answer a decision reach the decision log, in order.
func TestDecisionEvents(t *testing.T) {
	l := &eventLog{}
	recs := []ingest.Record{
		{Event: event.Event{ID: "e1", Type: event.Impression, RequestID: "r1", ItemID: "i1"}},
		{Event: event.Event{ID: "organic", Type: event.Click, ItemID: "i2"}},
		{Event: event.Event{ID: "e2", Type: event.Click, RequestID: "r1", ItemID: "i1"}},
	}
	if err := NewDecisionEvents(l).HandlePartition(t.Context(), 0, recs); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"e1", "e2"}, l.ids); diff != "" {
		t.Errorf("logged events (-want +got):\n%s", diff)
	}
}
