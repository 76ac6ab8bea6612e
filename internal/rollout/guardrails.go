package rollout

import (
	"fmt"
	"math"
	"time"

	"github.com/sightline/sightline/internal/experiment"
)

// Status is a guardrail's verdict at one check.
type Status string

// Guardrail verdicts.
const (
	// Pass: the data says the challenger is at least as good.
	Pass Status = "pass"
	// Wait: not enough data to say either way.
	Wait Status = "wait"
	// Fail: the data says the challenger is worse; the rollout rolls back.
	Fail Status = "fail"
)

// Guardrail names, the values of Check.Name and of the metrics' guardrail
// label.
const (
	GuardCTR         = "ctr"
	GuardCalibration = "calibration"
	GuardLatency     = "latency_p99"
	GuardFallbacks   = "fallback_rate"
	GuardNulls       = "null_feature_rate"
)

// Guardrails lists the guardrail names in the order checks report them.
var Guardrails = []string{GuardCTR, GuardCalibration, GuardLatency, GuardFallbacks, GuardNulls}

// Check is one guardrail's verdict with the figures behind it.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Challenger and Champion are the compared values (a rate, a ratio or
	// seconds); Limit is the bound the challenger's value was held to.
	Challenger float64 `json:"challenger"`
	Champion   float64 `json:"champion"`
	Limit      float64 `json:"limit"`
	// Detail says why, in words.
	Detail string `json:"detail"`
}

// Guards are the guardrails' settings. The zero value of every field means
// its default.
type Guards struct {
	// Alpha is the false-rollback rate of the CTR guardrail: it fails when
	// the always-valid p-value falls below Alpha with the challenger worse
	// (default 0.001: a guarded rollout runs many checks over many
	// rollouts, and clicks of one user are correlated, which the test's
	// binomial model does not see).
	Alpha float64
	// MinImpressions is what each arm needs before the CTR guardrail can
	// pass (default 2,000).
	MinImpressions int64
	// NonInferiority is the relative CTR loss the promotion tolerates: the
	// lift's 95% interval must stay above -NonInferiority (default 0.10).
	NonInferiority float64
	// CalibrationLow and CalibrationHigh bound the challenger's predicted
	// over observed click rate (defaults 0.5 and 2), judged from MinClicks
	// clicks (default 50).
	CalibrationLow, CalibrationHigh float64
	MinClicks                       int64
	// LatencyRatio and LatencySlack bound the challenger's p99: at most the
	// champion's × LatencyRatio + LatencySlack (defaults 1.5 and 2 ms),
	// judged from MinDecisions decisions per arm (default 500).
	LatencyRatio float64
	LatencySlack time.Duration
	MinDecisions int64
	// MaxRateIncrease is how much higher than the champion's the
	// challenger's fallback and null-feature rates may be, absolute
	// (default 0.02); the excess must also be significant (z > 3).
	MaxRateIncrease float64
}

func (g *Guards) defaults() error {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&g.Alpha, 0.001)
	def(&g.NonInferiority, 0.10)
	def(&g.CalibrationLow, 0.5)
	def(&g.CalibrationHigh, 2)
	def(&g.LatencyRatio, 1.5)
	def(&g.MaxRateIncrease, 0.02)
	if g.MinImpressions == 0 {
		g.MinImpressions = 2000
	}
	if g.MinClicks == 0 {
		g.MinClicks = 50
	}
	if g.MinDecisions == 0 {
		g.MinDecisions = 500
	}
	if g.LatencySlack == 0 {
		g.LatencySlack = 2 * time.Millisecond
	}
	switch {
	case !(g.Alpha > 0 && g.Alpha < 1):
		return fmt.Errorf("rollout: alpha %v must be in (0, 1)", g.Alpha)
	case !(g.NonInferiority > 0 && g.NonInferiority < 1):
		return fmt.Errorf("rollout: non-inferiority margin %v must be in (0, 1)", g.NonInferiority)
	case !(g.CalibrationLow > 0 && g.CalibrationLow < 1 && g.CalibrationHigh > 1):
		return fmt.Errorf("rollout: calibration band [%v, %v] must hold 1", g.CalibrationLow, g.CalibrationHigh)
	case !(g.LatencyRatio >= 1) || g.LatencySlack < 0:
		return fmt.Errorf("rollout: latency ratio %v must be at least 1, slack %v not negative", g.LatencyRatio, g.LatencySlack)
	case !(g.MaxRateIncrease > 0 && g.MaxRateIncrease < 1):
		return fmt.Errorf("rollout: rate increase %v must be in (0, 1)", g.MaxRateIncrease)
	case g.MinImpressions < 0 || g.MinClicks < 0 || g.MinDecisions < 0:
		return fmt.Errorf("rollout: minimum counts must not be negative")
	}
	return nil
}

// evaluate checks every guardrail on the two arms' totals; seq is the
// running sequential test of the CTR, updated here.
func (g *Guards) evaluate(ch, ca Counts, seq *experiment.Sequential) []Check {
	return []Check{
		g.ctr(ch, ca, seq),
		g.calibration(ch, ca),
		g.latency(ch, ca),
		g.rate(GuardFallbacks, ch.Fallbacks, ch.Decisions, ca.Fallbacks, ca.Decisions),
		g.rate(GuardNulls, ch.NullFeatures, ch.Decisions, ca.NullFeatures, ca.Decisions),
	}
}

