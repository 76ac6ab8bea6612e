package slo

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/quality"
)

// load drives a tracker on synctest's clock: perStep decisions every
// step, every badEvery-th of them (counted across calls) a failure of
// kind fail.
type load struct {
	tr *Tracker
	n  int
}

// failure is how a bad event is produced.
type failure int

const (
	modelError failure = iota // a fallback for a failed dependency
	serverError
	slow // a decision over the latency threshold
)

func (l *load) run(d, step time.Duration, perStep, badEvery int, fail failure) {
	for end := time.Now().Add(d); time.Now().Before(end); {
		for range perStep {
			l.n++
			bad := badEvery > 0 && l.n%badEvery == 0
			switch {
			case bad && fail == serverError:
				l.tr.ObserveServerError()
			case bad && fail == slow:
				l.tr.ObserveDecision(engine.ReasonNone, 50*time.Millisecond)
			case bad:
				l.tr.ObserveDecision(engine.ReasonModelError, time.Millisecond)
			default:
				l.tr.ObserveDecision(engine.ReasonNone, time.Millisecond)
			}
		}
		time.Sleep(step)
	}
}

// burning returns the names of the alerts whose condition holds for slo.
func burning(tr *Tracker, slo string) []string {
	var out []string
	for _, st := range tr.Status(time.Now()) {
		if st.SLO != slo {
			continue
		}
		for _, a := range st.Alerts {
			if a.Burning {
				out = append(out, a.Name)
			}
		}
	}
	return out
}

func status(t *testing.T, tr *Tracker, slo string) Status {
	t.Helper()
	for _, st := range tr.Status(time.Now()) {
		if st.SLO == slo {
			return st
		}
	}
	t.Fatalf("Status has no SLO %q", slo)
	return Status{}
}

// phase is a stretch of load with every badEvery-th event bad (0: none).
type phase struct {
	d        time.Duration
	badEvery int
}

// check is the alerts expected burning for one SLO at a moment of a
// scenario: after running the load for `after` (cumulative).
type check struct {
	after time.Duration
	want  []string
}

// TestBurnRateAlerts runs the workbook's scenarios on synctest's clock: a
// 20× burn (2% errors, objective 99.9%) fires the fast page after 43.2
// minutes (14.4/20 of its hour) and the slow page after 108 minutes (6/20
// of 6h); each resolves within its short window once errors stop. A 2×
// burn pages nobody and opens a ticket after 36 hours (1/2 of 3 days).
func TestBurnRateAlerts(t *testing.T) {
	tests := []struct {
		name string
		fail failure
		slo  string
		// phases: the load's bad share changes at each.
		phases []phase
		checks []check
	}{
		{
			name: "fast then slow burn, availability (fallbacks)", fail: modelError, slo: Availability,
			phases: []phase{{time.Hour, 0}, {2 * time.Hour, 50}, {3 * time.Hour, 0}},
			checks: []check{
				{time.Hour, nil},
				{time.Hour + 40*time.Minute, nil},
				{time.Hour + 46*time.Minute, []string{"SLOFastBurn"}},
				{time.Hour + 100*time.Minute, []string{"SLOFastBurn"}},
				{time.Hour + 115*time.Minute, []string{"SLOFastBurn", "SLOSlowBurn"}},
				// Errors stop at 3h: each alert resolves once its short
				// window's burn falls under its factor (14.4/20 and 6/20 of
				// the window still holding errors).
				{3*time.Hour + time.Minute, []string{"SLOFastBurn", "SLOSlowBurn"}},
				{3*time.Hour + 3*time.Minute, []string{"SLOSlowBurn"}},
				{3*time.Hour + 15*time.Minute, []string{"SLOSlowBurn"}},
				{3*time.Hour + 25*time.Minute, nil},
			},
		},
		{
			name: "fast burn, availability (5xx)", fail: serverError, slo: Availability,
			phases: []phase{{time.Hour, 50}},
			checks: []check{{40 * time.Minute, nil}, {46 * time.Minute, []string{"SLOFastBurn"}}},
		},
		{
			name: "fast burn, latency", fail: slow, slo: Latency,
			phases: []phase{{time.Hour, 50}},
			checks: []check{{40 * time.Minute, nil}, {46 * time.Minute, []string{"SLOFastBurn"}}},
		},
		{
			name: "sustained 2x burn: a ticket, no page", fail: modelError, slo: Availability,
			phases: []phase{{40 * time.Hour, 500}},
			checks: []check{{6 * time.Hour, nil}, {30 * time.Hour, nil}, {38 * time.Hour, []string{"SLOSustainedBurn"}}},
		},
		{
			name: "within budget: nothing", fail: modelError, slo: Availability,
			phases: []phase{{80 * time.Hour, 2000}},
			checks: []check{{time.Hour, nil}, {10 * time.Hour, nil}, {80 * time.Hour, nil}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tr, err := New(Config{})
				if err != nil {
					t.Fatal(err)
				}
				l := &load{tr: tr}
				start := time.Now()
				// Run the phases, stopping at each check.
				var bounds []time.Duration
				var at time.Duration
				for _, p := range tt.phases {
					at += p.d
					bounds = append(bounds, at)
				}
				phase := func(t time.Duration) int {
					for i, b := range bounds {
						if t < b {
							return tt.phases[i].badEvery
						}
					}
					return 0
				}
				step := time.Minute / 10
				for _, c := range tt.checks {
					for time.Since(start) < c.after {
						l.run(step, step, 10, phase(time.Since(start)), tt.fail)
					}
					if got := burning(tr, tt.slo); !cmp.Equal(got, c.want) {
						st := status(t, tr, tt.slo)
						t.Errorf("after %v: %s alerts burning = %v, want %v (burn rates %+v)", c.after, tt.slo, got, c.want, st.Alerts)
					}
					other := Latency
					if tt.slo == Latency {
						other = Availability
					}
					if got := burning(tr, other); len(got) > 0 {
						t.Errorf("after %v: %s alerts burning = %v, want none (only %s fails)", c.after, other, got, tt.slo)
					}
				}
			})
		})
	}
}

func TestStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr, err := New(Config{})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		st := status(t, tr, Availability)
		if st.BudgetRemaining != 1 || st.Good != 0 || st.BurnRates[0].BurnRate != 0 {
			t.Errorf("Status before any event = %+v, want a whole budget and no burn", st)
		}
		// 0.05% errors (0.5×) for 2 days, then 1% errors (10×) for 5
		// minutes: 149 bad of 288,500, over 2 days and 5 minutes of the
		// 30-day period.
		l := &load{tr: tr}
		l.run(48*time.Hour, 6*time.Second, 10, 2000, modelError)
		l.n = 0
		l.run(5*time.Minute, 6*time.Second, 10, 100, modelError)
		st = status(t, tr, Availability)
		served := (48*time.Hour + 5*time.Minute).Seconds()
		if got, want := st.BudgetRemaining, 1-149.0/288500/0.001*served/Period.Seconds(); math.Abs(got-want) > 1e-9 {
			t.Errorf("BudgetRemaining = %.6f, want %.6f", got, want)
		}
		if !st.Since.Equal(start) {
			t.Errorf("Since = %v, want the tracker's start %v", st.Since, start)
		}
		if st.Objective != DefaultObjective || st.PeriodSeconds != Period.Seconds() || st.Good != 288500-149 || st.Bad != 149 {
			t.Errorf("Status = objective %v, period %vs, %d good, %d bad; want %v, %v, %d, 149", st.Objective, st.PeriodSeconds, st.Good, st.Bad, DefaultObjective, Period.Seconds(), 288500-149)
		}
		burns := map[string]float64{}
		for _, b := range st.BurnRates {
			burns[b.Window] = b.BurnRate
		}
		// The windows are exact to a 15s bucket: the 5m one holds 470 of
		// the last 500 decisions, with all 5 errors.
		for w, want := range map[string]float64{"5m": 5.0 / 470 / 0.001, "3d": 149.0 / 288500 / 0.001 * served / (72 * time.Hour).Seconds()} {
			if got := burns[w]; math.Abs(got-want) > 0.01*want {
				t.Errorf("burn rate over %s = %.4f, want %.4f", w, got, want)
			}
		}
		if lat := status(t, tr, Latency); lat.ThresholdSeconds != 0.01 || lat.BudgetRemaining != 1 || lat.Bad != 0 {
			t.Errorf("latency Status = %+v, want threshold 10ms and the whole budget", lat)
		}
		// The period slides: 31 days later the 48 hours are out of it.
		time.Sleep(31 * 24 * time.Hour)
		l.n = 0
		l.run(time.Hour, time.Minute, 10, 0, modelError)
		st = status(t, tr, Availability)
		if st.BudgetRemaining != 1 || st.Good != 600 || !st.Since.Equal(time.Now().Add(-Period)) {
			t.Errorf("a month later: Status = budget %v, %d good since %v; want 1, 600, %v", st.BudgetRemaining, st.Good, st.Since, time.Now().Add(-Period))
		}
	})
}

