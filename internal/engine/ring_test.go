package engine

import (
	"fmt"
	"hash/maphash"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
)

// testPool is the pool of candidates the test decisions log: a node's
// default (app.DecisionStoreConfig.Pool).
const testPool = 20

func ringDecision(id string, items int) (*Decision, *model.Context) {
	age, seg := "25-34", "new"
	d := &Decision{
		RequestID: id, Time: time.Unix(1700000000, 123456789), UserHash: "u-" + id, KnownUser: true,
		Segment: seg, Channel: "web", Variant: "ftrl", ModelVersion: "ftrl-42",
		Features:   map[string]*string{"user_age_bucket": &age, "user_segment": &seg, "user_region": nil},
		Candidates: 200, Confidence: 0.37, Fallback: ReasonLowConfidence, FallbackDetail: "max score 0.001",
		Stages:   []StageTiming{{Stage: StageFeatures, Duration: 3 * time.Microsecond}, {Stage: StageInference, Duration: time.Millisecond, Error: "timeout"}},
		Duration: 2 * time.Millisecond, TraceID: strings.Repeat("ab", 16), SpanID: strings.Repeat("cd", 8), TraceSampled: true,
	}
	for i := range items {
		d.Items = append(d.Items, Item{ItemID: fmt.Sprintf("%s-i%d", id, i), Category: fmt.Sprintf("c%d", i%3), Score: float64(i) / 10, Reason: "model", Propensity: 0.9})
	}
	// The pool a node logs by default: it makes the record larger than
	// the 1 KiB stack buffers of joined and trace.
	d.Eligible, d.Explore = 180, 0.05
	for i := range testPool {
		d.Pool = append(d.Pool, PoolItem{ItemID: fmt.Sprintf("%s-p%d", id, i), Category: fmt.Sprintf("c%d", i%3), Score: 0.5 / float64(i+1), Popularity: 0.25})
	}
	x := &model.Context{User: event.User{AgeBucket: age, Segment: seg, Region: "eu", Device: "ios"}, Channel: "web", Hour: 17, RecentCategories: []string{"c1", "c2"}}
	return d, x
}

func TestRingRoundTrip(t *testing.T) {
	r := newRing(8, testPool)
	d, x := ringDecision("r1", 10)
	r.put(d.RequestID, appendRecord(nil, d, x))
	gotD, gotX, ok := r.get("r1")
	if !ok {
		t.Fatal("get(r1) not found")
	}
	if diff := cmp.Diff(d, gotD, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("get(r1) decision (-put +got):\n%s", diff)
	}
	if diff := cmp.Diff(x, gotX, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("get(r1) context (-put +got):\n%s", diff)
	}
	j, ok := r.joined("r1", "r1-i4")
	want := Join{Context: *x, Item: event.Item{ID: "r1-i4", Category: "c1", Available: true}, Variant: "ftrl"}
	want.Context.Slot = 5 // shown fifth
	if !ok {
		t.Fatal("joined(r1, r1-i4) not found")
	}
	if diff := cmp.Diff(want, j, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("joined(r1, r1-i4) (-want +got):\n%s", diff)
	}
	if _, ok := r.joined("r1", "not-shown"); ok {
		t.Error("joined(r1, not-shown) found an item the decision did not show")
	}
	tr, ok := r.trace("r1")
	wantTrace := DecisionTrace{Sampled: true, Fallback: ReasonLowConfidence}
	copy(wantTrace.TraceID[:], strings.Repeat("\xab", 16))
	copy(wantTrace.SpanID[:], strings.Repeat("\xcd", 8))
	if !ok || tr != wantTrace {
		t.Errorf("trace(r1) = %+v, %v, want %+v", tr, ok, wantTrace)
	}
	if allocs := testing.AllocsPerRun(50, func() { r.trace("r1") }); allocs > 0 {
		t.Errorf("trace allocates %v times per call, want 0", allocs)
	}
	if _, _, ok := r.get("r2"); ok {
		t.Error("get(r2) found a decision never put")
	}
}

