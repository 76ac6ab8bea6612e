package evaluate

import (
	"context"
	"encoding/json"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/decisionlog"
	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
)

func run(t *testing.T, ds []decisionlog.Decision, es []decisionlog.Event, specs []Spec, cfg Config) *Report {
	t.Helper()
	r, err := Run(context.Background(), &MemorySource{DecisionRows: ds, EventRows: es}, specs, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Fatalf("the report does not encode as JSON (a NaN?): %v", err)
	}
	return r
}

func popularityScore(w *world) func(c, i int) float64 {
	return func(_, i int) float64 { return w.items[i].popularity }
}

func TestLoggedEqualsLoggedCTR(t *testing.T) {
	w := newWorld(1, worldConfig{items: 30, categories: 5, slots: 4, noise: 0.3, positionDecay: 0.8})
	for _, lp := range []logging{{explore: 0.2, top: 5}, {explore: 0}, {explore: 0.1, popularity: true}} {
		ds, es := w.log(3, 3000, lp)
		r := run(t, ds, es, []Spec{{Kind: KindLogged}}, Config{Groups: 500})
		p := r.Policies[0]
		for _, e := range p.Estimates {
			if e.CTR == nil || e.CTR.Value != r.Logged.CTR.Value && math.Abs(e.CTR.Value-r.Logged.CTR.Value) > 1e-12 {
				t.Errorf("%+v: logged %s CTR = %v, want the logged CTR %v", lp, e.Estimator, e.CTR, r.Logged.CTR.Value)
			}
		}
		if got := p.Estimate(EstimatorIPS).CTR.Value; got != r.Logged.CTR.Value {
			t.Errorf("%+v: logged IPS CTR = %v, want exactly %v", lp, got, r.Logged.CTR.Value)
		}
		if got, want := p.Estimate(EstimatorDR).ClicksPerDecision.Value, r.Logged.ClicksPerDecision.Value; math.Abs(got-want) > 1e-12 {
			t.Errorf("%+v: logged DR clicks per decision = %v, want %v", lp, got, want)
		}
		if !p.Trustworthy || p.Diagnostics.ESSShare != 1 || p.Diagnostics.Unsupported != 0 {
			t.Errorf("%+v: logged diagnostics = %+v trustworthy %v, want ESS = slots, nothing unsupported, trustworthy", lp, p.Diagnostics, p.Trustworthy)
		}
		for k, pos := range p.Positions {
			if got := pos.Estimate(EstimatorSNIPS).CTR.Value; math.Abs(got-r.Logged.Positions[k].CTR) > 1e-12 {
				t.Errorf("%+v: position %d SNIPS = %v, want the logged %v", lp, k+1, got, r.Logged.Positions[k].CTR)
			}
		}
	}
}

// TestCoverage checks, over many seeds of a world whose truth is known,
// that the intervals of every estimator cover the target's true CTR in
// most runs, for popularity and for a model snapshot target.
func TestCoverage(t *testing.T) {
	if testing.Short() {
		t.Skip("many evaluation runs")
	}
	const seeds = 20
	w := newWorld(7, worldConfig{items: 30, categories: 5, slots: 3, noise: 0.3, positionDecay: 0.8})
	snap, scores := trainedSnapshot(t, w)
	for _, tc := range []struct {
		name  string
		spec  Spec
		score func(c, i int) float64
	}{
		{"popularity", Spec{Kind: KindPopularity}, popularityScore(w)},
		{"snapshot", Spec{Kind: KindSnapshot, Path: snap}, func(c, i int) float64 { return scores[c][i] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			truth, perPos := w.truth(tc.score)
			truth1 := perPos[0]
			covered := map[string]int{}
			mean := map[string]float64{}
			for seed := range uint64(seeds) {
				ds, es := w.log(100+seed, 4000, logging{explore: 0.5})
				r := run(t, ds, es, []Spec{tc.spec}, Config{Seed: seed, Groups: 500, RecentSlots: -1})
				p := r.Policies[0]
				if !p.Trustworthy {
					t.Errorf("seed %d: not trustworthy (%v, %+v), want trustworthy with full support", seed, p.Reasons, p.Diagnostics)
				}
				for _, e := range p.Estimates {
					if e.CTR != nil && e.CTR.Contains(truth) {
						covered[e.Estimator]++
					}
					mean[e.Estimator] += e.CTR.Value / seeds
					if e := p.Positions[0].Estimate(e.Estimator); e.CTR != nil && e.CTR.Contains(truth1) {
						covered[e.Estimator+"@1"]++
					}
				}
			}
			t.Logf("true CTR %.4f; runs of %d covering it: %v; mean estimates %v", truth, seeds, covered, mean)
			for _, name := range []string{EstimatorIPS, EstimatorSNIPS, EstimatorDR} {
				if covered[name] < seeds*8/10 {
					t.Errorf("%s interval covered the true CTR %.4f in %d of %d runs, want at least 80%%", name, truth, covered[name], seeds)
				}
				if covered[name+"@1"] < seeds*8/10 {
					t.Errorf("%s interval at position 1 covered its true CTR %.4f in %d of %d runs, want at least 80%%", name, truth1, covered[name+"@1"], seeds)
				}
				if m := mean[name]; math.Abs(m-truth) > 0.1*truth {
					t.Errorf("%s estimates average %.4f over %d logs, want within 10%% of the true %.4f", name, m, seeds, truth)
				}
			}
		})
	}
}

