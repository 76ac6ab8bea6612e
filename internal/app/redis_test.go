package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/features"
)

// testRedis returns the address of the test Redis server from
// SIGHTLINE_TEST_REDIS (scripts/test starts one) and a key prefix unique
// to the test, whose keys are deleted when it ends.
func testRedis(t *testing.T) (addr, prefix string) {
	t.Helper()
	addr = os.Getenv("SIGHTLINE_TEST_REDIS")
	if addr == "" {
		t.Skip("SIGHTLINE_TEST_REDIS not set (host:port of a redis-server for tests)")
	}
	prefix = fmt.Sprintf("sightline-test:%s:%d:", t.Name(), time.Now().UnixNano())
	t.Cleanup(func() {
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			c.Del(ctx, keys...)
		}
	})
	return addr, prefix
}

// redisLink forwards TCP connections to a Redis server, so a test can
// make the server hang (blackhole: connections accepted, nothing
// forwarded) or vanish (listener closed) for one node only, while other
// tests keep using the same server.
type redisLink struct {
	ln     net.Listener
	target string

	mu        sync.Mutex
	conns     []net.Conn
	blackhole bool
	wg        sync.WaitGroup
}

func newRedisLink(t *testing.T, target string) *redisLink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &redisLink{ln: ln, target: target}
	l.wg.Go(l.accept)
	t.Cleanup(func() { l.down(); l.wg.Wait() })
	return l
}

func (l *redisLink) addr() string { return l.ln.Addr().String() }

func (l *redisLink) accept() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		l.conns = append(l.conns, c)
		hole := l.blackhole
		l.mu.Unlock()
		if hole {
			continue // held open, never answered
		}
		up, err := net.Dial("tcp", l.target)
		if err != nil {
			c.Close()
			continue
		}
		l.mu.Lock()
		l.conns = append(l.conns, up)
		l.mu.Unlock()
		// A copy ends with an error when the test cuts the link: that is
		// the point of the proxy.
		l.wg.Go(func() { _, _ = io.Copy(up, c); up.Close() })
		l.wg.Go(func() { _, _ = io.Copy(c, up); c.Close() })
	}
}

// hang cuts the open connections and answers no new one.
func (l *redisLink) hang() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.blackhole = true
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

// down closes the listener and every connection: the port refuses.
func (l *redisLink) down() {
	l.ln.Close()
	l.hang()
}

