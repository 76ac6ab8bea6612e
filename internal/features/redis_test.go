package features

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/sightline/sightline/internal/event"
)

// redisAddr returns the test server's address from SIGHTLINE_TEST_REDIS
// (set by scripts/test), skipping the test when it is unset.
func redisAddr(tb testing.TB) string {
	tb.Helper()
	addr := os.Getenv("SIGHTLINE_TEST_REDIS")
	if addr == "" {
		tb.Skip("SIGHTLINE_TEST_REDIS not set (host:port of a redis-server for tests)")
	}
	return addr
}

// newTestRedis returns a store on the test server under a key prefix of its
// own, whose keys are deleted when the test ends.
func newTestRedis(tb testing.TB, cfg RedisConfig) *Redis {
	tb.Helper()
	cfg.Addr = redisAddr(tb)
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = fmt.Sprintf("sltest:%d:", rand.Uint64())
	}
	r, err := NewRedis(cfg)
	if err != nil {
		tb.Fatalf("NewRedis(%+v) = %v", cfg, err)
	}
	tb.Cleanup(func() {
		c := redis.NewClient(&redis.Options{Addr: cfg.Addr})
		defer c.Close()
		ctx := context.Background()
		iter := c.Scan(ctx, 0, escapeGlob(cfg.KeyPrefix)+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		if err := errors.Join(iter.Err(), r.Close()); err != nil {
			tb.Errorf("cleanup: %v", err)
		}
	})
	return r
}

func TestRedisConfigInvalid(t *testing.T) {
	tests := []struct {
		name string
		cfg  RedisConfig
	}{
		{"negative DB", RedisConfig{DB: -1}},
		{"negative pool", RedisConfig{PoolSize: -1}},
		{"negative read timeout", RedisConfig{ReadTimeout: -time.Millisecond}},
		{"negative TTL", RedisConfig{ActivityTTL: -time.Second}},
		{"list too long", RedisConfig{ClickedItems: maxListLen + 1}},
		{"negative list", RedisConfig{RecentItems: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewRedis(tc.cfg)
			if err == nil {
				r.Close()
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("NewRedis(%+v) = %v, want ErrInvalidConfig", tc.cfg, err)
			}
		})
	}
}

