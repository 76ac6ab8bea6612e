package decisionlog

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/features"
	"github.com/sightline/sightline/internal/model"
)

// Records for the tests come from a real engine (its OnRecord), so they
// are encoded exactly as a node encodes them.

// testStore is a feature source of fixed users; "broken" fails.
type testStore struct{}

var testUsers = map[string]event.User{
	"alice":  {ID: "alice", AgeBucket: "25-34", Segment: "regular", Region: "eu", Device: "ios"},
	"newbie": {ID: "newbie", Segment: "new", Region: "na", Device: "web"}, // age bucket null
}

var testActivity = map[string]features.Activity{
	"alice": {RecentItems: []string{"i01-001", "i02-003"}, RecentCategories: []string{"c01", "c02"}},
}

func (testStore) User(_ context.Context, id string) (event.User, bool, error) {
	if id == "broken" {
		return event.User{}, false, errors.New("connection refused")
	}
	u, ok := testUsers[id]
	return u, ok, nil
}

func (testStore) Activity(_ context.Context, id string) (features.Activity, error) {
	return testActivity[id], nil
}

// testScorer scores an item by a hash of its id.
type testScorer struct{}

func (testScorer) Score(_ context.Context, _ *model.Context, items []event.Item, out []float64) error {
	for i, it := range items {
		h := fnv.New32a()
		h.Write([]byte(it.ID))
		out[i] = 0.01 + float64(h.Sum32()%1000)/2000
	}
	return nil
}
func (testScorer) Version() string  { return "ftrl-v7" }
func (testScorer) Calibrated() bool { return true }

// recorder makes decisions with a real engine and keeps their records.
type recorder struct {
	e     *engine.Engine
	mu    sync.Mutex
	now   time.Time
	rec   []byte
	count int // items per decision
}

// newRecorder returns a recorder whose engine explores among the top 4,
// shows 4 items and logs a pool of 5.
func newRecorder() (*recorder, error) {
	return newRecorderSized(4, 5)
}

// newRecorderSized is newRecorder showing count items and logging a pool
// of pool; a node's defaults are 10 and 20.
func newRecorderSized(count, pool int) (*recorder, error) {
	r := &recorder{count: count}
	e, err := engine.New(testStore{}, engine.Config{
		Split:            model.Split{{Name: "ftrl", Weight: 1}, {Name: "popularity", Weight: 1}},
		Scorers:          map[string]engine.Scorer{"ftrl": testScorer{}},
		Explore:          0.2,
		ExploreTop:       4,
		PoolSize:         pool,
		RequiredFeatures: []string{},
		// No deadline a slow (race-instrumented, loaded) machine can miss:
		// a feature fetch timing out would make a fallback decision without
		// the user's recent categories, which the tests' expected rows take
		// from testActivity.
		FeatureBudget: time.Hour,
		ModelBudget:   time.Hour,
		Now:           func() time.Time { return r.now },
		OnRecord:      func(_ string, rec []byte) { r.rec = append(r.rec[:0], rec...) },
	})
	if err != nil {
		return nil, err
	}
	for c := range 6 {
		for i := range 10 {
			e.Index().PutItem(event.Item{ID: fmt.Sprintf("i%02d-%03d", c, i), Category: fmt.Sprintf("c%02d", c), Available: true})
		}
	}
	e.Index().Refresh()
	r.e = e
	return r, nil
}

// decide makes the decision id for user at time at and returns it with its
// record (a copy). A sampled trace context is attached when traced.
func (r *recorder) decide(id, user string, at time.Time, traced bool) (*engine.Decision, []byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.now = at
	ctx := context.Background()
	if traced {
		sc := trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
			SpanID:  trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}, TraceFlags: trace.FlagsSampled,
		})
		ctx = trace.ContextWithSpanContext(ctx, sc)
	}
	d, err := r.e.Recommend(ctx, engine.Request{RequestID: id, UserID: user, Count: r.count, Channel: "web"})
	if err != nil {
		return nil, nil, err
	}
	return d, append([]byte(nil), r.rec...), nil
}

// clickFor is a click answering d on its first item at d's time plus dt.
func clickFor(d *engine.Decision, n int, dt time.Duration) *event.Event {
	return &event.Event{
		ID: fmt.Sprintf("%s-e%d", d.RequestID, n), Type: event.Click, UserID: "someone",
		ItemID: d.Items[0].ItemID, RequestID: d.RequestID, Timestamp: d.Time.Add(dt), DwellMS: int64(1000 * n),
	}
}
