package rollout

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sightline/sightline/internal/event"
)

// fakeTarget records what the controller asks of the serving side.
type fakeTarget struct {
	loaded   []string
	routes   []float64 // shares routed, -1 for shadow
	promoted int
	loadErr  error
	promErr  error
	share    float64
	shadow   bool
}

func (f *fakeTarget) Load(_ context.Context, source string) (string, error) {
	f.loaded = append(f.loaded, source)
	if f.loadErr != nil {
		return "", f.loadErr
	}
	return "ftrl-" + filepath.Base(source), nil
}

func (f *fakeTarget) Route(_ context.Context, shadow bool, share float64) {
	f.shadow, f.share = shadow, share
	if shadow {
		f.routes = append(f.routes, -1)
		return
	}
	f.routes = append(f.routes, share)
}

func (f *fakeTarget) Promote(context.Context) error {
	if f.promErr != nil {
		return f.promErr
	}
	f.promoted++
	return nil
}

// clock is a settable clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

// world simulates a minute of traffic at a time: users of the champion's
// variant, the target's share of them served by the challenger; each
// decision shows 10 items, each impressed and clicked at its arm's CTR; the
// models are calibrated unless told otherwise.
type world struct {
	rng             *rand.Rand
	perMinute       int
	ctr             [2]float64
	predicted       [2]float64 // predicted CTR, default = ctr
	latency         [2]time.Duration
	fallback, nulls [2]float64
	users           uint64
}

// variants are the arms' variant names (the Config's defaults).
var variants = [2]string{"ftrl", "challenger"}

func newWorld(seed uint64, champion, challenger float64) *world {
	return &world{
		rng: rand.New(rand.NewPCG(seed, 7)), perMinute: 600,
		ctr: [2]float64{champion, challenger}, latency: [2]time.Duration{time.Millisecond, time.Millisecond},
	}
}

func (w *world) minute(c *Controller, share float64) {
	for range w.perMinute {
		w.users++
		h := w.users * 0x9e3779b97f4a7c15
		a := Champion
		if w.rng.Float64() < share {
			a = Challenger
		}
		d := Decision{
			Latency:     time.Duration(float64(w.latency[a]) * (0.5 + w.rng.Float64())),
			Fallback:    w.rng.Float64() < w.fallback[a],
			NullFeature: w.rng.Float64() < w.nulls[a],
		}
		pred := w.predicted[a]
		if pred == 0 {
			pred = w.ctr[a]
		}
		if !d.Fallback {
			d.Shown, d.Predicted = 10, 10*pred
		}
		c.ObserveDecision(variants[a], h, d)
		for range 10 {
			c.ObserveEvent(variants[a], "web", event.Impression)
			if w.rng.Float64() < w.ctr[a] {
				c.ObserveEvent(variants[a], "web", event.Click)
			}
		}
	}
}

// run drives c for up to minutes minutes of simulated traffic with a check
// every minute, until the rollout ends.
func (w *world) run(t *testing.T, c *Controller, clk *clock, tg *fakeTarget, minutes int) {
	t.Helper()
	for range minutes {
		if !c.Live() {
			return
		}
		share := tg.share
		w.minute(c, share)
		clk.advance(time.Minute)
		c.Check(t.Context())
	}
}

