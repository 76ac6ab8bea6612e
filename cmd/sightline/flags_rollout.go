package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/sightline/sightline/internal/app"
)

// rolloutFlags registers the flags of guarded model rollouts on fs.
func rolloutFlags(fs *flag.FlagSet, c *app.Config) {
	r := &c.Rollout
	fs.Func("rollout-steps", "a challenger model's canary steps: increasing shares of the champion's users, comma-separated (default 0.05,0.25,0.5)", func(s string) error {
		var steps []float64
		for f := range strings.SplitSeq(s, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || !(v > 0 && v <= 1) || (len(steps) > 0 && v <= steps[len(steps)-1]) {
				return fmt.Errorf("want increasing shares in (0, 1] such as 0.05,0.25,0.5, got %q", s)
			}
			steps = append(steps, v)
		}
		r.Steps = steps
		return nil
	})
	fs.DurationVar(&r.ShadowHold, "rollout-shadow-hold", 0, "score a challenger in shadow (on the champion's requests, never shown) this long before its first canary step; 0 skips the shadow stage")
	fs.DurationVar(&r.StepHold, "rollout-step-hold", 0, "how long each canary step is held before the next one or the promotion (default 10m)")
	fs.DurationVar(&r.MaxWait, "rollout-max-wait", 0, "how long the last step waits past its hold for every guardrail to pass before rolling back as inconclusive (default 3 × --rollout-step-hold)")
	fs.DurationVar(&r.CheckEvery, "rollout-check-every", 0, "period of the rollout's guardrail checks (default 1m)")
	fs.Float64Var(&r.Guards.Alpha, "rollout-alpha", 0, "false-rollback rate of the CTR guardrail's sequential test (default 0.001)")
	fs.Float64Var(&r.Guards.NonInferiority, "rollout-non-inferiority", 0, "relative CTR loss a promotion tolerates: the lift's 95% interval must stay above minus this (default 0.10)")
	fs.Int64Var(&r.Guards.MinImpressions, "rollout-min-impressions", 0, "impressions each side needs before the CTR guardrail can pass (default 2000)")
	fs.DurationVar(&r.Guards.LatencySlack, "rollout-latency-slack", 0, "what the latency guardrail adds to 1.5 × the champion's p99 before it fails the challenger (default 2ms; raise it on a machine whose latency is noisy)")
}