// TestRedisFeatureStore runs a node whose feature store is Redis: imports
// land in Redis, a click reaches the user's activity there and changes the
// next recommendation, another node on the same keys serves the same
// catalog and activity without any import, and a Redis that hangs or goes
// away turns into feature-store fallbacks, never an error response.
func TestRedisFeatureStore(t *testing.T) {
	addr, prefix := testRedis(t)
	link := newRedisLink(t, addr)
	// A budget well above a refused dial's time even under -race on a
	// loaded machine, so "gone" reads as an error and only "hanging" as a
	// timeout.
	cfg := Config{FeatureStore: StoreRedis, RedisAddr: link.addr(), RedisPrefix: prefix, FeatureBudget: 100 * time.Millisecond}
	n := startNode(t, cfg)
	w := smallWorld()
	if err := w.Load(t.Context(), n.c); err != nil {
		t.Fatal(err)
	}
	n.Engine().Index().Refresh()
	if s := getStats(t, n.base); s.Users != 2000 || s.Items != 500 || s.Restore.FeatureSnapshot != "redis" {
		t.Fatalf("after import: users %d, items %d, feature snapshot %q; want 2000, 500, redis", s.Users, s.Items, s.Restore.FeatureSnapshot)
	}
	store, err := features.NewRedis(features.RedisConfig{Addr: addr, KeyPrefix: prefix, ReadTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	u := w.User(3)
	if u2, ok, err := store.User(t.Context(), u.ID); err != nil || !ok || u2.Segment != u.Segment {
		t.Fatalf("Redis User(%s) = %+v, %v, %v; want the imported profile (segment %q)", u.ID, u2, ok, err, u.Segment)
	}
	rec := recommend(t, n.c, u.ID)
	top := slices.IndexFunc(rec.Items, func(it client.ScoredItem) bool { return it.Reason != "explore" })
	if top < 0 {
		t.Fatalf("Recommend(%s) = %v: no ranked item", u.ID, rec.Items)
	}
	clicked := rec.Items[top].ItemID // an explored slot is random: not expected again
	if again := recommend(t, n.c, u.ID); !slices.ContainsFunc(again.Items, func(it client.ScoredItem) bool { return it.ItemID == clicked }) {
		t.Fatalf("Recommend(%s) twice = %v then %v; want the top item %s in both before any click", u.ID, rec.Items, again.Items, clicked)
	}
	ev := client.Event{EventID: "redis-click-1", Type: client.TypeClick, UserID: u.ID, ItemID: clicked, RequestID: rec.RequestID, Channel: "web", Timestamp: time.Now()}
	if res, err := n.c.SendEvents(t.Context(), []client.Event{ev}); err != nil || res.Accepted != 1 {
		t.Fatalf("SendEvents = %+v, %v; want 1 accepted", res, err)
	}
	if err := n.WaitApplied(t.Context()); err != nil {
		t.Fatal(err)
	}
	act, err := store.Activity(t.Context(), u.ID)
	if err != nil || !slices.Contains(act.Clicked, clicked) || !slices.Contains(act.RecentItems, clicked) {
		t.Fatalf("Redis Activity(%s) = %+v, %v; want the clicked item %s in clicked and recent items", u.ID, act, err, clicked)
	}
	if got := recommend(t, n.c, u.ID); slices.ContainsFunc(got.Items, func(it client.ScoredItem) bool { return it.ItemID == clicked }) {
		t.Errorf("Recommend(%s) after the click = %v; want the clicked item %s filtered out", u.ID, got.Items, clicked)
	}

	// Redis is the store of record: a node with an empty data dir on the
	// same keys has the catalog, profiles and activity.
	n2 := startNode(t, cfg)
	if s := getStats(t, n2.base); s.Users != 2000 || s.Items != 500 {
		t.Errorf("second node: users %d, items %d; want 2000 and 500 from Redis", s.Users, s.Items)
	}
	n2.Engine().Index().Refresh()
	if got := recommend(t, n2.c, u.ID); got.Fallback != nil || slices.ContainsFunc(got.Items, func(it client.ScoredItem) bool { return it.ItemID == clicked }) {
		t.Errorf("second node: Recommend(%s) = %+v; want a model answer without the clicked item %s", u.ID, got, clicked)
	}
	if err := n2.stop(); err != nil {
		t.Fatalf("second node stop: %v", err)
	}

	for _, tt := range []struct {
		name   string
		cut    func()
		reason string
	}{
		{"hanging", link.hang, "feature_store_timeout"},
		{"gone", link.down, "feature_store_error"},
	} {
		tt.cut()
		for i := range 5 {
			got := recommend(t, n.c, w.User(10+i).ID)
			if got.Fallback == nil || got.Fallback.Reason != tt.reason {
				t.Errorf("Redis %s: Recommend() fallback = %+v, want reason %s", tt.name, got.Fallback, tt.reason)
			}
		}
	}
	if s := getStats(t, n.base); s.Users != -1 {
		t.Errorf("Redis gone: stats users = %d, want -1 (unknown)", s.Users)
	}
}

// recommend asks for 5 items for user, failing the test on any error
// response.
func recommend(t *testing.T, c *client.Client, user string) *client.Recommendation {
	t.Helper()
	rec, err := c.Recommend(t.Context(), client.RecommendRequest{UserID: user, Count: 5, Context: client.Context{Channel: "web"}})
	if err != nil {
		t.Fatalf("Recommend(%s) = %v; want a response", user, err)
	}
	if len(rec.Items) == 0 {
		t.Fatalf("Recommend(%s) returned no items", user)
	}
	return rec
}
