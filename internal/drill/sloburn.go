package drill

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/sightline/sightline/internal/app"
	"github.com/sightline/sightline/internal/faults"
	"github.com/sightline/sightline/internal/sim"
	"github.com/sightline/sightline/internal/slo"
)

// SLOBurn is the SLO game day: a small, steady model failure that spends
// the availability SLO's error budget about 28 times too fast, too small
// a share of the answers for any threshold alert (HighFallbackRate asks
// 5%), must fire the fast-burn page SLOFastBurn within its hour, and
// nothing else.
const SLOBurn = "slo-burn"

// SLOBurnConfig configures RunSLOBurn. The zero value of every field means
// its default.
type SLOBurnConfig struct {
	// Seed makes the world, the traffic and the clicks reproducible.
	Seed int64
	// WindowScale scales every SLO window and the 30-day period, keeping
	// the workbook's ratios between them (default 1/12: the fast page's 1h
	// and 5m windows last 5 simulated minutes and 25 seconds, the ticket's
	// 3 days 6 hours). 1 runs the real windows.
	WindowScale float64
	// WarmUp is the simulated time before the fault (default 10m).
	WarmUp time.Duration
	// FaultFor is how long the fault lasts (default the fast page's long
	// window, scaled: 5m).
	FaultFor time.Duration
	// After is the simulated time after the fault (default 10m), in which
	// the page must resolve and nothing else fire.
	After time.Duration
	// Cycle is the fault's period: the model-errors fault is on for one
	// simulated second in every Cycle (default 6s). A third of the model's
	// inferences fail while it is on, and only the ftrl variant (half the
	// users) uses the model: about 1/36 of the answers, a burn rate of 28
	// against the default 99.9% objective.
	Cycle time.Duration
	// Rate is the recommendation requests per simulated second (default 16).
	Rate int
	// EvalEvery is the simulated period of alert evaluation (default 5s).
	EvalEvery time.Duration
	// Users, Items and NewUserShare shape the world (defaults 20,000, 2,000
	// and 0.35).
	Users, Items int
	NewUserShare float64
	// DataDir holds the node's state; empty uses a temporary directory.
	DataDir string
	// Progress, if set, receives a line per simulated 5 minutes.
	Progress io.Writer
	// Inspect, if set, is called at the end while the node still serves,
	// with its base URL.
	Inspect func(ctx context.Context, baseURL string) error
}

func (c SLOBurnConfig) withDefaults() (SLOBurnConfig, error) {
	if c.WindowScale == 0 {
		c.WindowScale = 1.0 / 12
	}
	if !(c.WindowScale > 0 && c.WindowScale <= 1) {
		return c, fmt.Errorf("slo-burn: window scale %v: want a factor in (0, 1]", c.WindowScale)
	}
	if c.WarmUp <= 0 {
		c.WarmUp = 10 * time.Minute
	}
	if c.FaultFor <= 0 {
		c.FaultFor = time.Duration(float64(fastLong()) * c.WindowScale).Round(time.Second)
	}
	if c.After <= 0 {
		c.After = 10 * time.Minute
	}
	if c.Cycle <= 0 {
		c.Cycle = 6 * time.Second
	}
	if c.Cycle%time.Second != 0 {
		return c, fmt.Errorf("slo-burn: fault cycle %v: want whole seconds", c.Cycle)
	}
	if c.Rate <= 0 {
		c.Rate = 16
	}
	if c.EvalEvery <= 0 {
		c.EvalEvery = 5 * time.Second
	}
	if c.Users <= 0 {
		c.Users = 20_000
	}
	if c.Items <= 0 {
		c.Items = 2_000
	}
	if c.NewUserShare == 0 {
		c.NewUserShare = 0.35
	}
	return c, nil
}

// fastLong is the fast page's long window, unscaled.
func fastLong() time.Duration {
	for _, a := range slo.Alerts {
		if a.Name == "SLOFastBurn" {
			return a.Long
		}
	}
	return time.Hour
}

