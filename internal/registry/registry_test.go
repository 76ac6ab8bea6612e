package registry

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
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