func TestRingEviction(t *testing.T) {
	t.Run("by count", func(t *testing.T) {
		r := newRing(4, testPool)
		for i := range 6 {
			d, x := ringDecision(fmt.Sprint("r", i), 3)
			r.put(d.RequestID, appendRecord(nil, d, x))
		}
		for i := range 6 {
			_, _, ok := r.get(fmt.Sprint("r", i))
			if want := i >= 2; ok != want {
				t.Errorf("get(r%d) found = %v, want %v", i, ok, want)
			}
		}
	})
	t.Run("by bytes", func(t *testing.T) {
		// Records of 100 items are far larger than the arena's share per
		// slot: newer ones overwrite the bytes of older ones before their
		// slots are reused, and those must read as gone, not as garbage.
		r := newRing(16, testPool)
		var ids []string
		for i := range 12 {
			id := fmt.Sprint("big", i)
			d, x := ringDecision(id, 100)
			r.put(d.RequestID, appendRecord(nil, d, x))
			ids = append(ids, id)
		}
		found := 0
		for _, id := range ids {
			d, _, ok := r.get(id)
			if !ok {
				continue
			}
			found++
			if d.RequestID != id || len(d.Items) != 100 || d.Items[99].ItemID != id+"-i99" {
				t.Errorf("get(%s) = %s with %d items, want the record put", id, d.RequestID, len(d.Items))
			}
		}
		if found == 0 || found == len(ids) {
			t.Errorf("%d of %d big records kept, want the newest only (arena %d bytes)", found, len(ids), len(r.shards[0].arena))
		}
		if _, _, ok := r.get(ids[len(ids)-1]); !ok {
			t.Error("the newest record is gone")
		}
	})
	t.Run("larger than the arena", func(t *testing.T) {
		r := newRing(1, testPool)
		d, x := ringDecision("huge", 100)
		r.put(d.RequestID, appendRecord(nil, d, x))
		if _, _, ok := r.get("huge"); ok {
			t.Error("a record larger than the arena was kept")
		}
	})
	t.Run("stale index entry", func(t *testing.T) {
		// An index entry whose slot now holds another request (as after a
		// hash collision) must not return that other request.
		r := newRing(4, testPool)
		d, x := ringDecision("a", 2)
		r.put(d.RequestID, appendRecord(nil, d, x))
		r.shards[0].byID.set(maphash.String(r.seed, "b"), 0)
		if _, _, ok := r.get("b"); ok {
			t.Error("get(b) returned the record of a")
		}
	})

	t.Run("sharded", func(t *testing.T) {
		// Each shard evicts its own oldest records: of 3n decisions put in
		// a ring of n, the newest n/2 are all kept, the oldest n all gone,
		// and no more than n found.
		const n = 8 * minShardSlots
		r := newRing(n, testPool)
		if len(r.shards) < 4 {
			t.Fatalf("a ring of %d slots has %d shards, want at least 4", n, len(r.shards))
		}
		d, x := ringDecision("s", 1)
		for i := range 3 * n {
			d.RequestID = fmt.Sprint("s", i)
			r.put(d.RequestID, appendRecord(nil, d, x))
		}
		found := 0
		for i := range 3 * n {
			_, ok := r.trace(fmt.Sprint("s", i))
			switch {
			case ok && i < n:
				t.Errorf("s%d of the oldest third is still found", i)
			case !ok && i >= 3*n-n/2:
				t.Errorf("s%d of the newest n/2 is gone", i)
			}
			if ok {
				found++
			}
		}
		if found > n {
			t.Errorf("%d records found in a ring of %d", found, n)
		}
	})
}