// SLOBurnReport is the outcome of the slo-burn drill: the timeline of
// [Report] (the fault's start as FaultAt), and the SLOs.
type SLOBurnReport struct {
	Report
	WindowScale float64 `json:"window_scale"`
	// FaultFor is how long the fault lasted, Cycle its period: on for one
	// second in every Cycle.
	FaultFor time.Duration `json:"fault_for_ns"`
	Cycle    time.Duration `json:"cycle_ns"`
	// Window is the fast page's long window, scaled: it must fire within
	// it of the fault.
	Window time.Duration `json:"window_ns"`
	// BadShare is the share of the answers during the fault that counted
	// against the availability SLO, and BurnRate that over its budget.
	BadShare float64 `json:"bad_share"`
	BurnRate float64 `json:"burn_rate"`
	// FallbackShare is the share of the answers that fell back for any
	// reason (the engine's unsure answers too) over the node's live
	// window at the end of the fault: what HighFallbackRate reads.
	FallbackShare float64 `json:"fallback_share"`
	// SLOs are the SLOs at the end of the drill.
	SLOs []slo.Status `json:"slos"`
}

// RunSLOBurn runs the slo-burn drill: a node with its SLO windows scaled
// by WindowScale on an accelerated clock, simulated users driving it
// through the real API, the model-errors fault switched on for one second
// in every Cycle from WarmUp for FaultFor, and the in-process alert rules
// evaluated every EvalEvery of simulated time.
func RunSLOBurn(ctx context.Context, cfg SLOBurnConfig) (*SLOBurnReport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	wallStart := time.Now()
	world := sim.NewWorld(sim.WorldConfig{Seed: cfg.Seed, Users: cfg.Users, Items: cfg.Items, NewUserShare: cfg.NewUserShare})
	sg, err := startStage(ctx, "sightline-slo-burn-", cfg.DataDir, world, app.Config{
		// The simulated clock stands still during a request, so the stage
		// budgets (real time) only catch a loaded machine: generous ones
		// keep its timeouts out of the SLO, which counts them as failures.
		FeatureBudget: 100 * time.Millisecond,
		ModelBudget:   100 * time.Millisecond,
		SLO:           slo.Config{WindowScale: cfg.WindowScale},
	})
	if err != nil {
		return nil, err
	}
	defer sg.close()
	node, clock, start := sg.node, sg.clock, sg.start

	duration := cfg.WarmUp + cfg.FaultFor + cfg.After
	rep := &SLOBurnReport{
		Report:      Report{Drill: SLOBurn, Seed: cfg.Seed, Duration: duration, FaultAt: cfg.WarmUp},
		WindowScale: cfg.WindowScale, FaultFor: cfg.FaultFor, Cycle: cfg.Cycle,
		Window: time.Duration(float64(fastLong()) * cfg.WindowScale),
	}
	d := sg.driver(cfg.Seed)
	seen := map[string]bool{}
	on := false
	var before slo.Status
	var ctrWin []ctrPoint
	for t := time.Duration(0); t < duration; t += time.Second {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if t == cfg.WarmUp {
			before = node.SLOs()[0]
		}
		faulty := t >= cfg.WarmUp && t < cfg.WarmUp+cfg.FaultFor && (t-cfg.WarmUp)%cfg.Cycle == 0
		if faulty != on {
			if err := node.SetFault(faults.ModelErrors, faulty); err != nil {
				return nil, err
			}
			on = faulty
		}
		clock.Advance(time.Second)
		if err := d.step(ctx, cfg.Rate); err != nil {
			return nil, err
		}
		if err := node.WaitApplied(ctx); err != nil {
			return nil, err
		}
		if t%time.Minute == 0 {
			node.Engine().Index().Refresh()
		}
		if t+time.Second == cfg.WarmUp+cfg.FaultFor {
			after := node.SLOs()[0]
			bad, all := after.Bad-before.Bad, after.Good+after.Bad-before.Good-before.Bad
			if all > 0 {
				rep.BadShare = float64(bad) / float64(all)
				rep.BurnRate = rep.BadShare / (1 - after.Objective)
			}
			if st, ok := node.Stats(ctx).(app.Stats); ok {
				rep.FallbackShare = st.FallbackRate
			}
		}
		if (t+time.Second)%cfg.EvalEvery == 0 {
			node.EvaluateAlerts(ctx, clock.Now())
			for _, a := range node.Alerts() {
				key := a.Name + labelKey(a.Labels)
				if a.State != "firing" || seen[key] {
					continue
				}
				seen[key] = true
				at := a.FiredAt.Sub(start)
				rep.Alerts = append(rep.Alerts, Alert{Name: a.Name, Labels: a.Labels, FiredAt: at, TimeToDetect: at - rep.FaultAt, Hints: a.Hints, ExampleTraces: a.ExampleTraces})
			}
		}
		if (t+time.Second)%time.Minute == 0 {
			ctrWin = append(ctrWin, ctrPoint{t + time.Second, d.impressions, d.clicks})
		}
		if cfg.Progress != nil && (t+time.Second)%(5*time.Minute) == 0 {
			fmt.Fprintf(cfg.Progress, "t=%v requests=%d alerts=%d\n", t+time.Second, d.requests, len(rep.Alerts))
		}
	}
	rep.Requests = d.requests
	rep.CTRBefore = windowCTR(ctrWin, cfg.WarmUp-min(cfg.WarmUp, 10*time.Minute), cfg.WarmUp)
	rep.CTRAfter = windowCTR(ctrWin, duration-min(duration, 10*time.Minute), duration)
	rep.SLOs = node.SLOs()
	if cfg.Inspect != nil {
		if err := cfg.Inspect(ctx, "http://"+node.Addr()); err != nil {
			return rep, fmt.Errorf("inspect: %w", err)
		}
	}
	rep.Elapsed = time.Since(wallStart)
	return rep, nil
}

