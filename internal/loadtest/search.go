package loadtest

import (
	"context"
	"fmt"
	"time"
)

// SearchConfig configures [MaxRate]. The zero value of every field means
// its default.
type SearchConfig struct {
	// Start is the first rate tried, per second (default 500).
	Start float64
	// Factor multiplies the rate after each passing step (default 1.5).
	Factor float64
	// Refine is the number of bisection steps between the last passing and
	// the first failing rate (default 2).
	Refine int
	// Limit is the highest rate tried (default 1,000,000/s).
	Limit float64
	// Step is the duration of each step (default 5s).
	Step time.Duration
	// Retries is how many times a failing step is run again (default 1;
	// negative: none); a rate passes when one of its runs does. On a
	// shared machine a step now and then fails on a stall of the machine
	// (a thread not run for tens of milliseconds puts a 2s step's p99 over
	// 10ms), which must not end a search far below the target's rate; a
	// rate the target cannot sustain fails every run.
	Retries int
	// Pause is the quiet time between steps, letting queues drain (default
	// 500ms; negative means none).
	Pause time.Duration
	// P99 is the p99 latency a passing step stays at or under (default 10ms).
	P99 time.Duration
	// MaxErrorRatio is the share of failed arrivals (overruns included) a
	// passing step stays at or under (default 0.001; negative allows none).
	MaxErrorRatio float64
	// Run configures each step; its Rate and Duration are set by the search.
	Run Config
	// OnStep, if not nil, is called after each step with its report and
	// whether it passed.
	OnStep func(r *Report, pass bool)
}

func (c SearchConfig) withDefaults() SearchConfig {
	if c.Start <= 0 {
		c.Start = 500
	}
	if c.Factor <= 1 {
		c.Factor = 1.5
	}
	if c.Refine <= 0 {
		c.Refine = 2
	}
	switch {
	case c.Retries == 0:
		c.Retries = 1
	case c.Retries < 0:
		c.Retries = 0
	}
	if c.Limit <= 0 {
		c.Limit = 1e6
	}
	if c.Step <= 0 {
		c.Step = 5 * time.Second
	}
	if c.Pause == 0 {
		c.Pause = 500 * time.Millisecond
	}
	if c.P99 <= 0 {
		c.P99 = 10 * time.Millisecond
	}
	if c.MaxErrorRatio == 0 {
		c.MaxErrorRatio = 0.001
	}
	return c
}

// SearchResult is the outcome of [MaxRate].
type SearchResult struct {
	// MaxRate is the highest offered rate that passed (0 if none did).
	MaxRate float64 `json:"max_rate"`
	// P99LimitMS and MaxErrorRatio are the pass criteria.
	P99LimitMS    float64 `json:"p99_limit_ms"`
	MaxErrorRatio float64 `json:"max_error_ratio"`
	// Best is the report of the step at MaxRate (nil if none passed).
	Best *Report `json:"best"`
	// Steps are every step's report, in order, with its verdict; a
	// retried rate has a step for each run.
	Steps []Step `json:"steps"`
}

// Step is one rate tried by [MaxRate].
type Step struct {
	Pass   bool    `json:"pass"`
	Report *Report `json:"report"`
}

// MaxRate searches for the highest arrival rate at which t keeps its p99
// latency at or under cfg.P99 with at most cfg.MaxErrorRatio errors: it
// multiplies the rate by cfg.Factor from cfg.Start until a step fails, then
// bisects cfg.Refine times between the last pass and the first failure.
// Each step is an open-loop [Run]; a failing one is run again up to
// cfg.Retries times.
func MaxRate(ctx context.Context, t Target, cfg SearchConfig) (*SearchResult, error) {
	cfg = cfg.withDefaults()
	res := &SearchResult{P99LimitMS: ms(cfg.P99), MaxErrorRatio: max(cfg.MaxErrorRatio, 0)}
	run := func(rate float64) (bool, error) {
		if len(res.Steps) > 0 && cfg.Pause > 0 {
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case <-time.After(cfg.Pause):
			}
		}
		rc := cfg.Run
		rc.Rate, rc.Duration = rate, cfg.Step
		r, err := Run(ctx, t, rc)
		if err != nil {
			return false, fmt.Errorf("rate %.0f/s: %w", rate, err)
		}
		pass := r.Histogram.Quantile(0.99) <= cfg.P99 && r.ErrorRatio() <= max(cfg.MaxErrorRatio, 0) && r.OK > 0
		res.Steps = append(res.Steps, Step{Pass: pass, Report: r})
		if pass && rate > res.MaxRate {
			res.MaxRate, res.Best = rate, r
		}
		if cfg.OnStep != nil {
			cfg.OnStep(r, pass)
		}
		return pass, nil
	}
	step := func(rate float64) (bool, error) {
		for try := 0; ; try++ {
			pass, err := run(rate)
			if err != nil || pass || try >= cfg.Retries {
				return pass, err
			}
		}
	}
	lo, hi := 0.0, 0.0
	for rate := cfg.Start; ; rate = min(rate*cfg.Factor, cfg.Limit) {
		pass, err := step(rate)
		if err != nil {
			return res, err
		}
		if !pass {
			hi = rate
			break
		}
		lo = rate
		if rate >= cfg.Limit {
			return res, nil
		}
	}
	for range cfg.Refine {
		if lo == 0 {
			lo = hi / 4 // nothing passed yet: look below the start
		}
		mid := (lo + hi) / 2
		pass, err := step(mid)
		if err != nil {
			return res, err
		}
		if pass {
			lo = mid
		} else {
			hi = mid
		}
	}
	return res, nil
}