// TestRingWrappedRecord: a record whose bytes wrap around the end of its
// shard's arena is read from a copy, not in place; joined and trace find
// it like any other.
func TestRingWrappedRecord(t *testing.T) {
	d1, x := ringDecision("r1", 10)
	rec := appendRecord(nil, d1, x)
	// One shard whose arena holds a record and a half: the second record
	// wraps around the arena's end.
	r := newRingShards(4, 1, testPool)
	s := &r.shards[0]
	s.arena = make([]byte, len(rec)*3/2)
	r.put("r1", rec)
	d2, _ := ringDecision("r2", 10)
	r.put("r2", appendRecord(nil, d2, x))
	if off := s.slots[1].pos % uint64(len(s.arena)); int(off)+int(s.slots[1].n) <= len(s.arena) {
		t.Fatalf("r2 at %d+%d does not wrap an arena of %d", off, s.slots[1].n, len(s.arena))
	}
	j, ok := r.joined("r2", "r2-i4")
	if !ok || j.Item.Category != "c1" || j.Context.Slot != 5 || j.Variant != "ftrl" {
		t.Errorf("joined(r2, r2-i4) = %+v, %v, want item of c1 in slot 5 of ftrl", j, ok)
	}
	if tr, ok := r.trace("r2"); !ok || tr.Fallback != ReasonLowConfidence || !tr.Sampled {
		t.Errorf("trace(r2) = %+v, %v, want the low-confidence fallback, sampled", tr, ok)
	}
	if _, ok := r.joined("r1", "r1-i4"); ok {
		t.Error("joined(r1) found a record r2 overwrote")
	}
}

func TestRingJoinedAllocs(t *testing.T) {
	r := newRing(64, testPool)
	d, x := ringDecision("r1", 10)
	r.put(d.RequestID, appendRecord(nil, d, x))
	r.joined("r1", "r1-i3") // warm the intern table
	allocs := testing.AllocsPerRun(100, func() {
		if _, ok := r.joined("r1", "r1-i3"); !ok {
			t.Fatal("joined not found")
		}
	})
	// One allocation: the recent-categories slice of the context.
	if allocs > 1 {
		t.Errorf("joined allocates %v times per call, want at most 1", allocs)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	d, x := ringDecision("seed", 3)
	f.Add(appendRecord(nil, d, x))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(_ *testing.T, b []byte) {
		decodeRecord(b) // must not panic on any input
	})
}

func BenchmarkRingPut(b *testing.B) {
	r := newRing(50_000, testPool)
	d, x := ringDecision("bench", 10)
	b.ReportAllocs()
	for b.Loop() {
		r.put(d.RequestID, appendRecord(nil, d, x))
	}
}

// BenchmarkRingPutParallel stores decisions from every P at once, in a
// ring of one shard (one lock, as before issue 16's second pass) and in the
// sharded ring the engine uses.
func BenchmarkRingPutParallel(b *testing.B) {
	d, x := ringDecision("bench", 10)
	for _, k := range []int{1, len(newRing(50_000, testPool).shards)} {
		b.Run(fmt.Sprint("shards=", k), func(b *testing.B) {
			r := newRingShards(50_000, k, testPool)
			var seq atomic.Uint64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				d := *d
				var rec, id []byte
				for pb.Next() {
					id = strconv.AppendUint(append(id[:0], "req-"...), seq.Add(1), 10)
					d.RequestID = string(id)
					rec = appendRecord(rec[:0], &d, x)
					r.put(d.RequestID, rec)
				}
			})
		})
	}
}

func BenchmarkRingJoined(b *testing.B) {
	r := newRing(50_000, testPool)
	d, x := ringDecision("bench", 10)
	r.put(d.RequestID, appendRecord(nil, d, x))
	b.ReportAllocs()
	for b.Loop() {
		r.joined("bench", "bench-i7")
	}
}

// BenchmarkRingPutIDs stores one encoded record under ever new request ids,
// as the engine does: each put indexes its id and evicts the oldest
// record's, which BenchmarkRingPut, storing one id again and again, does not.
func BenchmarkRingPutIDs(b *testing.B) {
	r := newRing(50_000, testPool)
	d, x := ringDecision("bench", 10)
	rec := appendRecord(nil, d, x)
	ids := make([]string, 200_000)
	for i := range ids {
		ids[i] = "req-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.put(ids[i%len(ids)], rec)
	}
}