// trainedSnapshot trains a model on the world's true click probabilities,
// saves it and returns its path and its scores by context and item.
func trainedSnapshot(t *testing.T, w *world) (string, [][]float64) {
	t.Helper()
	m, err := model.New(model.Config{Bits: 16})
	if err != nil {
		t.Fatal(err)
	}
	ctx := func(c int) *model.Context {
		return &model.Context{User: event.User{Segment: w.segments[c/len(w.channels)]}, Channel: w.channels[c%len(w.channels)], Hour: 12}
	}
	for n := range 40_000 {
		c, i := n%len(w.q), (n/len(w.q))%len(w.items)
		l := model.Negative
		if float64((n*7919)%1000)/1000 < w.q[c][i] {
			l = model.Positive
		}
		m.Learn(ctx(c), event.Item{ID: w.items[i].id, Category: w.items[i].category}, l)
	}
	path := filepath.Join(t.TempDir(), "target.snap")
	if err := m.SaveFile(path, model.SnapshotMeta{Created: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	items := make([]event.Item, len(w.items))
	for i, it := range w.items {
		items[i] = event.Item{ID: it.id, Category: it.category}
	}
	scores := make([][]float64, len(w.q))
	var p model.Prepared
	for c := range w.q {
		m.Prepare(ctx(c), &p)
		scores[c] = make([]float64, len(items))
		m.Score(&p, items, scores[c])
	}
	return path, scores
}

// TestDRLowerVariance: with a reward model that knows the truth (the
// logging scores are the true probabilities and there is no position
// effect), DR varies much less across logs than IPS. DR removes the
// variance of the mean reward, not of the click's coin flip, so the gain
// shows at high click rates: the world's are around 85% here.
func TestDRLowerVariance(t *testing.T) {
	w := newWorld(11, worldConfig{items: 30, categories: 5, slots: 3, noise: 0, positionDecay: 1, base: 2})
	var ips, dr []float64
	for seed := range uint64(20) {
		ds, es := w.log(200+seed, 3000, logging{explore: 0.5})
		r := run(t, ds, es, []Spec{{Kind: KindPopularity}}, Config{Bootstrap: -1})
		p := r.Policies[0]
		ips = append(ips, p.Estimate(EstimatorIPS).CTR.Value)
		dr = append(dr, p.Estimate(EstimatorDR).CTR.Value)
	}
	sIPS, sDR := stddev(ips), stddev(dr)
	t.Logf("standard deviation across logs: DR %.5f, IPS %.5f", sDR, sIPS)
	if !(sDR < 0.7*sIPS) {
		t.Errorf("standard deviation across logs: DR %.5f, IPS %.5f; want DR below 0.7 × IPS", sDR, sIPS)
	}
}

func stddev(xs []float64) float64 {
	var m, s float64
	for _, x := range xs {
		m += x / float64(len(xs))
	}
	for _, x := range xs {
		s += (x - m) * (x - m)
	}
	return math.Sqrt(s / float64(len(xs)-1))
}

func TestLowOverlapNotTrustworthy(t *testing.T) {
	w := newWorld(5, worldConfig{items: 30, categories: 5, slots: 3, noise: 0.3, positionDecay: 0.8})
	for _, tc := range []struct {
		name string
		lp   logging
		n    int
		want string
	}{
		{"no exploration", logging{explore: 0}, 3000, ReasonUnsupported},
		{"window too narrow", logging{explore: 0.3, top: 2}, 3000, ReasonUnsupported},
		{"too few decisions", logging{explore: 0.5}, 40, ReasonLowESS},
		{"rare exploration", logging{explore: 0.01}, 3000, ReasonLowESS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds, es := w.log(9, tc.n, tc.lp)
			r := run(t, ds, es, []Spec{{Kind: KindPopularity}}, Config{Bootstrap: 20})
			p := r.Policies[0]
			if p.Trustworthy || !slices.Contains(p.Reasons, tc.want) {
				t.Errorf("popularity on %+v: trustworthy %v, reasons %v (%+v); want not trustworthy for %s", tc.lp, p.Trustworthy, p.Reasons, p.Diagnostics, tc.want)
			}
		})
	}
	t.Run("clipped", func(t *testing.T) {
		ds, es := w.log(9, 3000, logging{explore: 0.2})
		r := run(t, ds, es, []Spec{{Kind: KindPopularity}}, Config{Clip: 5, Bootstrap: 20})
		p := r.Policies[0]
		if p.Trustworthy || !slices.Contains(p.Reasons, ReasonClipped) || p.Diagnostics.ClippedShare == 0 {
			t.Errorf("clip 5: trustworthy %v, reasons %v, %+v; want clipped weights reported and not trustworthy", p.Trustworthy, p.Reasons, p.Diagnostics)
		}
	})
}

// TestFTRLScoresBeforeLearning: the progressive ftrl target scores each
// decision with the model as it was before that decision's events, and
// learns them afterwards.
func TestFTRLScoresBeforeLearning(t *testing.T) {
	seg := "regular"
	mk := func(id string, at time.Time) decisionlog.Decision {
		d := decisionlog.Decision{RequestID: id, Time: at, Variant: "ftrl", ModelVersion: "ftrl-v1.0", UserSegment: &seg, Channel: "web", Hour: 9,
			Eligible: 3, Explore: 0.5}
		for _, it := range []string{"a", "b", "c"} {
			d.Pool = append(d.Pool, decisionlog.Candidate{ItemID: it, Category: "cat-" + it, Score: 0.1})
		}
		// "c" was explored into the only slot.
		d.Items = []decisionlog.Slot{{ItemID: "c", Category: "cat-c", Score: 0.1, Reason: "explore", Propensity: 0.5 / 3}}
		return d
	}
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	ds := []decisionlog.Decision{mk("r1", t0), mk("r2", t0.Add(time.Second))}
	var es []decisionlog.Event
	for _, id := range []string{"r1", "r2"} {
		es = append(es, decisionlog.Event{RequestID: id, EventID: id + "i", Type: "impression", ItemID: "c"},
			decisionlog.Event{RequestID: id, EventID: id + "c", Type: "click", ItemID: "c"})
	}
	// An empty model ranks the three alike: candidate order, "a" first.
	// Had it learned r1's click before scoring r1, it would pick "c" there.
	r := run(t, ds[:1], es, []Spec{{Kind: KindFTRL, Model: model.Config{Alpha: 2, L1: -1}}}, Config{Bootstrap: -1})
	if got := r.Policies[0].Diagnostics.Matched; got != 0 {
		t.Errorf("ftrl on one decision matched the logged item in %v of slots, want 0: it must score before learning", got)
	}
	r = run(t, ds, es, []Spec{{Kind: KindFTRL, Model: model.Config{Alpha: 2, L1: -1}}}, Config{Bootstrap: -1})
	if got := r.Policies[0].Diagnostics.Matched; got != 0.5 {
		t.Errorf("ftrl on two decisions matched %v of slots, want 0.5: r2 is scored after learning r1's click", got)
	}
}

func TestRunSkipsDuplicatesAndInvalid(t *testing.T) {
	w := newWorld(2, worldConfig{items: 20, categories: 4, slots: 2, noise: 0.2, positionDecay: 1})
	ds, es := w.log(1, 100, logging{explore: 0.3})
	ds = append(ds, ds[0])
	bad := ds[1]
	bad.RequestID = "bad"
	bad.Items = slices.Clone(bad.Items)
	bad.Items[0].Propensity = 0
	ds = append(ds, bad)
	r := run(t, ds, es, []Spec{{Kind: KindLogged}}, Config{Bootstrap: -1})
	if r.Decisions != 100 || r.Duplicates != 1 || r.Invalid != 1 {
		t.Errorf("Run: decisions %d, duplicates %d, invalid %d; want 100, 1, 1", r.Decisions, r.Duplicates, r.Invalid)
	}
}

// TestStochasticTarget checks a target with its own exploration against
// the value of its exploration model computed from the world.
func TestStochasticTarget(t *testing.T) {
	const eps = 0.5
	w := newWorld(3, worldConfig{items: 24, categories: 4, slots: 3, noise: 0.3, positionDecay: 0.8})
	// The truth of the target's exploration model: per slot, its pick
	// with 1-ε+ε/n, each other usable item not in its slate above with
	// ε/n, n = eligible items minus the slot.
	K, n := len(w.theta), len(w.items)
	var truth float64
	det, _ := w.truth(popularityScore(w))
	pops := make([]float64, n)
	for i, it := range w.items {
		pops[i] = it.popularity
	}
	order := rank(pops)
	for c := range w.q {
		var slate []int
		count := map[string]int{}
		for _, i := range order {
			if len(slate) < K && count[w.items[i].category] < w.maxPer {
				count[w.items[i].category]++
				slate = append(slate, i)
			}
		}
		for k, tk := range slate {
			above := map[string]int{}
			for _, j := range slate[:k] {
				above[w.items[j].category]++
			}
			nk := float64(n - k)
			v := (1 - eps + eps/nk) * w.q[c][tk]
			for _, i := range order {
				if i != tk && !slices.Contains(slate[:k], i) && above[w.items[i].category] < w.maxPer {
					v += eps / nk * w.q[c][i]
				}
			}
			truth += v * w.theta[k] / float64(len(w.q)*K)
		}
	}
	if math.Abs(truth-det) < 1e-4 {
		t.Fatalf("exploration changes the truth too little (%v vs %v) to test it", truth, det)
	}
	covered := 0
	const seeds = 10
	for seed := range uint64(seeds) {
		ds, es := w.log(300+seed, 5000, logging{explore: 0.5})
		r := run(t, ds, es, []Spec{{Kind: KindPopularity, Explore: eps}}, Config{Seed: seed, Groups: 500})
		if e := r.Policies[0].Estimate(EstimatorSNIPS); e.CTR != nil && e.CTR.Contains(truth) {
			covered++
		}
	}
	t.Logf("SNIPS covered the explored target's CTR %.4f (deterministic %.4f) in %d of %d runs", truth, det, covered, seeds)
	if covered < seeds*7/10 {
		t.Errorf("SNIPS interval covered the explored target's CTR %.4f in %d of %d runs, want at least 70%%", truth, covered, seeds)
	}
}

func TestRunEmptyLog(t *testing.T) {
	r := run(t, nil, nil, []Spec{{Kind: KindLogged}, {Kind: KindPopularity}}, Config{})
	if r.Decisions != 0 || len(r.Policies) != 2 || r.Policies[1].Trustworthy || !slices.Contains(r.Policies[1].Reasons, ReasonNoData) {
		t.Errorf("Run(empty log) = %d decisions, policies %+v; want 0 and both flagged no_data", r.Decisions, r.Policies)
	}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Errorf("WriteTable(empty report): %v", err)
	}
}
