package engine

import (
	"context"
	"errors"
	"fmt"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/features"
	"github.com/sightline/sightline/internal/model"
)

// fakeStore is a FeatureSource whose behaviour a test chooses.
type fakeStore struct {
	users map[string]event.User
	act   map[string]features.Activity
	err   error
	block bool // wait for ctx to end
	// immediate makes it an Immediate source, which must then be given no
	// deadline (the read fails if it is); sleep is how long a read takes.
	immediate bool
	sleep     time.Duration
}

func (f *fakeStore) Immediate() bool { return f.immediate }

func (f *fakeStore) User(ctx context.Context, id string) (event.User, bool, error) {
	if f.block {
		<-ctx.Done()
		return event.User{}, false, ctx.Err()
	}
	if _, ok := ctx.Deadline(); ok && f.immediate {
		return event.User{}, false, errors.New("an immediate source was given a deadline context")
	}
	time.Sleep(f.sleep)
	if f.err != nil {
		return event.User{}, false, f.err
	}
	u, ok := f.users[id]
	return u, ok, nil
}

func (f *fakeStore) Activity(_ context.Context, id string) (features.Activity, error) {
	return f.act[id], nil
}

// fakeScorer scores by a function and can fail, panic or stall.
type fakeScorer struct {
	score func(it event.Item) float64
	err   error
	panic bool
	stall bool
	// immediate and sleep: as fakeStore's.
	immediate bool
	sleep     time.Duration
}

func (s *fakeScorer) Immediate() bool { return s.immediate }

func (s *fakeScorer) Score(ctx context.Context, _ *model.Context, items []event.Item, out []float64) error {
	if s.panic {
		panic("boom")
	}
	if _, ok := ctx.Deadline(); ok && s.immediate {
		return errors.New("an immediate scorer was given a deadline context")
	}
	time.Sleep(s.sleep)
	if s.stall {
		<-ctx.Done()
		return ctx.Err()
	}
	if s.err != nil {
		return s.err
	}
	for i := range items {
		out[i] = s.score(items[i])
	}
	return nil
}
func (s *fakeScorer) Version() string  { return "fake-v1" }
func (s *fakeScorer) Calibrated() bool { return true }

// catalog returns items in cats categories, n per category, all available.
func catalog(cats, n int) []event.Item {
	var out []event.Item
	for c := range cats {
		for i := range n {
			out = append(out, event.Item{ID: fmt.Sprintf("i%02d-%03d", c, i), Category: fmt.Sprintf("c%02d", c), Available: true})
		}
	}
	return out
}

// catalogPos parses an id that catalog made into its category and index;
// any other id is a bug of the test.
func catalogPos(id string) (c, i int) {
	if _, err := fmt.Sscanf(id, "i%02d-%03d", &c, &i); err != nil {
		panic(fmt.Sprintf("item id %q is not catalog's: %v", id, err))
	}
	return c, i
}

func newTestEngine(t *testing.T, fs *fakeStore, sc *fakeScorer, mutate func(*Config)) *Engine {
	t.Helper()
	return newEngineFor(t, fs, sc, mutate)
}

