package model

import (
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