// TestMinRequests: a node that served few requests does not page for the
// failures among them, however high their share.
func TestMinRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr, err := New(Config{})
		if err != nil {
			t.Fatal(err)
		}
		l := &load{tr: tr}
		l.run(99*30*time.Second, 30*time.Second, 1, 10, modelError) // 9 of 99 bad over 50 minutes: 90×
		if got := burning(tr, Availability); len(got) > 0 {
			t.Errorf("burning with 99 requests = %v, want none", got)
		}
		l.run(30*time.Second, 30*time.Second, 1, 10, modelError) // the 100th, bad
		if got, want := burning(tr, Availability), []string{"SLOFastBurn", "SLOSlowBurn", "SLOSustainedBurn"}; !cmp.Equal(got, want) {
			t.Errorf("burning with 100 requests = %v, want %v", got, want)
		}
	})
}

// TestFreshStart: windows reaching back before the start count as good
// traffic, so a few early failures are not read as hours of burn, while a
// node failing from its start still pages within minutes.
func TestFreshStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr, err := New(Config{})
		if err != nil {
			t.Fatal(err)
		}
		l := &load{tr: tr}
		l.run(time.Minute, time.Second, 10, 20, modelError) // 5% errors for a minute: 50×
		if got := burning(tr, Availability); len(got) > 0 {
			t.Errorf("after a minute of 5%% errors: burning = %v, want none (50× over 1 of 60 minutes)", got)
		}
		// Then every request fails: the fast page after 0.864 minutes
		// (14.4/1000 of its hour), the slow one after 2.16 (6/1000 of 6h).
		l.run(90*time.Second, time.Second, 10, 1, modelError)
		if got, want := burning(tr, Availability), []string{"SLOFastBurn"}; !cmp.Equal(got, want) {
			t.Errorf("after 90s of failures: burning = %v, want %v", got, want)
		}
		l.run(time.Minute, time.Second, 10, 1, modelError)
		if got, want := burning(tr, Availability), []string{"SLOFastBurn", "SLOSlowBurn"}; !cmp.Equal(got, want) {
			t.Errorf("after 150s of failures: burning = %v, want %v", got, want)
		}
	})
}

// TestWindowScale: scaled windows keep the workbook's ratios, so a 20×
// burn fires the fast page after 43.2/12 minutes with scale 1/12.
func TestWindowScale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr, err := New(Config{WindowScale: 1.0 / 12})
		if err != nil {
			t.Fatal(err)
		}
		l := &load{tr: tr}
		l.run(3*time.Minute+20*time.Second, time.Second, 2, 50, modelError)
		if got := burning(tr, Availability); len(got) > 0 {
			t.Errorf("after 3m20s: burning = %v, want none yet (fires at 3m36s)", got)
		}
		l.run(30*time.Second, time.Second, 2, 50, modelError)
		if got, want := burning(tr, Availability), []string{"SLOFastBurn"}; !cmp.Equal(got, want) {
			t.Errorf("after 3m50s: burning = %v, want %v", got, want)
		}
		st := status(t, tr, Availability)
		if got, want := st.BurnRates[2], (Burn{Window: "1h", WindowSeconds: 300}); got.Window != want.Window || got.WindowSeconds != want.WindowSeconds {
			t.Errorf("scaled 1h window = %+v, want %+v", got, want)
		}
		if st.PeriodSeconds != Period.Seconds()/12 {
			t.Errorf("scaled period = %vs, want %vs", st.PeriodSeconds, Period.Seconds()/12)
		}
	})
}

func TestRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr, err := New(Config{})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := quality.NewEvaluator(quality.Signals{}, quality.EvaluatorConfig{Rules: tr.Rules()})
		if err != nil {
			t.Fatal(err)
		}
		l := &load{tr: tr}
		l.run(time.Hour, 6*time.Second, 10, 10, slow) // 10% slow: 100×
		ev.Evaluate(t.Context(), time.Now())
		var got []string
		for _, a := range ev.Alerts() {
			got = append(got, a.Name+"/"+a.State+"/"+a.Labels["slo"])
			if a.Name == "SLOFastBurn" {
				if math.Abs(a.Value-100) > 1 {
					t.Errorf("SLOFastBurn value = %v, want the 1h burn rate, about 100", a.Value)
				}
				if a.Severity != "page" || a.RunbookURL != "docs/runbooks/SLOFastBurn.md" || !strings.Contains(a.Summary, "latency SLO is burning its error budget at 100x the sustainable rate") {
					t.Errorf("SLOFastBurn = %+v", a)
				}
			}
		}
		want := []string{"SLOFastBurn/firing/latency", "SLOSlowBurn/firing/latency", "SLOSustainedBurn/firing/latency"}
		slices.Sort(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("alerts mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	tr, err := New(Config{Registerer: reg, LatencyThreshold: 25 * time.Millisecond, Latency: 0.99})
	if err != nil {
		t.Fatal(err)
	}
	tr.ObserveDecision(engine.ReasonNone, 30*time.Millisecond)       // latency bad
	tr.ObserveDecision(engine.ReasonLowConfidence, time.Millisecond) // good: by design
	tr.ObserveDecision(engine.ReasonMissingFeatures, time.Millisecond)
	tr.ObserveDecision(engine.ReasonFeatureStoreTimeout, 26*time.Millisecond) // both bad
	tr.ObserveServerError()
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, lp := range m.GetLabel() {
				key += "/" + lp.GetValue()
			}
			switch {
			case m.GetCounter() != nil:
				got[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[key] = m.GetGauge().GetValue()
			}
		}
	}
	want := map[string]float64{
		"sightline_slo_requests_total/bad/availability":  2,
		"sightline_slo_requests_total/good/availability": 3,
		"sightline_slo_requests_total/bad/latency":       2,
		"sightline_slo_requests_total/good/latency":      2,
		"sightline_slo_objective_ratio/availability":     0.999,
		"sightline_slo_objective_ratio/latency":          0.99,
		"sightline_slo_latency_threshold_seconds":        0.025,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("gathered metrics mismatch (-want +got):\n%s", diff)
	}
}

func TestConfig(t *testing.T) {
	bad := []Config{
		{Availability: 1},
		{Availability: 0.9},
		{Availability: -0.5},
		{Latency: 1.5},
		{Latency: math.NaN()},
		{LatencyThreshold: -time.Millisecond},
		{WindowScale: 2},
		{WindowScale: -1},
		{MinRequests: -1},
	}
	for _, c := range bad {
		if _, err := New(c); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(%+v) error = %v, want ErrInvalidConfig", c, err)
		}
	}
	for _, c := range []Config{{}, {Availability: 0.95, Latency: 0.99999, LatencyThreshold: 50 * time.Millisecond, WindowScale: 1.0 / 12}} {
		if _, err := New(c); err != nil {
			t.Errorf("New(%+v) = %v, want no error", c, err)
		}
	}
}

// BenchmarkObserveDecision is the serving path's cost of the SLOs: one
// decision counted for both, with and without metric export.
func BenchmarkObserveDecision(b *testing.B) {
	for _, tc := range []struct {
		name string
		reg  prometheus.Registerer
	}{{"metrics", prometheus.NewRegistry()}, {"no-metrics", nil}} {
		b.Run(tc.name, func(b *testing.B) {
			tr, err := New(Config{Registerer: tc.reg})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				tr.ObserveDecision(engine.ReasonNone, time.Millisecond)
			}
		})
	}
}

// TestCountsAgainstAvailability classifies every fallback reason the
// engine has: a new one must be decided here.
func TestCountsAgainstAvailability(t *testing.T) {
	want := map[engine.Reason]bool{
		engine.ReasonNone:                false,
		engine.ReasonFeatureStoreError:   true,
		engine.ReasonFeatureStoreTimeout: true,
		engine.ReasonModelError:          true,
		engine.ReasonModelTimeout:        true,
		engine.ReasonMissingFeatures:     false,
		engine.ReasonLowConfidence:       false,
	}
	for _, r := range append([]engine.Reason{engine.ReasonNone}, engine.Reasons...) {
		w, ok := want[r]
		if !ok {
			t.Errorf("fallback reason %q is not classified: decide whether it counts against availability", r)
			continue
		}
		if got := CountsAgainstAvailability(r); got != w {
			t.Errorf("CountsAgainstAvailability(%q) = %v, want %v", r, got, w)
		}
	}
}
