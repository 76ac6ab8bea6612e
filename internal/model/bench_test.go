package model

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/sightline/sightline/internal/event"
)

// benchModel returns a default-size model trained enough that most scored
// coordinates have non-zero state, and 200 candidate items.
func benchModel(b *testing.B) (*Model, *world, []event.Item) {
	b.Helper()
	m, w := trainedModel(b, Config{}, 20_000)
	return m, w, w.items[:200]
}

func BenchmarkScore200(b *testing.B) {
	m, w, items := benchModel(b)
	x := Context{User: w.users[0], Channel: "app", Hour: 20, RecentCategories: []string{"cat1", "cat2", "cat3"}}
	var p Prepared
	m.Prepare(&x, &p)
	out := make([]float64, len(items))
	b.ReportAllocs()
	for b.Loop() {
		m.Score(&p, items, out)
	}
}

// BenchmarkLogits200Keys is the logits of 200 items hashed from their ids
// and categories, and from the keys an index computed once
// (Context.ItemKeys), in one run.
func BenchmarkLogits200Keys(b *testing.B) {
	m, w, items := benchModel(b)
	keys := make([]ItemKey, len(items))
	for i, it := range items {
		keys[i] = KeyOf(it)
	}
	for _, keyed := range []bool{false, true} {
		b.Run(fmt.Sprintf("keys=%v", keyed), func(b *testing.B) {
			x := Context{User: w.users[0], Channel: "app", Hour: 20, RecentCategories: []string{"cat1", "cat2", "cat3"}}
			if keyed {
				x.ItemKeys = keys
			}
			var p Prepared
			m.Prepare(&x, &p)
			out := make([]float64, len(items))
			for b.Loop() {
				m.Logits(&p, items, out)
			}
		})
	}
}

func BenchmarkScore200Parallel(b *testing.B) {
	m, w, items := benchModel(b)
	x := Context{User: w.users[0], Channel: "app", Hour: 20, RecentCategories: []string{"cat1", "cat2", "cat3"}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var p Prepared
		m.Prepare(&x, &p)
		out := make([]float64, len(items))
		for pb.Next() {
			m.Score(&p, items, out)
		}
	})
}

func BenchmarkPrepare(b *testing.B) {
	m, w, _ := benchModel(b)
	x := Context{User: w.users[0], Channel: "app", Hour: 20, RecentCategories: []string{"cat1", "cat2", "cat3"}}
	var p Prepared
	b.ReportAllocs()
	for b.Loop() {
		m.Prepare(&x, &p)
	}
}

func BenchmarkLearn(b *testing.B) {
	m, w, _ := benchModel(b)
	xs := make([]Context, 1024)
	its := make([]event.Item, len(xs))
	for i := range xs {
		xs[i], its[i], _ = w.example()
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := i % len(xs)
		m.Learn(&xs[k], its[k], Label(i%2))
		i++
	}
}

func TestScoreAllocs(t *testing.T) {
	m, w := trainedModel(t, Config{Bits: 16}, 2000)
	x := Context{User: w.users[0], Channel: "app", Hour: 20, RecentCategories: []string{"cat1", "cat2"}}
	var p Prepared
	m.Prepare(&x, &p)
	items := w.items[:200]
	out := make([]float64, len(items))
	if got := testing.AllocsPerRun(100, func() { m.Score(&p, items, out) }); got != 0 {
		t.Errorf("Score allocs per run = %v, want 0", got)
	}
	if got := testing.AllocsPerRun(100, func() { m.Prepare(&x, &p) }); got != 0 {
		t.Errorf("Prepare (reused) allocs per run = %v, want 0", got)
	}
	if got := testing.AllocsPerRun(100, func() { m.Learn(&x, items[0], Negative) }); got != 0 {
		t.Errorf("Learn allocs per run = %v, want 0", got)
	}
	if got := testing.AllocsPerRun(100, func() { _ = m.Version() }); got != 0 {
		t.Errorf("Version allocs per run = %v, want 0", got)
	}
}

// BenchmarkLogitsColdCache scores 240 items drawn from a catalog of 10,000
// after evicting the caches (a walk over 32 MiB outside the timer), as on a
// node where each request's other work pushes the weight table out of the
// cache between two scorings: the cost is then the item weights' cache
// misses, and how many of them the processor overlaps.
func BenchmarkLogitsColdCache(b *testing.B) {
	m, w, _ := benchModel(b)
	x := Context{User: w.users[0], Channel: "app", Hour: 20, RecentCategories: []string{"cat1", "cat2", "cat3"}}
	var p Prepared
	m.Prepare(&x, &p)
	catalog := make([]event.Item, 10_000)
	for i := range catalog {
		catalog[i] = event.Item{ID: fmt.Sprintf("i%05d", i), Category: w.categories[i%len(w.categories)]}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	sets := make([][]event.Item, 64)
	for i := range sets {
		sets[i] = make([]event.Item, 240)
		for j := range sets[i] {
			sets[i][j] = catalog[rng.IntN(len(catalog))]
		}
	}
	evict := make([]byte, 32<<20)
	out := make([]float64, 240)
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for i := 0; i < len(evict); i += 64 {
			evict[i]++
		}
		b.StartTimer()
		m.Logits(&p, sets[n%len(sets)], out)
		n++
	}
}