// newEngineFor is an engine over fs with s as its only variant, no
// exploration, and the catalog of 8 categories of 20 items indexed.
func newEngineFor(t *testing.T, fs FeatureSource, s Scorer, mutate func(*Config)) *Engine {
	t.Helper()
	cfg := Config{
		Split:   model.Split{{Name: "ftrl", Weight: 1}},
		Scorers: map[string]Scorer{"ftrl": s},
		Explore: -1,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	e, err := New(fs, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, it := range catalog(8, 20) {
		e.Index().PutItem(it)
	}
	e.Index().Refresh()
	return e
}

func knownUsers() map[string]event.User {
	return map[string]event.User{
		"alice":  {ID: "alice", AgeBucket: "25-34", Segment: "regular", Region: "eu", Device: "ios"},
		"newbie": {ID: "newbie", Segment: "new", Region: "na", Device: "web"}, // age bucket null
	}
}

func TestRecommendFallbackReasons(t *testing.T) {
	byID := func(event.Item) float64 { return 0.1 }
	tests := []struct {
		name   string
		store  fakeStore
		scorer fakeScorer
		user   string
		want   Reason
	}{
		{"healthy", fakeStore{}, fakeScorer{score: byID}, "alice", ReasonNone},
		{"store slow", fakeStore{block: true}, fakeScorer{score: byID}, "alice", ReasonFeatureStoreTimeout},
		{"store failing", fakeStore{err: errors.New("connection refused")}, fakeScorer{score: byID}, "alice", ReasonFeatureStoreError},
		{"model failing", fakeStore{}, fakeScorer{err: errors.New("weights not loaded")}, "alice", ReasonModelError},
		{"model panicking", fakeStore{}, fakeScorer{panic: true}, "alice", ReasonModelError},
		{"model slow", fakeStore{}, fakeScorer{stall: true}, "alice", ReasonModelTimeout},
		// Immediate sources get no deadline context and are timed instead.
		{"immediate store and model", fakeStore{immediate: true}, fakeScorer{score: byID, immediate: true}, "alice", ReasonNone},
		{"immediate store slow", fakeStore{immediate: true, sleep: time.Second}, fakeScorer{score: byID}, "alice", ReasonFeatureStoreTimeout},
		{"immediate model slow", fakeStore{}, fakeScorer{score: byID, immediate: true, sleep: time.Second}, "alice", ReasonModelTimeout},
		{"low confidence", fakeStore{}, fakeScorer{score: func(event.Item) float64 { return 0.0001 }}, "alice", ReasonLowConfidence},
		{"missing features", fakeStore{}, fakeScorer{score: byID}, "newbie", ReasonMissingFeatures},
		{"unknown user is cold start", fakeStore{}, fakeScorer{score: byID}, "stranger", ReasonNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fs := tc.store
				fs.users = knownUsers()
				sc := tc.scorer
				e := newTestEngine(t, &fs, &sc, nil)
				d, err := e.Recommend(t.Context(), Request{UserID: tc.user, Count: 10, Channel: "web"})
				if err != nil {
					t.Fatalf("Recommend: %v", err)
				}
				if d.Fallback != tc.want {
					t.Errorf("Recommend(%s) fallback = %q (%s), want %q", tc.user, d.Fallback, d.FallbackDetail, tc.want)
				}
				if len(d.Items) != 10 {
					t.Errorf("Recommend(%s) returned %d items, want 10 (fallbacks still answer)", tc.user, len(d.Items))
				}
				if tc.want != ReasonNone {
					if d.FallbackDetail == "" {
						t.Errorf("fallback %q has no detail", d.Fallback)
					}
					for _, it := range d.Items {
						if it.Reason != "popular" || it.Propensity != 1 {
							t.Errorf("fallback item %+v, want reason popular with propensity 1", it)
						}
					}
				}
				if got, ok := e.Decision(d.RequestID); !ok {
					t.Errorf("Decision(%q) not in the ring", d.RequestID)
				} else if diff := cmp.Diff(d, got, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("Decision(%q) from the ring differs (-answered +recorded):\n%s", d.RequestID, diff)
				}
				if len(d.Stages) == 0 {
					t.Errorf("decision has no stage timings")
				}
			})
		})
	}
}

func TestRecommendRules(t *testing.T) {
	fs := &fakeStore{users: knownUsers(), act: map[string]features.Activity{
		"alice": {Clicked: []string{"i00-000"}},
	}}
	// Higher scores for lower categories, so without the cap c00 would fill the page.
	sc := &fakeScorer{score: func(it event.Item) float64 {
		c, i := catalogPos(it.ID)
		return 0.9 - float64(c)*0.05 - float64(i)*0.001
	}}
	e := newTestEngine(t, fs, sc, nil)
	e.Index().PutItem(event.Item{ID: "i01-000", Category: "c01", Available: false})
	e.Index().Refresh()
	d, err := e.Recommend(t.Context(), Request{UserID: "alice", Count: 12, Exclude: []string{"i00-001"}})
	if err != nil {
		t.Fatal(err)
	}
	perCat := map[string]int{}
	for _, it := range d.Items {
		perCat[it.Category]++
		switch it.ItemID {
		case "i00-000":
			t.Errorf("already clicked item %s returned", it.ItemID)
		case "i00-001":
			t.Errorf("excluded item %s returned", it.ItemID)
		case "i01-000":
			t.Errorf("unavailable item %s returned", it.ItemID)
		}
	}
	for c, n := range perCat {
		if n > 3 {
			t.Errorf("category %s has %d items, want at most 3", c, n)
		}
	}
	if d.Items[0].ItemID != "i00-002" {
		t.Errorf("top item = %s, want i00-002 (best allowed score)", d.Items[0].ItemID)
	}
	if len(d.Items) != 12 {
		t.Errorf("got %d items, want 12", len(d.Items))
	}
	if d.Candidates < 100 {
		t.Errorf("candidates = %d, want every category represented", d.Candidates)
	}
}

