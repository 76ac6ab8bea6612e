package registry

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// The rollout's keys are fenced like the model's publication: once a
// standby took the lease, the stalled trainer can neither move the
// rollout's state nor its routing nor publish a challenger, and what the
// new holder wrote stands.
func TestRolloutFencing(t *testing.T) {
	r := open(t)
	ctx := t.Context()
	const ttl = 300 * time.Millisecond
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	if _, ok, err := r.Rollout(ctx); ok || err != nil {
		t.Fatalf("Rollout before any = %v, %v", ok, err)
	}
	if _, ok, err := r.Routing(ctx); ok || err != nil {
		t.Fatalf("Routing before any = %v, %v", ok, err)
	}
	a, err := r.Acquire(ctx, "trainer-a", ttl)
	if err != nil {
		t.Fatal(err)
	}
	p1, err := r.PublishChallenger(ctx, a, "ftrl-next", []byte("snapshot-1"), now)
	if err != nil || p1.Seq != 1 {
		t.Fatalf("PublishChallenger = %+v, %v", p1, err)
	}
	// The champion's publication is a separate sequence.
	if _, ok, _ := r.Latest(ctx); ok {
		t.Error("a challenger publication shows as the champion's")
	}
	if err := r.PutRollout(ctx, a, []byte(`{"stage":"canary"}`)); err != nil {
		t.Fatal(err)
	}
	if err := r.PutRouting(ctx, a, Routing{Source: "/m/next.snap", Version: "ftrl-next", Seq: p1.Seq, Share: 0.05}); err != nil {
		t.Fatal(err)
	}
	rt, ok, err := r.Routing(ctx)
	if err != nil || !ok || !rt.Active() || rt.Share != 0.05 || rt.Holder != "trainer-a" || rt.Token != a.Token {
		t.Fatalf("Routing = %+v, %v, %v", rt, ok, err)
	}

	// a stalls; b takes over and moves the rollout on.
	time.Sleep(ttl + 100*time.Millisecond)
	b, err := r.Acquire(ctx, "trainer-b", ttl)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := r.PublishChallenger(ctx, b, "ftrl-next-2", []byte("snapshot-2"), now)
	if err != nil || p2.Seq != 2 {
		t.Fatalf("PublishChallenger by b = %+v, %v", p2, err)
	}
	if err := r.PutRollout(ctx, b, []byte(`{"stage":"canary","share":0.25}`)); err != nil {
		t.Fatal(err)
	}
	if err := r.PutRouting(ctx, b, Routing{Version: "ftrl-next", Seq: p2.Seq, Share: 0.25}); err != nil {
		t.Fatal(err)
	}

	// Every write of the stalled a is refused and changes nothing.
	if err := r.PutRollout(ctx, a, []byte(`{"stage":"rolled_back"}`)); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("PutRollout with a stale lease = %v, want ErrLeaseLost", err)
	}
	if err := r.PutRouting(ctx, a, Routing{}); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("PutRouting with a stale lease = %v, want ErrLeaseLost", err)
	}
	if _, err := r.PublishChallenger(ctx, a, "stale", []byte("stale"), now); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("PublishChallenger with a stale lease = %v, want ErrLeaseLost", err)
	}
	st, ok, err := r.Rollout(ctx)
	if err != nil || !ok || string(st) != `{"stage":"canary","share":0.25}` {
		t.Errorf("Rollout after the stale writes = %s, %v, %v; want b's", st, ok, err)
	}
	rt, _, _ = r.Routing(ctx)
	if rt.Share != 0.25 || rt.Holder != "trainer-b" || rt.Seq != p2.Seq {
		t.Errorf("Routing after the stale writes = %+v, want b's at 25%%", rt)
	}
	p, data, ok, err := r.FetchChallenger(ctx)
	if err != nil || !ok || p.Seq != p2.Seq || !bytes.Equal(data, []byte("snapshot-2")) {
		t.Errorf("FetchChallenger = %+v %q, %v, %v; want b's seq 2", p, data, ok, err)
	}
	if lp, ok, err := r.LatestChallenger(ctx); err != nil || !ok || lp.SHA256 != p2.SHA256 {
		t.Errorf("LatestChallenger = %+v, %v, %v", lp, ok, err)
	}

	// A withdrawn routing is not active.
	if err := r.PutRouting(ctx, b, Routing{Version: "ftrl-next", Seq: p2.Seq}); err != nil {
		t.Fatal(err)
	}
	if rt, _, _ := r.Routing(ctx); rt.Active() {
		t.Errorf("withdrawn routing %+v reports active", rt)
	}

	// A corrupted challenger snapshot is refused.
	if err := r.c.HSet(ctx, r.key("challenger"), "data", "tampered").Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := r.FetchChallenger(ctx); !errors.Is(err, ErrCorrupt) {
		t.Errorf("FetchChallenger of a tampered snapshot = %v, want ErrCorrupt", err)
	}
}