func TestRedisUserRoundTrip(t *testing.T) {
	r := newTestRedis(t, RedisConfig{})
	ctx := context.Background()
	ts := time.Date(2025, 3, 4, 5, 6, 7, 890123456, time.FixedZone("x", 3600))
	tests := []struct {
		name string
		u    event.User
	}{
		{"all attributes", event.User{ID: "u1", AgeBucket: "25-34", Segment: "loyal", Region: "eu", Device: "ios", UpdatedAt: ts}},
		{"null attributes", event.User{ID: "u2", Region: "us", UpdatedAt: ts}},
		{"only id", event.User{ID: "u3", UpdatedAt: ts}},
		{"free attributes", event.User{ID: "u:4", Segment: "new", Attrs: map[string]string{"plan": "pro", "a:b": "", "lang": "de"}, UpdatedAt: ts}},
		{"replaced drops old attributes", event.User{ID: "u1", Device: "web", UpdatedAt: ts.Add(time.Hour)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := r.PutUser(ctx, tc.u); err != nil {
				t.Fatalf("PutUser(%+v) = %v", tc.u, err)
			}
			got, ok, err := r.User(ctx, tc.u.ID)
			want := tc.u
			want.UpdatedAt = want.UpdatedAt.UTC()
			if err != nil || !ok {
				t.Fatalf("User(%q) = %v, %v, want found", tc.u.ID, ok, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("User(%q) mismatch (-want +got):\n%s", tc.u.ID, diff)
			}
		})
	}
	if got, ok, err := r.User(ctx, "nobody"); err != nil || ok || !cmp.Equal(got, event.User{}) {
		t.Errorf("User(unknown) = %+v, %v, %v, want zero, false, nil", got, ok, err)
	}
	if n, _, err := r.Counts(ctx); n != 4 || err != nil {
		t.Errorf("Users() = %d, %v, want 4 (u1 put twice)", n, err)
	}
	if err := r.PutUser(ctx, event.User{}); !errors.Is(err, event.ErrMissingField) {
		t.Errorf("PutUser(no id) = %v, want ErrMissingField", err)
	}
	before := time.Now()
	if err := r.PutUser(ctx, event.User{ID: "u5"}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := r.User(ctx, "u5"); got.UpdatedAt.Before(before.Add(-time.Second)) {
		t.Errorf("User(u5).UpdatedAt = %v, want about now for a zero UpdatedAt", got.UpdatedAt)
	}
}

// testCatalog is a catalog in memory for Redis.UseCatalog.
type testCatalog map[string]event.Item

func (c testCatalog) Item(id string) (event.Item, bool) {
	it, ok := c[id]
	return it, ok
}

// TestRedisActivityMatchesMemory applies the same random events to a Memory
// and a Redis with small bounds and checks that both report the same
// activity: order, distinctness and bounds are Memory's. With a catalog in
// memory, batches whose items it knows go without the script, the others
// (items 12..15) with it.
func TestRedisActivityMatchesMemory(t *testing.T) {
	for _, withCatalog := range []bool{false, true} {
		t.Run(fmt.Sprintf("catalog=%v", withCatalog), func(t *testing.T) {
			testRedisActivityMatchesMemory(t, withCatalog)
		})
	}
}

func testRedisActivityMatchesMemory(t *testing.T, withCatalog bool) {
	cfg := Config{RecentItems: 4, RecentCategories: 3, ClickedItems: 7}
	m, err := NewMemory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := newTestRedis(t, RedisConfig{RecentItems: 4, RecentCategories: 3, ClickedItems: 7})
	ctx := context.Background()
	cat := testCatalog{}
	for i := range 12 { // items 12..15 are not in the catalog: no category
		it := event.Item{ID: "i" + strconv.Itoa(i), Category: "c" + strconv.Itoa(i%5), Available: true}
		if err := errors.Join(m.PutItem(ctx, it), r.PutItem(ctx, it)); err != nil {
			t.Fatal(err)
		}
		cat[it.ID] = it
	}
	if withCatalog {
		r.UseCatalog(cat)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	types := []event.Type{event.Click, event.Conversion, event.Impression, event.TypeInvalid}
	var evs []*event.Event
	for i := range 400 {
		ev := &event.Event{
			ID: strconv.Itoa(i), Type: types[rng.IntN(len(types))],
			UserID: "u" + strconv.Itoa(rng.IntN(5)), ItemID: "i" + strconv.Itoa(rng.IntN(16)),
		}
		if i%50 == 0 {
			ev.ItemID = "" // invalid: ignored by both
		}
		evs = append(evs, ev)
	}
	evs = append(evs, nil)
	for i, ev := range evs {
		apply(m, ev)
		if i%3 == 0 { // both single events and batches
			if err := r.Apply(ctx, []*event.Event{ev}); err != nil {
				t.Fatalf("Apply(%d) = %v", i, err)
			}
		}
		if i%3 == 2 {
			if err := r.Apply(ctx, evs[i-1:i+1]); err != nil {
				t.Fatalf("Apply(%d..%d) = %v", i-1, i, err)
			}
		}
	}
	for u := range 6 { // u5 has no activity
		id := "u" + strconv.Itoa(u)
		want, _ := m.Activity(ctx, id)
		got, err := r.Activity(ctx, id)
		if err != nil {
			t.Fatalf("Activity(%s) = %v", id, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Activity(%s) differs from Memory's (-memory +redis):\n%s", id, diff)
		}
		if u < 5 && (len(got.RecentItems) != 4 || len(got.Clicked) != 7 || len(got.RecentCategories) != 3) {
			t.Errorf("Activity(%s) lengths = %d, %d, %d, want the bounds 4, 3, 7 after 400 events",
				id, len(got.RecentItems), len(got.RecentCategories), len(got.Clicked))
		}
	}
}

func TestRedisActivityOrder(t *testing.T) {
	r := newTestRedis(t, RedisConfig{RecentItems: 3, RecentCategories: 2, ClickedItems: 4})
	ctx := context.Background()
	for _, it := range []event.Item{{ID: "a", Category: "x"}, {ID: "b", Category: "y"}, {ID: "c", Category: "x"}, {ID: "d", Category: "z"}} {
		if err := r.PutItem(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	click := func(item string) *event.Event {
		return &event.Event{ID: item, Type: event.Click, UserID: "u", ItemID: item}
	}
	tests := []struct {
		name  string
		items []string
		want  Activity
	}{
		{"first click", []string{"a"}, Activity{RecentItems: []string{"a"}, RecentCategories: []string{"x"}, Clicked: []string{"a"}}},
		{"most recent first", []string{"b", "c"}, Activity{RecentItems: []string{"c", "b", "a"}, RecentCategories: []string{"x", "y"}, Clicked: []string{"c", "b", "a"}}},
		{"repeat moves to front", []string{"a"}, Activity{RecentItems: []string{"a", "c", "b"}, RecentCategories: []string{"x", "y"}, Clicked: []string{"a", "c", "b"}}},
		{"bounded", []string{"d"}, Activity{RecentItems: []string{"d", "a", "c"}, RecentCategories: []string{"z", "x"}, Clicked: []string{"d", "a", "c", "b"}}},
		{"not in catalog: no category", []string{"e"}, Activity{RecentItems: []string{"e", "d", "a"}, RecentCategories: []string{"z", "x"}, Clicked: []string{"e", "d", "a", "c"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, item := range tc.items {
				if err := r.Apply(ctx, []*event.Event{click(item)}); err != nil {
					t.Fatal(err)
				}
			}
			got, err := r.Activity(ctx, "u")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Activity after %v (-want +got):\n%s", tc.items, diff)
			}
		})
	}
}

// TestRedisApplyIdempotent re-applies a batch, and suffixes of it, as an
// ingest consumer does after a failed Apply, and checks nothing changes.
func TestRedisApplyIdempotent(t *testing.T) {
	r := newTestRedis(t, RedisConfig{RecentItems: 5, RecentCategories: 3, ClickedItems: 8})
	ctx := context.Background()
	for i := range 6 {
		if err := r.PutItem(ctx, event.Item{ID: "i" + strconv.Itoa(i), Category: "c" + strconv.Itoa(i%4)}); err != nil {
			t.Fatal(err)
		}
	}
	var evs []*event.Event
	for _, it := range []int{0, 1, 2, 1, 3, 4, 0, 5, 2} {
		evs = append(evs, &event.Event{ID: strconv.Itoa(len(evs)), Type: event.Conversion, UserID: "u", ItemID: "i" + strconv.Itoa(it)})
	}
	if err := r.Apply(ctx, evs); err != nil {
		t.Fatal(err)
	}
	want, err := r.Activity(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	for from := range evs {
		if err := r.Apply(ctx, evs[from:]); err != nil {
			t.Fatal(err)
		}
		got, err := r.Activity(ctx, "u")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Activity after re-applying events %d.. changed (-before +after):\n%s", from, diff)
		}
	}
}

func TestRedisActivityTTL(t *testing.T) {
	r := newTestRedis(t, RedisConfig{ActivityTTL: time.Hour})
	ctx := context.Background()
	if err := r.Apply(ctx, []*event.Event{&event.Event{ID: "e", Type: event.Click, UserID: "u", ItemID: "i"}}); err != nil {
		t.Fatal(err)
	}
	keys := r.activityKeys("u")
	for _, k := range keys[:] {
		if k == keys[1] {
			continue // item i has no category: no category list
		}
		ttl, err := r.c.PTTL(ctx, k).Result()
		if err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
			t.Errorf("PTTL(%s) = %v, %v, want about 1h", k, ttl, err)
		}
	}
}

func TestRedisItems(t *testing.T) {
	// A prefix with glob characters: RangeItems must still match only it.
	r := newTestRedis(t, RedisConfig{KeyPrefix: fmt.Sprintf("sltest[%d]*?:", rand.Uint64())})
	other := newTestRedis(t, RedisConfig{KeyPrefix: fmt.Sprintf("sltest[%d]x?:", rand.Uint64())})
	ctx := context.Background()
	if err := other.PutItem(ctx, event.Item{ID: "foreign", Category: "c"}); err != nil {
		t.Fatal(err)
	}
	changes := make(chan event.Item, 10)
	r.OnItemChange(func(it event.Item) { changes <- it })
	runTail(t, r)
	items := []event.Item{
		{ID: "a", Category: "books", Tags: []string{"new", "x,y"}, Available: true},
		{ID: "b:1", Category: "music"},
		{ID: "c", Category: "books", Tags: []string{}, Available: true},
	}
	for _, it := range items {
		if err := r.PutItem(ctx, it); err != nil {
			t.Fatalf("PutItem(%+v) = %v", it, err)
		}
	}
	items[2].Tags = nil // empty tags read back as nil
	if diff := cmp.Diff(items, receive(t, changes, len(items))); diff != "" {
		t.Errorf("OnItemChange calls (-want +got):\n%s", diff)
	}
	for _, want := range items {
		got, ok, err := r.Item(ctx, want.ID)
		if err != nil || !ok {
			t.Fatalf("Item(%q) = %v, %v", want.ID, ok, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Item(%q) (-want +got):\n%s", want.ID, diff)
		}
	}
	if _, ok, err := r.Item(ctx, "missing"); ok || err != nil {
		t.Errorf("Item(missing) = %v, %v, want false, nil", ok, err)
	}
	if err := r.PutItem(ctx, event.Item{ID: "a", Category: "film"}); err != nil { // replace: count stays
		t.Fatal(err)
	}
	items[0] = event.Item{ID: "a", Category: "film"}
	if _, n, err := r.Counts(ctx); n != 3 || err != nil {
		t.Errorf("Items() = %d, %v, want 3", n, err)
	}
	var ranged []event.Item
	if err := r.RangeItems(ctx, func(it event.Item) bool { ranged = append(ranged, it); return true }); err != nil {
		t.Fatal(err)
	}
	byID := func(a, b event.Item) int { return strings.Compare(a.ID, b.ID) }
	slices.SortFunc(ranged, byID)
	slices.SortFunc(items, byID)
	if diff := cmp.Diff(items, ranged); diff != "" {
		t.Errorf("RangeItems (-want +got):\n%s", diff)
	}
	calls := 0
	if err := r.RangeItems(ctx, func(event.Item) bool { calls++; return false }); err != nil || calls != 1 {
		t.Errorf("RangeItems(stop at once) made %d calls, err %v, want 1, nil", calls, err)
	}
	if err := r.PutItem(ctx, event.Item{ID: "z"}); !errors.Is(err, event.ErrMissingField) {
		t.Errorf("PutItem(no category) = %v, want ErrMissingField", err)
	}
}

func TestRedisFeatures(t *testing.T) {
	r := newTestRedis(t, RedisConfig{})
	ctx := context.Background()
	u := event.User{ID: "u", Segment: "s", UpdatedAt: time.Unix(100, 5).UTC()}
	if err := errors.Join(
		r.PutUser(ctx, u),
		r.PutItem(ctx, event.Item{ID: "i", Category: "c"}),
		r.Apply(ctx, []*event.Event{&event.Event{ID: "e", Type: event.Click, UserID: "u", ItemID: "i"}}),
	); err != nil {
		t.Fatal(err)
	}
	gotU, ok, gotA, err := r.Features(ctx, "u")
	wantA := Activity{RecentItems: []string{"i"}, RecentCategories: []string{"c"}, Clicked: []string{"i"}}
	if err != nil || !ok {
		t.Fatalf("Features(u) = %v, %v", ok, err)
	}
	if diff := cmp.Diff(u, gotU); diff != "" {
		t.Errorf("Features(u) user (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantA, gotA); diff != "" {
		t.Errorf("Features(u) activity (-want +got):\n%s", diff)
	}
	// Activity without a profile: unknown user, activity still returned.
	if err := r.Apply(ctx, []*event.Event{&event.Event{ID: "e2", Type: event.Click, UserID: "anon", ItemID: "i"}}); err != nil {
		t.Fatal(err)
	}
	if _, ok, a, err := r.Features(ctx, "anon"); ok || err != nil || !cmp.Equal(a, wantA) {
		t.Errorf("Features(anon) = %v, %+v, %v, want false, %+v, nil", ok, a, err, wantA)
	}
}

// TestRedisConcurrent runs writers and readers of the same users at once
// (run it with -race) and checks that every read is a whole profile and a
// well-formed activity.
func TestRedisConcurrent(t *testing.T) {
	const bound = 6
	// The serving read timeout (50ms) is not what this test is about: a
	// race-instrumented run on a loaded machine stalls longer than that.
	r := newTestRedis(t, RedisConfig{RecentItems: bound, RecentCategories: bound, ClickedItems: bound, PoolSize: 8, ReadTimeout: 5 * time.Second})
	ctx := context.Background()
	for i := range 10 {
		if err := r.PutItem(ctx, event.Item{ID: "i" + strconv.Itoa(i), Category: "c" + strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				uid := "u" + strconv.Itoa(i%5)
				v := strconv.Itoa(w)
				u := event.User{ID: uid, Segment: v, Region: v, Attrs: map[string]string{"w": v}}
				ev := &event.Event{ID: "e", Type: event.Click, UserID: uid, ItemID: "i" + strconv.Itoa((i+w)%10)}
				if err := errors.Join(r.PutUser(ctx, u), r.Apply(ctx, []*event.Event{ev})); err != nil {
					errs <- err
					return
				}
			}
		})
		wg.Go(func() {
			for i := range 100 {
				u, ok, a, err := r.Features(ctx, "u"+strconv.Itoa(i%5))
				if err != nil {
					errs <- err
					return
				}
				if ok && (u.Segment != u.Region || u.Attrs["w"] != u.Segment) {
					errs <- fmt.Errorf("Features read a torn profile %+v", u)
				}
				for _, l := range [][]string{a.RecentItems, a.RecentCategories, a.Clicked} {
					if len(l) > bound || len(slices.Compact(slices.Sorted(slices.Values(l)))) != len(l) {
						errs <- fmt.Errorf("Features read activity list %v, want distinct and at most %d", l, bound)
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n, _, err := r.Counts(ctx); n != 5 || err != nil {
		t.Errorf("Users() = %d, %v, want 5", n, err)
	}
}

// blockServer makes the test server busy for d with a Lua loop, as a slow
// or overloaded server is; it returns when the loop ends.
func blockServer(t *testing.T, addr string, d time.Duration) {
	c := redis.NewClient(&redis.Options{Addr: addr, ReadTimeout: -1})
	defer c.Close()
	err := c.Eval(context.Background(), `
local t0 = redis.call('TIME')
local start = t0[1] * 1000000 + t0[2]
while true do
  local t = redis.call('TIME')
  if t[1] * 1000000 + t[2] - start > tonumber(ARGV[1]) then return 0 end
end`, nil, d.Microseconds()).Err()
	if err != nil {
		t.Errorf("block server: %v", err)
	}
}

// waitBlocked returns once the server stops answering PING within 20ms.
func waitBlocked(t *testing.T, addr string) {
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	defer c.Close()
	for range 100 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err != nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the server kept answering PING while the blocking script should run")
}

func TestRedisDeadline(t *testing.T) {
	addr := redisAddr(t)
	r := newTestRedis(t, RedisConfig{})
	slow := newTestRedis(t, RedisConfig{ReadTimeout: 20 * time.Millisecond})
	ctx := context.Background()
	if err := errors.Join(r.Ping(ctx), slow.Ping(ctx)); err != nil { // open a connection each
		t.Fatal(err)
	}
	const block = time.Second
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		close(started)
		blockServer(t, addr, block)
	})
	<-started
	waitBlocked(t, addr)
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"ctx deadline 5ms", func() error {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
			defer cancel()
			_, _, _, err := r.Features(ctx, "u")
			return err
		}, context.DeadlineExceeded},
		{"read timeout 20ms", func() error {
			_, _, err := slow.User(ctx, "u")
			return err
		}, context.DeadlineExceeded},
		{"canceled", func() error {
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			_, err := r.Activity(ctx, "u")
			return err
		}, context.Canceled},
		{"apply with deadline", func() error {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
			defer cancel()
			return r.Apply(ctx, []*event.Event{&event.Event{ID: "e", Type: event.Click, UserID: "u", ItemID: "i"}})
		}, context.DeadlineExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := tc.call()
			if took := time.Since(start); took > block/4 {
				t.Errorf("call took %v with the server blocked for %v, want it to give up at its deadline", took, block)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("call = %v, want an error wrapping %v", err, tc.want)
			}
		})
	}
	wg.Wait()
	// The store recovers once the server answers again.
	if _, _, err := r.User(ctx, "u"); err != nil {
		t.Errorf("User after the server recovered = %v, want nil", err)
	}
}

// TestRedisServerDown points stores at a port nobody listens on and at a
// listener that never answers: every call fails quickly and nothing panics.
func TestRedisServerDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	ln.Close()
	mute, err := net.Listen("tcp", "127.0.0.1:0") // accepts (kernel backlog), never replies
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	reg := prometheus.NewPedanticRegistry()
	for _, tc := range []struct {
		name string
		addr string
		reg  prometheus.Registerer
	}{{"refused", closedAddr, reg}, {"mute", mute.Addr().String(), nil}} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewRedis(RedisConfig{Addr: tc.addr, ReadTimeout: 30 * time.Millisecond, Registerer: tc.reg})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			ctx := context.Background()
			calls := map[string]func() error{
				"Ping":     func() error { return r.Ping(ctx) },
				"User":     func() error { _, _, err := r.User(ctx, "u"); return err },
				"Activity": func() error { _, err := r.Activity(ctx, "u"); return err },
				"Features": func() error { _, _, _, err := r.Features(ctx, "u"); return err },
				"PutUser":  func() error { return r.PutUser(ctx, event.User{ID: "u"}) },
				"Apply": func() error {
					return r.Apply(ctx, []*event.Event{&event.Event{ID: "e", Type: event.Click, UserID: "u", ItemID: "i"}})
				},
				"Item":       func() error { _, _, err := r.Item(ctx, "i"); return err },
				"PutItem":    func() error { return r.PutItem(ctx, event.Item{ID: "i", Category: "c"}) },
				"RangeItems": func() error { return r.RangeItems(ctx, func(event.Item) bool { return true }) },
				"Counts":     func() error { _, _, err := r.Counts(ctx); return err },
			}
			for name, call := range calls {
				start := time.Now()
				err := call()
				if err == nil {
					t.Errorf("%s() = nil, want an error", name)
				}
				if took := time.Since(start); took > 500*time.Millisecond {
					t.Errorf("%s() took %v, want a prompt error", name, took)
				}
			}
			if tc.name == "mute" {
				_, _, err := r.User(ctx, "u")
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("User(mute server) = %v, want an error wrapping context.DeadlineExceeded", err)
				}
			}
		})
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var errorsCounted float64
	for _, mf := range mfs {
		if mf.GetName() == "sightline_features_redis_errors_total" {
			for _, m := range mf.GetMetric() {
				errorsCounted += m.GetCounter().GetValue()
			}
		}
	}
	if errorsCounted < 10 {
		t.Errorf("sightline_features_redis_errors_total = %v after 10 failed calls, want >= 10", errorsCounted)
	}
}

// TestRedisScriptReload flushes the server's script cache, as a restart
// does, and checks the writes load their scripts again.
func TestRedisScriptReload(t *testing.T) {
	r := newTestRedis(t, RedisConfig{})
	ctx := context.Background()
	ev := &event.Event{ID: "e", Type: event.Click, UserID: "u", ItemID: "i"}
	for i := range 2 {
		if err := r.c.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(r.Apply(ctx, []*event.Event{ev}), r.PutUser(ctx, event.User{ID: "u"})); err != nil {
			t.Fatalf("round %d: Apply, PutUser after SCRIPT FLUSH = %v", i, err)
		}
	}
	if a, err := r.Activity(ctx, "u"); err != nil || !cmp.Equal(a.Clicked, []string{"i"}) {
		t.Errorf("Activity(u) = %+v, %v, want Clicked [i]", a, err)
	}
}

func BenchmarkRedisFeatures(b *testing.B) {
	r := newTestRedis(b, RedisConfig{})
	ctx := context.Background()
	if err := r.PutUser(ctx, event.User{ID: "u", AgeBucket: "25-34", Segment: "s", Region: "eu", Device: "ios"}); err != nil {
		b.Fatal(err)
	}
	for i := range 60 {
		id := "i" + strconv.Itoa(i)
		if err := errors.Join(r.PutItem(ctx, event.Item{ID: id, Category: "c" + strconv.Itoa(i%9)}),
			r.Apply(ctx, []*event.Event{&event.Event{ID: id, Type: event.Click, UserID: "u", ItemID: id}})); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("pipelined", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, _, err := r.Features(ctx, "u"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("user+activity", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _, err1 := r.User(ctx, "u")
			_, err2 := r.Activity(ctx, "u")
			if err := errors.Join(err1, err2); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestRedisReadBatch: a batch read returns what the single reads return,
// known or not.
func TestRedisReadBatch(t *testing.T) {
	r := newTestRedis(t, RedisConfig{})
	ctx := t.Context()
	if err := r.PutUser(ctx, event.User{ID: "u1", AgeBucket: "25-34", Segment: "new"}); err != nil {
		t.Fatal(err)
	}
	if err := r.PutItem(ctx, event.Item{ID: "i1", Category: "books", Available: true, Tags: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(ctx, []*event.Event{{ID: "e1", Type: event.Click, UserID: "u1", ItemID: "i1", Timestamp: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	users := []string{"u1", "nobody"}
	for i := range 300 { // more than one pipeline chunk
		users = append(users, fmt.Sprint("x", i))
	}
	b, err := r.ReadBatch(ctx, users, []string{"i1", "missing"})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"u1", "nobody"} {
		u, known, act, err := r.Features(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(UserFeatures{User: u, Known: known, RecentCategories: act.RecentCategories}, b.Users[id]); diff != "" {
			t.Errorf("user %s (-single +batch):\n%s", id, diff)
		}
	}
	if len(b.Users) != len(users) {
		t.Errorf("%d users in the batch, want %d", len(b.Users), len(users))
	}
	it, _, _ := r.Item(ctx, "i1")
	if diff := cmp.Diff(map[string]event.Item{"i1": it}, b.Items); diff != "" {
		t.Errorf("items (-single +batch):\n%s", diff)
	}
}