func newController(t *testing.T, tg *fakeTarget, clk *clock, cfg Config) *Controller {
	t.Helper()
	cfg.Now = clk.now
	c, err := New(t.Context(), tg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func start(t *testing.T, c *Controller) {
	t.Helper()
	if _, err := c.Start(t.Context(), Spec{Source: "/models/next.snap"}); err != nil {
		t.Fatal(err)
	}
}

func TestBadChallengerRolledBackAtFirstStep(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	tg := &fakeTarget{}
	reg := prometheus.NewRegistry()
	c := newController(t, tg, clk, Config{Registerer: reg})
	start(t, c)
	w := newWorld(1, 0.05, 0.03) // the challenger loses 40% of the clicks
	w.run(t, c, clk, tg, 120)
	st := c.State()
	if st.Stage != RolledBack {
		t.Fatalf("stage = %s, want rolled_back; checks %+v", st.Stage, st.Checks)
	}
	last := st.Timeline[len(st.Timeline)-1]
	if last.Reason != GuardCTR || last.From != Canary {
		t.Errorf("last transition = %+v, want a ctr rollback from canary", last)
	}
	if want := []float64{0.05, 0}; !slices.Equal(tg.routes, want) {
		t.Errorf("routes = %v, want %v: rolled back before the 25%% step", tg.routes, want)
	}
	if tg.promoted != 0 {
		t.Error("a bad challenger was promoted")
	}
	if got := value(t, c.met.transitions.WithLabelValues(string(RolledBack), GuardCTR)); got != 1 {
		t.Errorf("rollback transitions metric = %v, want 1", got)
	}
	if got := value(t, c.met.stage.WithLabelValues(string(RolledBack))); got != 1 {
		t.Errorf("stage gauge of rolled_back = %v, want 1", got)
	}
	if c.Live() {
		t.Error("still live after the rollback")
	}
	// Exposure: the challenger's users are about 5% of the champion's.
	ch, all := st.Arms[Challenger].Users, st.Arms[Champion].Users+st.Arms[Challenger].Users
	if share := float64(ch) / float64(all); share > 0.06 {
		t.Errorf("challenger served %d of %d users (%.1f%%), want about 5%%", ch, all, 100*share)
	}
}

func TestGoodChallengerPromoted(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	tg := &fakeTarget{}
	c := newController(t, tg, clk, Config{})
	start(t, c)
	w := newWorld(2, 0.05, 0.06)
	w.run(t, c, clk, tg, 200)
	st := c.State()
	if st.Stage != Promoted || tg.promoted != 1 {
		t.Fatalf("stage = %s, promotions %d; want promoted once; checks %+v", st.Stage, tg.promoted, st.Checks)
	}
	if want := []float64{0.05, 0.25, 0.50, 0}; !slices.Equal(tg.routes, want) {
		t.Errorf("routes = %v, want %v", tg.routes, want)
	}
	var reasons []string
	for _, tr := range st.Timeline {
		reasons = append(reasons, string(tr.To)+"/"+tr.Reason)
	}
	if want := []string{"canary/start", "canary/step", "canary/step", "promoting/promote", "promoted/promote"}; !slices.Equal(reasons, want) {
		t.Errorf("timeline = %v, want %v", reasons, want)
	}
	if promo := st.Timeline[len(st.Timeline)-1]; !allPass(promo.Checks) {
		t.Errorf("promoted on checks %+v, want every guardrail passing", promo.Checks)
	}
}

// An identical challenger is never rolled back by chance (the sequential
// test keeps its false-rollback rate under Alpha whatever the number of
// checks), and is promoted once the data shows it no worse.
func TestIdenticalChallengerNoFalseRollback(t *testing.T) {
	promoted := 0
	for seed := range uint64(20) {
		clk := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
		tg := &fakeTarget{}
		c := newController(t, tg, clk, Config{})
		start(t, c)
		w := newWorld(100+seed, 0.05, 0.05)
		w.run(t, c, clk, tg, 200)
		st := c.State()
		if st.Stage == RolledBack {
			t.Errorf("seed %d: identical challenger rolled back: %+v", seed, st.Timeline[len(st.Timeline)-1])
		}
		if st.Stage == Promoted {
			promoted++
		}
	}
	if promoted < 18 {
		t.Errorf("%d of 20 identical challengers promoted, want nearly all", promoted)
	}
}

func TestGuardrails(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(w *world)
		guard string
	}{
		{"slow", func(w *world) { w.latency[Challenger] = 8 * time.Millisecond }, GuardLatency},
		{"overconfident", func(w *world) { w.predicted[Challenger] = 0.15 }, GuardCalibration},
		{"fallbacks", func(w *world) { w.fallback = [2]float64{0.01, 0.08} }, GuardFallbacks},
		{"null features", func(w *world) { w.nulls = [2]float64{0.02, 0.10} }, GuardNulls},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
			tg := &fakeTarget{}
			c := newController(t, tg, clk, Config{})
			start(t, c)
			w := newWorld(3, 0.05, 0.05)
			tc.setup(w)
			w.run(t, c, clk, tg, 200)
			st := c.State()
			if st.Stage != RolledBack {
				t.Fatalf("stage = %s, want rolled_back; checks %+v", st.Stage, st.Checks)
			}
			if last := st.Timeline[len(st.Timeline)-1]; last.Reason != tc.guard {
				t.Errorf("rolled back by %q (%s), want %q", last.Reason, last.Detail, tc.guard)
			}
		})
	}
}