func TestExplorationPropensity(t *testing.T) {
	fs := &fakeStore{users: knownUsers()}
	sc := &fakeScorer{score: func(event.Item) float64 { return 0.2 }}
	e := newTestEngine(t, fs, sc, func(c *Config) { c.Explore = 0.3 })
	explored := 0
	for i := range 200 {
		d, err := e.Recommend(t.Context(), Request{UserID: "alice", Count: 5, RequestID: fmt.Sprint("r", i)})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range d.Items {
			if it.Propensity <= 0 || it.Propensity > 1 {
				t.Fatalf("item %+v has propensity outside (0,1]", it)
			}
			if it.Reason == "explore" {
				explored++
				if it.Propensity >= 0.3 {
					t.Errorf("explored item propensity %v, want below the explore share", it.Propensity)
				}
			}
		}
	}
	// 1000 slots at 30% with 1-in-n chance of picking the greedy item: expect ~300.
	if explored < 200 || explored > 400 {
		t.Errorf("explored %d of 1000 slots, want about 300", explored)
	}
}

func TestRecommendRejectsInvalid(t *testing.T) {
	e := newTestEngine(t, &fakeStore{}, &fakeScorer{score: func(event.Item) float64 { return 0.5 }}, nil)
	for _, req := range []Request{{Count: 10}, {UserID: "a", Count: 0}, {UserID: "a", Count: 101}} {
		if _, err := e.Recommend(t.Context(), req); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("Recommend(%+v) err = %v, want ErrInvalidRequest", req, err)
		}
	}
}