func (g *Guards) ctr(ch, ca Counts, seq *experiment.Sequential) Check {
	t := experiment.NewRate(ch.Clicks, ch.Impressions)
	c := experiment.NewRate(ca.Clicks, ca.Impressions)
	p := seq.Observe(t, c)
	lift := experiment.NewLift(t, c)
	k := Check{Name: GuardCTR, Challenger: t.Value, Champion: c.Value, Limit: -g.NonInferiority}
	switch {
	case p < g.Alpha && t.Value < c.Value:
		k.Status = Fail
		k.Detail = fmt.Sprintf("CTR %.4f against the champion's %.4f (lift %+.1f%%), always-valid p = %.2g < %g", t.Value, c.Value, 100*lift.Relative, p, g.Alpha)
	case t.Trials < g.MinImpressions || c.Trials < g.MinImpressions:
		k.Status = Wait
		k.Detail = fmt.Sprintf("%d and %d impressions of the %d each arm needs", t.Trials, c.Trials, g.MinImpressions)
	case lift.RelativeCI.Low >= -g.NonInferiority:
		k.Status = Pass
		k.Detail = fmt.Sprintf("lift %+.1f%%, 95%% interval [%+.1f%%, %+.1f%%] above %+.0f%%", 100*lift.Relative, 100*lift.RelativeCI.Low, 100*lift.RelativeCI.High, -100*g.NonInferiority)
	default:
		k.Status = Wait
		k.Detail = fmt.Sprintf("lift %+.1f%%, 95%% interval [%+.1f%%, %+.1f%%] not yet above %+.0f%%", 100*lift.Relative, 100*lift.RelativeCI.Low, 100*lift.RelativeCI.High, -100*g.NonInferiority)
	}
	return k
}

// calibrationOf is predicted over observed CTR, NaN without the data.
func calibrationOf(c Counts) float64 {
	if c.Shown == 0 || c.Impressions == 0 || c.Clicks == 0 {
		return math.NaN()
	}
	return (c.Predicted / float64(c.Shown)) / (float64(c.Clicks) / float64(c.Impressions))
}

func (g *Guards) calibration(ch, ca Counts) Check {
	r := calibrationOf(ch)
	k := Check{Name: GuardCalibration, Challenger: finite(r), Champion: finite(calibrationOf(ca)), Limit: g.CalibrationHigh}
	switch {
	case ch.Clicks < g.MinClicks || math.IsNaN(r):
		k.Status = Wait
		k.Detail = fmt.Sprintf("%d of the %d clicks needed", ch.Clicks, g.MinClicks)
	case r < g.CalibrationLow || r > g.CalibrationHigh:
		k.Status = Fail
		if r < g.CalibrationLow {
			k.Limit = g.CalibrationLow
		}
		k.Detail = fmt.Sprintf("predicted/observed CTR %.2f outside [%.2f, %.2f]", r, g.CalibrationLow, g.CalibrationHigh)
	default:
		k.Status = Pass
		k.Detail = fmt.Sprintf("predicted/observed CTR %.2f within [%.2f, %.2f]", r, g.CalibrationLow, g.CalibrationHigh)
	}
	return k
}

func (g *Guards) latency(ch, ca Counts) Check {
	pc, pa := ch.p99(), ca.p99()
	limit := time.Duration(float64(pa)*g.LatencyRatio) + g.LatencySlack
	k := Check{Name: GuardLatency, Challenger: pc.Seconds(), Champion: pa.Seconds(), Limit: limit.Seconds()}
	switch {
	case ch.Decisions < g.MinDecisions || ca.Decisions < g.MinDecisions:
		k.Status = Wait
		k.Detail = fmt.Sprintf("%d and %d decisions of the %d each arm needs", ch.Decisions, ca.Decisions, g.MinDecisions)
	case pc > limit:
		k.Status = Fail
		k.Detail = fmt.Sprintf("p99 %v above %v (the champion's %v × %.1f + %v)", pc, limit, pa, g.LatencyRatio, g.LatencySlack)
	default:
		k.Status = Pass
		k.Detail = fmt.Sprintf("p99 %v within %v", pc, limit)
	}
	return k
}

// rate compares a bad-outcome rate: the challenger fails when its rate
// exceeds the champion's by more than MaxRateIncrease and the excess is
// significant (two-proportion z > 3).
func (g *Guards) rate(name string, xt, nt, xc, nc int64) Check {
	k := Check{Name: name}
	if nt < g.MinDecisions || nc < g.MinDecisions {
		k.Status = Wait
		k.Detail = fmt.Sprintf("%d and %d decisions of the %d each arm needs", nt, nc, g.MinDecisions)
		return k
	}
	pt, pc := float64(xt)/float64(nt), float64(xc)/float64(nc)
	k.Challenger, k.Champion, k.Limit = pt, pc, pc+g.MaxRateIncrease
	pool := float64(xt+xc) / float64(nt+nc)
	se := math.Sqrt(pool * (1 - pool) * (1/float64(nt) + 1/float64(nc)))
	z := 0.0
	if se > 0 {
		z = (pt - pc) / se
	}
	if pt > pc+g.MaxRateIncrease && z > 3 {
		k.Status = Fail
		k.Detail = fmt.Sprintf("%.2f%% against the champion's %.2f%% (z = %.1f)", 100*pt, 100*pc, z)
		return k
	}
	k.Status = Pass
	k.Detail = fmt.Sprintf("%.2f%% against the champion's %.2f%%", 100*pt, 100*pc)
	return k
}

// finite maps NaN and ±Inf to 0 for JSON.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}