func TestNoDataIsInconclusive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tg := &fakeTarget{}
		c, err := New(t.Context(), tg, Config{StepHold: 10 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		start(t, c)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()
		// Steps advance with nothing failing, but nothing passes either:
		// the last step waits MaxWait (30m) past its hold, then gives up.
		time.Sleep(20*time.Minute + 30*time.Second)
		synctest.Wait()
		if st := c.State(); st.Stage != Canary || st.Share != 0.5 {
			t.Fatalf("after 20m: %s at %v, want canary at 0.5", st.Stage, st.Share)
		}
		time.Sleep(40 * time.Minute)
		synctest.Wait()
		st := c.State()
		if st.Stage != RolledBack || st.Timeline[len(st.Timeline)-1].Reason != "inconclusive" {
			t.Fatalf("after 60m: %+v, want rolled back as inconclusive", st.Timeline[len(st.Timeline)-1])
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestStartAndAbort(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	tg := &fakeTarget{}
	c := newController(t, tg, clk, Config{ShadowHold: 5 * time.Minute})
	if _, err := c.Start(t.Context(), Spec{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Start without a source: %v, want ErrInvalid", err)
	}
	if _, err := c.Start(t.Context(), Spec{Source: "x", Steps: []float64{0.5, 0.2}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Start with decreasing steps: %v, want ErrInvalid", err)
	}
	if _, err := c.Abort(t.Context(), ""); !errors.Is(err, ErrNone) {
		t.Errorf("Abort with nothing under way: %v, want ErrNone", err)
	}
	tg.loadErr = errors.New("no such file")
	if _, err := c.Start(t.Context(), Spec{Source: "missing"}); err == nil || c.Live() {
		t.Errorf("Start of an unloadable challenger: %v, live %v; want an error and nothing started", err, c.Live())
	}
	tg.loadErr = nil
	st, err := c.Start(t.Context(), Spec{Source: "next"})
	if err != nil || st.Stage != Shadow || !tg.shadow {
		t.Fatalf("Start = %s, %v (target shadow %v); want shadow", st.Stage, err, tg.shadow)
	}
	if _, err := c.Start(t.Context(), Spec{Source: "other"}); !errors.Is(err, ErrBusy) {
		t.Errorf("second Start: %v, want ErrBusy", err)
	}
	clk.advance(5 * time.Minute)
	c.Check(t.Context())
	if st := c.State(); st.Stage != Canary || tg.share != 0.05 || tg.shadow {
		t.Fatalf("after the shadow hold: %s, share %v; want canary at 5%%", st.Stage, tg.share)
	}
	st, err = c.Abort(t.Context(), "")
	if err != nil || st.Stage != RolledBack || tg.share != 0 || c.Live() {
		t.Fatalf("Abort = %s, %v; share %v", st.Stage, err, tg.share)
	}
	if last := st.Timeline[len(st.Timeline)-1]; last.Reason != "abort" {
		t.Errorf("abort recorded as %q", last.Reason)
	}
	// A new rollout may start after one ended.
	if _, err := c.Start(t.Context(), Spec{Source: "again"}); err != nil {
		t.Errorf("Start after a rollback: %v", err)
	}
}

func TestRestartResumesCanary(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rollout.json")
	clk := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	tg := &fakeTarget{}
	c := newController(t, tg, clk, Config{StatePath: path})
	start(t, c)
	w := newWorld(4, 0.05, 0.05)
	w.run(t, c, clk, tg, 12) // past the first step's hold: now at 25%
	before := c.State()
	if before.Stage != Canary || before.Share != 0.25 {
		t.Fatalf("before the restart: %s at %v", before.Stage, before.Share)
	}
	// kill -9: a new controller on the same file.
	tg2 := &fakeTarget{}
	c2 := newController(t, tg2, clk, Config{StatePath: path})
	after := c2.State()
	if after.Stage != Canary || after.Share != 0.25 || after.Step != 1 || !c2.Live() {
		t.Fatalf("after the restart: %s at %v step %d (live %v), want canary at 0.25 step 1", after.Stage, after.Share, after.Step, c2.Live())
	}
	if want := []string{"/models/next.snap"}; !slices.Equal(tg2.loaded, want) || !slices.Equal(tg2.routes, []float64{0.25}) {
		t.Errorf("restart loaded %v and routed %v, want the challenger at 25%%", tg2.loaded, tg2.routes)
	}
	if after.Arms[Challenger].Impressions == 0 || after.Arms[Challenger].Impressions < before.Arms[Challenger].Impressions-6000 {
		t.Errorf("arms after the restart %+v, want the totals of the last check", after.Arms)
	}
	w.run(t, c2, clk, tg2, 200)
	if st := c2.State(); st.Stage != Promoted || tg2.promoted != 1 {
		t.Errorf("resumed rollout ended %s with %d promotions, want promoted", st.Stage, tg2.promoted)
	}
}

func TestRestartFinishesPromotion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rollout.json")
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	st := State{Stage: Promoting, Source: "/models/next.snap", Version: "ftrl-next", Steps: DefaultSteps, Step: 2, Share: 0.5, StartedAt: now, Since: now}
	if err := saveState(path, st); err != nil {
		t.Fatal(err)
	}
	tg := &fakeTarget{}
	c := newController(t, tg, &clock{t: now}, Config{StatePath: path})
	if got := c.State(); got.Stage != Promoted || tg.promoted != 1 || c.Live() {
		t.Fatalf("after a restart mid-promotion: %s, %d promotions, live %v; want promoted once", got.Stage, tg.promoted, c.Live())
	}
	// The file says so too.
	again, ok, err := loadState(path)
	if err != nil || !ok || again.Stage != Promoted {
		t.Errorf("state file after the restart: %s, %v, %v", again.Stage, ok, err)
	}
}

func TestRestartWithLostChallengerRollsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rollout.json")
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if err := saveState(path, State{Stage: Canary, Source: "/gone", Steps: DefaultSteps, Share: 0.05, Since: now}); err != nil {
		t.Fatal(err)
	}
	tg := &fakeTarget{loadErr: os.ErrNotExist}
	c := newController(t, tg, &clock{t: now}, Config{StatePath: path})
	if st := c.State(); st.Stage != RolledBack || c.Live() || len(tg.routes) != 1 || tg.routes[0] != 0 {
		t.Errorf("restart with a lost challenger: %s, live %v, routes %v; want rolled back, withdrawn", st.Stage, c.Live(), tg.routes)
	}
}

func TestStateFileErrors(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"garbage":   "{not json",
		"version":   `{"version": 99, "state": {"stage": "idle"}}`,
		"bad steps": `{"version": 1, "state": {"stage": "canary", "steps": [0.5, 0.1], "step": 0}}`,
	} {
		path := filepath.Join(dir, name+".json")
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := New(t.Context(), &fakeTarget{}, Config{StatePath: path}); err == nil {
			t.Errorf("%s state file: New succeeded, want an error", name)
		}
	}
}

func TestObserveWithoutRolloutIsFree(t *testing.T) {
	c, err := New(t.Context(), &fakeTarget{}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		c.ObserveDecision("challenger", 42, Decision{Latency: time.Millisecond, Shown: 10, Predicted: 0.5})
		c.ObserveEvent("challenger", "web", event.Click)
	}); n != 0 {
		t.Errorf("observing allocates %v times", n)
	}
	if st := c.State(); st.Arms[Challenger].Decisions != 0 {
		t.Errorf("observed %d decisions without a rollout", st.Arms[Challenger].Decisions)
	}
}

// value reads a counter's or gauge's value.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// A challenger that scores too slowly in shadow is rolled back before it
// serves anyone; a sound one goes to its first canary step with fresh
// totals.
func TestShadowStage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		latency time.Duration
		want    Stage
	}{
		{"slow", 9 * time.Millisecond, RolledBack},
		{"sound", time.Millisecond, Canary},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
			tg := &fakeTarget{}
			c := newController(t, tg, clk, Config{ShadowHold: 5 * time.Minute})
			start(t, c)
			if !tg.shadow {
				t.Fatal("the challenger does not shadow")
			}
			w := newWorld(5, 0.05, 0.05)
			w.latency[Challenger] = tc.latency
			for range 6 {
				// Every champion decision is shadowed: the challenger's
				// arm sees as many would-be decisions, and no events.
				for range w.perMinute {
					w.users++
					h := w.users * 0x9e3779b97f4a7c15
					c.ObserveDecision("ftrl", h, Decision{Latency: time.Duration(float64(w.latency[Champion]) * (0.5 + w.rng.Float64())), Shown: 10, Predicted: 0.5})
					c.ObserveDecision("challenger", h, Decision{Latency: time.Duration(float64(w.latency[Challenger]) * (0.5 + w.rng.Float64())), Shown: 10, Predicted: 0.5})
				}
				clk.advance(time.Minute)
				c.Check(t.Context())
				if !c.Live() || c.State().Stage != Shadow {
					break
				}
			}
			st := c.State()
			if st.Stage != tc.want {
				t.Fatalf("stage %s, want %s; checks %+v", st.Stage, tc.want, st.Checks)
			}
			last := st.Timeline[len(st.Timeline)-1]
			switch tc.want {
			case RolledBack:
				if last.Reason != GuardLatency || !strings.Contains(last.Detail, "in shadow") || slices.Contains(tg.routes, 0.05) {
					t.Errorf("rollback %+v (routes %v), want the latency guardrail in shadow, never served", last, tg.routes)
				}
			case Canary:
				if st.Share != 0.05 || st.Arms[Challenger].Decisions != 0 {
					t.Errorf("canary at %v with challenger totals %+v, want 5%% from fresh totals", st.Share, st.Arms[Challenger])
				}
			}
		})
	}
}
