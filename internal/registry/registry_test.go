package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"sync"
	"testing"
	"time"
)

// open returns a registry on the test Redis under a prefix of its own.
func open(t *testing.T) *Registry {
	t.Helper()
	addr := os.Getenv("SIGHTLINE_TEST_REDIS")
	if addr == "" {
		t.Skip("SIGHTLINE_TEST_REDIS not set (host:port of a redis-server for tests)")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	r, err := Open(Config{Addr: addr, Prefix: "test-registry-" + hex.EncodeToString(b) + ":"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestLease(t *testing.T) {
	r := open(t)
	ctx := t.Context()
	const ttl = 300 * time.Millisecond
	a, err := r.Acquire(ctx, "trainer-a", ttl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Acquire(ctx, "trainer-b", ttl); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("Acquire by b while a holds = %v, want ErrLeaseHeld", err)
	}
	if h, _ := r.Holder(ctx); h != "trainer-a" {
		t.Errorf("Holder = %q, want trainer-a", h)
	}
	if err := r.Renew(ctx, a, ttl); err != nil {
		t.Fatalf("Renew of the held lease = %v", err)
	}
	// a stalls past its TTL; b takes over with a larger token.
	time.Sleep(ttl + 100*time.Millisecond)
	b, err := r.Acquire(ctx, "trainer-b", ttl)
	if err != nil {
		t.Fatalf("Acquire after the TTL = %v", err)
	}
	if b.Token <= a.Token {
		t.Errorf("tokens a=%d b=%d, want b's larger", a.Token, b.Token)
	}
	if err := r.Renew(ctx, a, ttl); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Renew by the stalled holder = %v, want ErrLeaseLost", err)
	}
	if _, err := r.Publish(ctx, a, "v-stale", []byte("stale"), time.Now()); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Publish by the stalled holder = %v, want ErrLeaseLost", err)
	}
	if err := r.PutState(ctx, a, "quality", []byte(`{}`)); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("PutState by the stalled holder = %v, want ErrLeaseLost", err)
	}
	if err := r.Release(ctx, a); err != nil { // not held: nothing happens
		t.Fatal(err)
	}
	if h, _ := r.Holder(ctx); h != "trainer-b" {
		t.Errorf("Holder after a stale release = %q, want trainer-b", h)
	}
	if err := r.Release(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Acquire(ctx, "trainer-a", ttl); err != nil {
		t.Errorf("Acquire after b released = %v, want it free", err)
	}
}

func TestPublishFetch(t *testing.T) {
	r := open(t)
	ctx := t.Context()
	if _, ok, err := r.Latest(ctx); ok || err != nil {
		t.Fatalf("Latest before any publication = %v, %v; want none", ok, err)
	}
	if _, _, ok, err := r.Fetch(ctx); ok || err != nil {
		t.Fatalf("Fetch before any publication = %v, %v; want none", ok, err)
	}
	l, err := r.Acquire(ctx, "trainer-a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{0, 1, 2, 255}, 1<<16) // binary-safe
	p1, err := r.Publish(ctx, l, "ftrl-v1.0", data, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p2, err := r.Publish(ctx, l, "ftrl-v1.1", data[:100], time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if p2.Seq != p1.Seq+1 {
		t.Errorf("seqs %d then %d, want consecutive", p1.Seq, p2.Seq)
	}
	latest, ok, err := r.Latest(ctx)
	if err != nil || !ok || latest.Seq != p2.Seq || latest.Version != "ftrl-v1.1" || latest.Holder != "trainer-a" {
		t.Errorf("Latest = %+v, %v, %v; want seq %d version ftrl-v1.1", latest, ok, err, p2.Seq)
	}
	p, got, ok, err := r.Fetch(ctx)
	if err != nil || !ok || p.Seq != p2.Seq || !bytes.Equal(got, data[:100]) {
		t.Fatalf("Fetch = %+v, %d bytes, %v, %v; want the second publication", p, len(got), ok, err)
	}
	// A snapshot damaged in Redis is refused, not loaded.
	if err := r.c.HSet(ctx, r.key("model"), "data", "garbage").Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := r.Fetch(ctx); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Fetch of a damaged snapshot = %v, want ErrCorrupt", err)
	}
}

func TestState(t *testing.T) {
	r := open(t)
	ctx := t.Context()
	if _, ok, err := r.State(ctx, "quality"); ok || err != nil {
		t.Fatalf("State before any = %v, %v", ok, err)
	}
	l, err := r.Acquire(ctx, "trainer-a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.PutState(ctx, l, "quality", []byte(`{"ctr":0.1}`)); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := r.State(ctx, "quality"); !ok || err != nil || string(v) != `{"ctr":0.1}` {
		t.Errorf("State = %q, %v, %v", v, ok, err)
	}
}

// TestLead: one of two campaigners leads at a time; when the leader's
// function returns, the lease is released and the other takes over
// without waiting for the TTL; a leader whose lease is taken from it sees
// its context canceled with ErrLeaseLost.
func TestLead(t *testing.T) {
	r := open(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const ttl = 600 * time.Millisecond
	var mu sync.Mutex
	leadingNow := map[string]bool{}
	both := false
	step := make(chan string, 4)
	lead := func(name string) {
		r.Lead(ctx, name, ttl, func(lctx context.Context, _ Lease) {
			mu.Lock()
			both = both || len(leadingNow) > 0
			leadingNow[name] = true
			mu.Unlock()
			step <- name
			select {
			case <-lctx.Done():
			case <-time.After(300 * time.Millisecond): // lead a while, then step down
			}
			mu.Lock()
			delete(leadingNow, name)
			mu.Unlock()
		}, nil)
	}
	go lead("a")
	go lead("b")
	first := <-step
	second := <-step
	if first == second {
		t.Errorf("leaders %s then %s: want the other to take over when the first stepped down", first, second)
	}
	cancel()
	mu.Lock()
	defer mu.Unlock()
	if both {
		t.Error("two campaigners led at once")
	}
}

func TestLeadLost(t *testing.T) {
	r := open(t)
	const ttl = 300 * time.Millisecond
	lost := make(chan error, 1)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go r.Lead(ctx, "a", ttl, func(lctx context.Context, _ Lease) {
		// Another node steals the lease (as after a long pause of a).
		if err := r.c.Set(lctx, r.key("lease"), "b|999", time.Minute).Err(); err != nil {
			lost <- err
			return
		}
		<-lctx.Done()
		lost <- context.Cause(lctx)
	}, nil)
	select {
	case err := <-lost:
		if !errors.Is(err, ErrLeaseLost) {
			t.Errorf("leader's context ended with %v, want ErrLeaseLost", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("leader not told it lost the lease")
	}
}

// TestFollow: the follower gets each new publication once, skips the one
// it started from, and retries one its function failed.
func TestFollow(t *testing.T) {
	r := open(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	l, err := r.Acquire(ctx, "trainer", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	p1, err := r.Publish(ctx, l, "v1", []byte("one"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	failOnce := true
	go r.Follow(ctx, 10*time.Millisecond, &p1, func(p Publication, data []byte) error {
		if string(data) == "two" && failOnce {
			failOnce = false
			return errors.New("load failed")
		}
		got <- p.Version + "=" + string(data)
		return nil
	}, nil)
	if _, err := r.Publish(ctx, l, "v2", []byte("two"), time.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != "v2=two" {
			t.Errorf("followed %s, want v2=two (v1 was where it started)", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("publication v2 not followed")
	}
	select {
	case v := <-got:
		t.Errorf("followed %s again", v)
	case <-time.After(100 * time.Millisecond):
	}
}
