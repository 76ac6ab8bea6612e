package engine

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/event"
)

// mergeTopRef is the plain form of Index.mergeTop: the top k of old ∪
// dirty by score (ties by id), deduplicated, filtered by keep and
// availability.
func mergeTopRef(old []*itemStat, dirty map[*itemStat]struct{}, keep func(*itemStat) bool, k int) []*itemStat {
	seen := map[*itemStat]bool{}
	var out []*itemStat
	for _, s := range slices.Concat(old, slices.Collect(maps.Keys(dirty))) {
		if seen[s] {
			continue
		}
		seen[s] = true
		if s.item.Available && (keep == nil || keep(s)) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *itemStat) int {
		if r := cmpDesc(a.score, b.score); r != 0 {
			return r
		}
		if a.item.ID < b.item.ID {
			return -1
		}
		if a.item.ID > b.item.ID {
			return 1
		}
		return 0
	})
	return out[:min(k, len(out))]
}

// TestRefreshMergesLikeTheReference drives an index with random catalog
// changes (new items, items moving category, items withdrawn and back)
// and clicks, and checks after every refresh that the global and
// per-category lists are what the plain merge of the previous lists and
// the changed items gives: Refresh merges each category's changed items
// only, and must still drop an item that left the category.
func TestRefreshMergesLikeTheReference(t *testing.T) {
	ix := NewIndex(IndexConfig{Global: 20, PerCategory: 5})
	rng := rand.New(rand.NewPCG(1, 2))
	cats := []string{"a", "b", "c", "d", "e", "f"}
	id := func(i int) string { return fmt.Sprintf("i%03d", i) }
	for i := range 200 {
		ix.PutItem(event.Item{ID: id(i), Category: cats[i%len(cats)], Available: true})
	}
	refGlobal := []*itemStat(nil)
	refByCat := map[string][]*itemStat{}
	now := time.Now()
	for round := range 300 {
		for range rng.IntN(40) {
			i := rng.IntN(220) // some ids are not in the catalog yet
			if rng.IntN(10) == 0 {
				ix.PutItem(event.Item{ID: id(i), Category: cats[rng.IntN(len(cats))], Available: rng.IntN(5) > 0})
			} else {
				ix.Observe(&event.Event{Type: event.Click, ItemID: id(i), Timestamp: now}, "", []string{id(rng.IntN(200))})
			}
		}
		ix.mu.Lock()
		dirty := maps.Clone(ix.dirty)
		cats := slices.Collect(maps.Keys(ix.dirtyCats))
		ix.mu.Unlock()
		refGlobal = mergeTopRef(refGlobal, dirty, nil, ix.cfg.Global)
		for _, c := range cats {
			l := mergeTopRef(refByCat[c], dirty, func(s *itemStat) bool { return s.item.Category == c }, ix.cfg.PerCategory)
			if len(l) == 0 {
				delete(refByCat, c)
			} else {
				refByCat[c] = l
			}
		}
		ix.Refresh()
		ids := func(l []*itemStat) []string {
			var out []string
			for _, s := range l {
				out = append(out, s.item.ID)
			}
			return out
		}
		ix.mu.Lock()
		if diff := cmp.Diff(ids(refGlobal), ids(ix.global)); diff != "" {
			t.Fatalf("round %d: global list (-reference +Refresh):\n%s", round, diff)
		}
		for c := range refByCat {
			if diff := cmp.Diff(ids(refByCat[c]), ids(ix.byCat[c])); diff != "" {
				t.Fatalf("round %d: category %s (-reference +Refresh):\n%s", round, c, diff)
			}
		}
		if len(ix.byCat) != len(refByCat) {
			t.Fatalf("round %d: %d category lists, want %d", round, len(ix.byCat), len(refByCat))
		}
		ix.mu.Unlock()
	}
	// Co-visitation lists: the CoVisit strongest, the strongest first, ties
	// by id.
	v := ix.view.Load()
	ix.mu.Lock()
	defer ix.mu.Unlock()
	lists := 0
	for id, s := range ix.items {
		if len(s.covis) == 0 {
			continue
		}
		lists++
		type kv struct {
			id string
			w  float64
		}
		var want []string
		all := []kv{}
		for o, w := range s.covis {
			all = append(all, kv{o.item.ID, w})
		}
		slices.SortFunc(all, func(a, b kv) int {
			if r := cmpDesc(a.w, b.w); r != 0 {
				return r
			}
			return strings.Compare(a.id, b.id)
		})
		for _, e := range all[:min(len(all), ix.cfg.CoVisit)] {
			want = append(want, e.id)
		}
		var got []string
		for _, e := range v.covis[id] {
			got = append(got, e.item.ID)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("co-visits of %s (-want +got):\n%s", id, diff)
		}
	}
	if lists == 0 {
		t.Error("no item has co-visits: the test does not exercise them")
	}
}

// BenchmarkRefresh measures one refresh of a 10,000-item index in 50
// categories after 1,000 clicks, what 100,000 events/s (one in twenty a
// click) bring between two refreshes at the default 200ms.
func BenchmarkRefresh(b *testing.B) {
	ix := NewIndex(IndexConfig{})
	for i := range 10_000 {
		ix.PutItem(event.Item{ID: fmt.Sprintf("i%05d", i), Category: fmt.Sprintf("c%02d", i%50), Available: true})
	}
	ix.Refresh()
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for range 1000 {
			now = now.Add(time.Millisecond)
			ix.Observe(&event.Event{Type: event.Click, ItemID: fmt.Sprintf("i%05d", rng.IntN(10_000)), Timestamp: now}, "", []string{fmt.Sprintf("i%05d", rng.IntN(10_000))})
		}
		b.StartTimer()
		ix.Refresh()
	}
}
