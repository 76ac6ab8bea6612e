package engine

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// TestRingEraseUser fills a ring whose arena wraps with the decisions of
// three users and erases one: its decisions made up to the erasure are no
// longer found and their bytes are gone from the arena, a later decision of
// the same user and the other users' decisions are kept, and erasing again
// drops nothing. The ring has four shards of two chunks each.
func TestRingEraseUser(t *testing.T) {
	const shards = 4
	r := newRingShards(shards*3*eraseChunk/2, shards, testPool)
	t0 := time.Unix(1700000000, 0)
	users := []string{"u_alice", "u_bob", "u_carol"}
	var ids []string
	for i := range shards * 3 * eraseChunk { // the arenas wrap: half of them evicted
		d, x := ringDecision(fmt.Sprintf("req-%d", i), 3)
		d.UserHash = users[i%3]
		d.Time = t0.Add(time.Duration(i) * time.Millisecond)
		r.put(d.RequestID, appendRecord(nil, d, x))
		ids = append(ids, d.RequestID)
	}
	kept := func(user string) (n int) {
		for i, id := range ids {
			if d, _, ok := r.get(id); ok {
				if users[i%3] != d.UserHash {
					t.Fatalf("get(%s).UserHash = %s, want %s", id, d.UserHash, users[i%3])
				}
				if d.UserHash == user {
					n++
				}
			}
		}
		return n
	}
	at := t0.Add(time.Duration(len(ids)) * time.Millisecond)
	// A decision of bob after the erasure: kept. It evicts the oldest
	// record of its shard, which may be one of bob's: count after it.
	d, x := ringDecision("req-after", 3)
	d.UserHash, d.Time = "u_bob", at.Add(time.Millisecond)
	r.put(d.RequestID, appendRecord(nil, d, x))
	before := kept("u_bob")
	if before == 0 {
		t.Fatal("no decision of u_bob in the ring before the erasure")
	}

	aliceBefore := kept("u_alice")
	if n := r.eraseUser("u_bob", at); n != before {
		t.Errorf("eraseUser(u_bob) = %d, want the %d decisions of u_bob in the ring", n, before)
	}
	if n := kept("u_bob"); n != 0 {
		t.Errorf("after eraseUser(u_bob): %d of its decisions still found", n)
	}
	if _, _, ok := r.get("req-after"); !ok {
		t.Error("the decision of u_bob made after the erasure was dropped; want it kept")
	}
	if n := kept("u_alice"); n != aliceBefore {
		t.Errorf("after eraseUser(u_bob): %d decisions of u_alice, want %d", n, aliceBefore)
	}
	inArenas := 0
	for i := range r.shards {
		inArenas += bytes.Count(r.shards[i].arena, []byte("u_bob"))
	}
	if inArenas != 1 {
		t.Errorf("the arenas hold u_bob %d times after the erasure, want once (the decision after it)", inArenas)
	}
	if n := r.eraseUser("u_bob", at); n != 0 {
		t.Errorf("eraseUser(u_bob) again = %d, want 0", n)
	}
	if n := (&Ring{r: r}).EraseUser("u_nobody", at); n != 0 {
		t.Errorf("EraseUser(u_nobody) = %d, want 0", n)
	}
}
