package evaluate

import (
	"context"
	"testing"

	"github.com/sightline/sightline/internal/decisionlog"
	"github.com/sightline/sightline/internal/evaluate/evaluatetest"
)

// genSource is a Source that draws a world's log as it is read: events
// and decisions come from the same seed, so they match, and a million
// decisions cost no memory to hold (as a streaming file reader).
type genSource struct {
	w    *world
	n    int
	seed uint64
	lp   logging
}

func (g *genSource) Decisions(_ context.Context, fn func(*decisionlog.Decision) error) error {
	var err error
	g.w.generate(g.seed, g.n, g.lp, func(d *decisionlog.Decision, _ []decisionlog.Event) {
		if err == nil {
			err = fn(d)
		}
	})
	return err
}

func (g *genSource) Events(_ context.Context, fn func(*decisionlog.Event) error) error {
	var err error
	g.w.generate(g.seed, g.n, g.lp, func(_ *decisionlog.Decision, evs []decisionlog.Event) {
		for i := range evs {
			if err == nil {
				err = fn(&evs[i])
			}
		}
	})
	return err
}

// benchWorld is a world shaped like a serving node's log: 500 items in 25
// categories, 10 slots, the default pool of 20, exploration among the top
// 10.
func benchWorld() (*world, logging) {
	w := newWorld(1, worldConfig{items: 500, categories: 25, slots: 10, noise: 0.3, positionDecay: 0.9})
	w.pool = 20
	return w, logging{explore: 0.2, top: 10}
}

// BenchmarkGenerate measures drawing the log alone, to subtract from
// BenchmarkEvaluate.
func BenchmarkGenerate(b *testing.B) {
	w, lp := benchWorld()
	src := &genSource{w: w, n: 100_000, lp: lp}
	b.ReportAllocs()
	for b.Loop() {
		var n int
		_ = src.Events(context.Background(), func(*decisionlog.Event) error { n++; return nil })
		_ = src.Decisions(context.Background(), func(*decisionlog.Decision) error { n++; return nil })
	}
}

// BenchmarkEvaluate evaluates logged, popularity and a progressively
// trained ftrl target over a generated log (n decisions per operation; the
// 1M case is the target, run it with -benchtime=1x).
func BenchmarkEvaluate(b *testing.B) {
	for _, bc := range []struct {
		name  string
		n     int
		specs []Spec
	}{
		{"100k/popularity", 100_000, []Spec{{Kind: KindPopularity}}},
		{"100k/three", 100_000, []Spec{{Kind: KindLogged}, {Kind: KindPopularity}, {Kind: KindFTRL}}},
		{"1M/three", 1_000_000, []Spec{{Kind: KindLogged}, {Kind: KindPopularity}, {Kind: KindFTRL}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if bc.n >= 1_000_000 && testing.Short() {
				b.Skip("a million decisions")
			}
			w, lp := benchWorld()
			src := &genSource{w: w, n: bc.n, lp: lp}
			b.ReportAllocs()
			for b.Loop() {
				r, err := Run(context.Background(), src, bc.specs, Config{})
				if err != nil {
					b.Fatal(err)
				}
				if r.Decisions != int64(bc.n) {
					b.Fatalf("Run evaluated %d decisions, want %d", r.Decisions, bc.n)
				}
			}
			b.ReportMetric(float64(bc.n)*float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}

// BenchmarkEvaluateParquet is BenchmarkEvaluate reading the log from
// Parquet files written as the decision log writes them (files of 100,000
// decisions), with the reader's cost included.
func BenchmarkEvaluateParquet(b *testing.B) {
	for _, bc := range []struct {
		name  string
		n     int
		specs []Spec
	}{
		{"100k/three", 100_000, []Spec{{Kind: KindLogged}, {Kind: KindPopularity}, {Kind: KindFTRL}}},
		{"1M/popularity", 1_000_000, []Spec{{Kind: KindPopularity}}},
		{"1M/three", 1_000_000, []Spec{{Kind: KindLogged}, {Kind: KindPopularity}, {Kind: KindFTRL}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if bc.n >= 1_000_000 && testing.Short() {
				b.Skip("a million decisions")
			}
			dir := b.TempDir()
			writeBenchLog(b, dir, bc.n)
			b.ReportAllocs()
			for b.Loop() {
				r, err := Run(context.Background(), DirSource{Dir: dir}, bc.specs, Config{})
				if err != nil {
					b.Fatal(err)
				}
				if r.Decisions != int64(bc.n) {
					b.Fatalf("Run evaluated %d decisions, want %d", r.Decisions, bc.n)
				}
			}
			b.ReportMetric(float64(bc.n)*float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}

// writeBenchLog writes n decisions of benchWorld under dir as Parquet.
func writeBenchLog(b *testing.B, dir string, n int) {
	b.Helper()
	w, lp := benchWorld()
	lw := &evaluatetest.LogWriter{Dir: dir}
	const chunk = 100_000
	ds := make([]decisionlog.Decision, 0, chunk)
	var es []decisionlog.Event
	flush := func() {
		if err := lw.Write(ds, es); err != nil {
			b.Fatal(err)
		}
		ds, es = ds[:0], es[:0]
	}
	w.generate(1, n, lp, func(d *decisionlog.Decision, evs []decisionlog.Event) {
		ds = append(ds, *d)
		es = append(es, evs...)
		if len(ds) == chunk {
			flush()
		}
	})
	flush()
}