func TestJoinedAndPopularity(t *testing.T) {
	fs := &fakeStore{users: knownUsers()}
	e := newTestEngine(t, fs, &fakeScorer{score: func(event.Item) float64 { return 0.3 }}, nil)
	d, err := e.Recommend(t.Context(), Request{UserID: "alice", Count: 3, Channel: "ios"})
	if err != nil {
		t.Fatal(err)
	}
	x, it, ok := e.Ring().Joined(d.RequestID, d.Items[1].ItemID)
	if !ok || x.User.AgeBucket != "25-34" || x.Channel != "ios" || it.Category != d.Items[1].Category {
		t.Errorf("Joined = %+v, %+v, %v; want alice's context and the shown item", x, it, ok)
	}
	if _, _, ok := e.Ring().Joined(d.RequestID, "not-shown"); ok {
		t.Errorf("Joined for an item that was not shown = true")
	}
	// Clicks make an item the most popular, for its segment first.
	now := time.Now()
	for i := range 5 {
		e.Observe(t.Context(), &event.Event{ID: fmt.Sprint(i), Type: event.Click, UserID: "alice", ItemID: "i07-019", Timestamp: now})
	}
	e.Index().Refresh()
	var first string
	e.Index().Popular("regular", func(it event.Item, _ float64) bool { first = it.ID; return false })
	if first != "i07-019" {
		t.Errorf("most popular for segment = %s, want i07-019", first)
	}
	if p := e.Index().Popularity("i07-019"); p != 1 {
		t.Errorf("Popularity(i07-019) = %v, want 1", p)
	}
	// A decision's logged pool and the popularity control read the same
	// popularity, through the candidates' keys.
	e.cfg.PoolSize = 20
	d2, err := e.Recommend(t.Context(), Request{UserID: "alice", Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	hot := false
	for _, p := range d2.Pool {
		if want := e.Index().Popularity(p.ItemID); p.Popularity != want {
			t.Errorf("pool item %s popularity %v, want Popularity = %v", p.ItemID, p.Popularity, want)
		}
		hot = hot || p.ItemID == "i07-019" && p.Popularity == 1
	}
	if !hot {
		t.Errorf("pool %+v: want i07-019 with popularity 1", d2.Pool)
	}
	var cs candidateSet
	e.Index().Candidates(&cs, nil, nil)
	out := make([]float64, len(cs.items))
	for _, x := range []*model.Context{{}, {ItemKeys: cs.keys}} {
		if err := (popularityScorer{e.Index()}).Score(t.Context(), x, cs.items, out); err != nil {
			t.Fatal(err)
		}
		for i, it := range cs.items {
			if want := e.Index().Popularity(it.ID); out[i] != want {
				t.Fatalf("popularity control (%d keys): %s scored %v, want %v", len(x.ItemKeys), it.ID, out[i], want)
			}
		}
	}
	if !strings.HasPrefix(d.UserHash, "u_") || strings.Contains(d.UserHash, "alice") {
		t.Errorf("UserHash = %q, want a pseudonym", d.UserHash)
	}
}

// combinedStore answers profile and activity in one call, and fails the
// test if the engine makes the two separate calls instead.
type combinedStore struct {
	fakeStore
	t     *testing.T
	calls int
}

func (c *combinedStore) Features(ctx context.Context, id string) (event.User, bool, features.Activity, error) {
	c.calls++
	u, ok, err := c.fakeStore.User(ctx, id)
	return u, ok, c.act[id], err
}

func (c *combinedStore) User(context.Context, string) (event.User, bool, error) {
	c.t.Error("User called on a CombinedSource")
	return event.User{}, false, nil
}

func (c *combinedStore) Activity(context.Context, string) (features.Activity, error) {
	c.t.Error("Activity called on a CombinedSource")
	return features.Activity{}, nil
}

func TestCombinedSource(t *testing.T) {
	cs := &combinedStore{fakeStore: fakeStore{users: knownUsers(), act: map[string]features.Activity{"alice": {Clicked: []string{"i00-000"}}}}, t: t}
	sc := fakeScorer{score: func(event.Item) float64 { return 0.1 }}
	e := newEngineFor(t, cs, &sc, nil)
	d, err := e.Recommend(t.Context(), Request{UserID: "alice", Count: 10, Channel: "web"})
	if err != nil {
		t.Fatalf("Recommend: %v", err)
	}
	if cs.calls != 1 {
		t.Errorf("Features called %d times, want 1", cs.calls)
	}
	if d.Fallback != ReasonNone || !d.KnownUser || d.Segment != "regular" {
		t.Errorf("decision fallback %q known %v segment %q, want a model decision for the known user", d.Fallback, d.KnownUser, d.Segment)
	}
	for _, it := range d.Items {
		if it.ItemID == "i00-000" {
			t.Error("the clicked item from the combined activity was recommended again")
		}
	}
}

// TestWallClock checks that the engine reads the clock once for a stage's
// time and its span's only when its clock is the wall clock (a simulated
// clock, as in drills, and the wall clock of spans and budgets must be read
// apart), and that the budgets of immediate sources hold either way: a
// fast read is no timeout, a read past the budget is.
func TestWallClock(t *testing.T) {
	byID := func(event.Item) float64 { return 0.1 }
	tests := []struct {
		name string
		now  func() time.Time
		want bool
	}{
		{name: "default", now: nil, want: true},
		{name: "time.Now passed through", now: time.Now, want: true},
		{name: "simulated", now: func() time.Time { return time.Now().Add(-time.Hour) }, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				for _, c := range []struct {
					sleep time.Duration
					want  Reason
				}{{0, ReasonNone}, {time.Second, ReasonFeatureStoreTimeout}} {
					fs := fakeStore{users: knownUsers(), immediate: true, sleep: c.sleep}
					e := newTestEngine(t, &fs, &fakeScorer{score: byID, immediate: true}, func(cfg *Config) { cfg.Now = tt.now })
					if e.wallClock != tt.want {
						t.Errorf("New with Now %s: wallClock = %v, want %v", tt.name, e.wallClock, tt.want)
					}
					d, err := e.Recommend(t.Context(), Request{UserID: "alice", Count: 10, Channel: "web"})
					if err != nil {
						t.Fatalf("Recommend: %v", err)
					}
					if d.Fallback != c.want {
						t.Errorf("clock %s, store read of %v: fallback = %q (%s), want %q", tt.name, c.sleep, d.Fallback, d.FallbackDetail, c.want)
					}
				}
			})
		})
	}
}

