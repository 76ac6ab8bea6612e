package slo

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/sightline/sightline/internal/quality"
)

// Rules returns the burn-rate alerts of [Alerts] as rules of the quality
// package's evaluator: one alert per SLO whose condition holds, labelled
// slo, valued at its long-window burn rate. They fire at the first
// evaluation the condition holds (no for: the long window already asks the
// burn to have lasted), as in deploy/prometheus/rules/sightline.yml.
func (t *Tracker) Rules() []quality.Rule {
	rules := make([]quality.Rule, 0, len(Alerts))
	for _, a := range Alerts {
		long, short := t.scale(a.Long), t.scale(a.Short)
		scaled := ""
		if t.cfg.WindowScale != 1 {
			scaled = fmt.Sprintf(" (windows scaled by %.4g: %v and %v)", t.cfg.WindowScale, long, short)
		}
		rules = append(rules, quality.Rule{
			Name:     a.Name,
			Severity: a.Severity,
			Summary:  fmt.Sprintf("The {slo} SLO is burning its error budget at {value}x the sustainable rate (alert at %gx over %s and %s)", a.Factor, windowName(a.Long), windowName(a.Short)),
			Description: fmt.Sprintf("Over the last %s and the last %s%s the {slo} SLO's bad events are more than %g times its error budget (1 − objective): "+
				"%.0f%% of the 30-day budget is spent in %s at this rate, all of it in %s.",
				windowName(a.Long), windowName(a.Short), scaled, a.Factor, 100*a.BudgetSpent, windowName(a.Long), exhaustion(a.Factor)),
			RunbookURL: "docs/runbooks/" + a.Name + ".md",
			Expr: func(now time.Time) []quality.Sample {
				burning := t.Burning(a.Name, now)
				out := make([]quality.Sample, 0, len(burning))
				for _, name := range slices.Sorted(maps.Keys(burning)) {
					out = append(out, quality.Sample{Labels: map[string]string{"slo": name}, Value: burning[name]})
				}
				return out
			},
		})
	}
	return rules
}

// exhaustion says how long the period's whole budget lasts at burn rate
// factor.
func exhaustion(factor float64) string {
	d := time.Duration(float64(Period) / factor)
	if d >= 48*time.Hour {
		return fmt.Sprintf("%.0f days", d.Hours()/24)
	}
	return fmt.Sprintf("%.0f hours", d.Hours())
}