// WriteTimeline prints the drill as a human timeline.
func (r *SLOBurnReport) WriteTimeline(w io.Writer) {
	fmt.Fprintf(w, "drill %s (seed %d): %v simulated in %v, %d requests; SLO windows scaled by %.4g (the fast page's 1h window is %v)\n",
		r.Drill, r.Seed, r.Duration, r.Elapsed.Round(time.Millisecond), r.Requests, r.WindowScale, r.Window)
	fmt.Fprintf(w, "  T+%-8v fault %s on one second in every %v, for %v: %.2f%% of the answers failed, a burn rate of %.1f; %.2f%% fell back in all\n",
		r.FaultAt, faults.ModelErrors, r.Cycle, r.FaultFor, 100*r.BadShare, r.BurnRate, 100*r.FallbackShare)
	for _, a := range r.Alerts {
		fmt.Fprintf(w, "  T+%-8v %s%s fired (time to detect %v)\n", a.FiredAt, a.Name, labelKey(a.Labels), a.TimeToDetect)
	}
	if len(r.Alerts) == 0 {
		fmt.Fprintln(w, "  no alert fired")
	}
	fmt.Fprintf(w, "  ftrl CTR: %.4f in the 10 minutes before the fault, %.4f in the last 10 minutes\n", r.CTRBefore, r.CTRAfter)
	for _, s := range r.SLOs {
		fmt.Fprintf(w, "  %s SLO (objective %.4g%%): budget left %.1f%%, burn rate", s.SLO, 100*s.Objective, 100*s.BudgetRemaining)
		for _, b := range s.BurnRates {
			fmt.Fprintf(w, " %s %.2f", b.Window, b.BurnRate)
		}
		fmt.Fprintln(w)
	}
}