// TestRecommendFunc: a decision lent by RecommendFunc is the decision the
// ring records, also when its block last held a different decision (a
// known user's features and pool before a fallback without either), and
// lending reuses the block's memory.
func TestRecommendFunc(t *testing.T) {
	fs := &fakeStore{users: knownUsers()}
	sc := &fakeScorer{score: func(it event.Item) float64 {
		c, i := catalogPos(it.ID)
		return 0.9 - float64(c)*0.05 - float64(i)*0.001
	}}
	e := newTestEngine(t, fs, sc, func(c *Config) { c.PoolSize = 6 })
	steps := []struct {
		user     string
		storeErr error
		want     Reason
		features bool
		pool     bool
	}{
		{"alice", nil, ReasonNone, true, true},
		{"stranger", nil, ReasonNone, true, true},
		{"alice", errors.New("connection refused"), ReasonFeatureStoreError, false, false},
		{"newbie", nil, ReasonMissingFeatures, true, false},
		{"alice", nil, ReasonNone, true, true},
	}
	for i, st := range steps {
		fs.err = st.storeErr
		called := false
		err := e.RecommendFunc(t.Context(), Request{UserID: st.user, Count: 5, Channel: "web"}, func(d *Decision) {
			called = true
			if d.Fallback != st.want {
				t.Errorf("step %d (%s): fallback %q, want %q", i, st.user, d.Fallback, st.want)
			}
			if (d.Features != nil) != st.features || (len(d.Pool) > 0) != st.pool {
				t.Errorf("step %d (%s): features %v, pool of %d; want features %v, pool %v", i, st.user, d.Features, len(d.Pool), st.features, st.pool)
			}
			if len(d.Items) != 5 {
				t.Errorf("step %d (%s): %d items, want 5", i, st.user, len(d.Items))
			}
			got, ok := e.Decision(d.RequestID)
			if !ok {
				t.Fatalf("step %d: Decision(%q) not in the ring", i, d.RequestID)
			}
			if diff := cmp.Diff(got, d, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("step %d (%s): lent decision differs from the recorded one (-recorded +lent):\n%s", i, st.user, diff)
			}
		})
		if err != nil || !called {
			t.Fatalf("step %d: RecommendFunc = %v, fn called %v", i, err, called)
		}
	}
	fs.err = nil
	if err := e.RecommendFunc(t.Context(), Request{UserID: "alice"}, func(*Decision) { t.Error("fn called for an invalid request") }); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("RecommendFunc(count 0) = %v, want ErrInvalidRequest", err)
	}
	if raceEnabled {
		return // sync.Pool drops blocks at random under the race detector
	}
	req := Request{UserID: "alice", Count: 5, Channel: "web"}
	allocNew := testing.AllocsPerRun(50, func() {
		if _, err := e.Recommend(t.Context(), req); err != nil {
			t.Fatal(err)
		}
	})
	allocLent := testing.AllocsPerRun(50, func() {
		if err := e.RecommendFunc(t.Context(), req, func(*Decision) {}); err != nil {
			t.Fatal(err)
		}
	})
	// The block, its features map and its pool are reused.
	if allocLent > allocNew-3 {
		t.Errorf("RecommendFunc allocates %v times a decision, Recommend %v: want at least 3 fewer", allocLent, allocNew)
	}
}

// TestRecommendScoresAsTheModel: the score a decision records for each
// item is the model's probability for that item in the decision's context
// (model.Score, which hashes the item): the candidates' precomputed keys
// reach the model as the keys of the items they go with.
func TestRecommendScoresAsTheModel(t *testing.T) {
	m, err := model.New(model.Config{Bits: 16, L1: -1}) // no L1: every learned weight counts
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeStore{users: knownUsers()}
	e := newEngineFor(t, fs, NewModelScorer(m), func(c *Config) { c.MinConfidence = -1 })
	x := model.Context{User: fs.users["alice"], Channel: "web", Hour: 10}
	for i, it := range catalog(8, 20) {
		if i%3 == 0 {
			m.Learn(&x, it, model.Label(i%2))
		}
	}
	d, err := e.Recommend(t.Context(), Request{UserID: "alice", Count: 10, Channel: "web"})
	if err != nil {
		t.Fatal(err)
	}
	_, dx, ok := e.ring.get(d.RequestID)
	if !ok {
		t.Fatal("decision not in the ring")
	}
	var p model.Prepared
	m.Prepare(dx, &p)
	out := make([]float64, 1)
	for _, it := range d.Items {
		c, i := catalogPos(it.ItemID)
		m.Score(&p, []event.Item{{ID: it.ItemID, Category: fmt.Sprintf("c%02d", c), Available: true}}, out)
		if it.Score != out[0] {
			t.Errorf("item %s (%d of c%02d): decision score %v, model score %v", it.ItemID, i, c, it.Score, out[0])
		}
	}
}
