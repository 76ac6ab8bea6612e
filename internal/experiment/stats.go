// Package experiment computes the statistics of live A/B tests that a
// personalization team can trust while it watches them: per-variant rates
// with 95% intervals, the lift against the control with its interval, an
// always-valid p-value (a mixture sequential probability ratio test, so
// looking every minute does not inflate false positives), the minimum
// detectable effect at the current sample size, and a sample ratio
// mismatch check of the assignment counts against the configured split.
//
// The functions are pure: the node feeds them the counts it keeps
// (impressions, clicks, assignments per variant) and keeps the running
// state of the sequential test (see [Sequential]).
package experiment

import (
	"errors"
	"math"
)

// z95 is the two-sided 95% normal quantile.
const z95 = 1.959963984540054

// Interval is a two-sided 95% confidence interval.
type Interval struct {
	Low  float64 `json:"low"`
	High float64 `json:"high"`
}

// Rate is a proportion (successes of trials) with its Wilson score
// interval, which stays inside [0, 1] and behaves at small counts and rates
// near 0, where click-through rates live.
type Rate struct {
	Trials    int64    `json:"trials"`
	Successes int64    `json:"successes"`
	Value     float64  `json:"value"`
	CI        Interval `json:"ci95"`
}

// NewRate returns successes/trials with its Wilson interval; zero trials
// give a zero rate with the interval [0, 1].
func NewRate(successes, trials int64) Rate {
	r := Rate{Trials: trials, Successes: successes, CI: Interval{0, 1}}
	if trials <= 0 {
		return r
	}
	n := float64(trials)
	p := float64(successes) / n
	r.Value = p
	z2 := z95 * z95
	den := 1 + z2/n
	center := (p + z2/(2*n)) / den
	half := z95 * math.Sqrt(p*(1-p)/n+z2/(4*n*n)) / den
	r.CI = Interval{math.Max(0, center-half), math.Min(1, center+half)}
	return r
}

// Lift is a treatment's rate against the control's: the absolute
// difference and the relative lift, each with a 95% interval (normal
// approximation; the relative one by the delta method on the log ratio).
type Lift struct {
	Absolute   float64  `json:"absolute"`
	AbsoluteCI Interval `json:"absolute_ci95"`
	Relative   float64  `json:"relative"`
	RelativeCI Interval `json:"relative_ci95"`
}

// NewLift compares treatment t with control c. With no trials or no
// successes on a side the intervals are unbounded (±Inf).
func NewLift(t, c Rate) Lift {
	inf := Interval{math.Inf(-1), math.Inf(1)}
	l := Lift{Absolute: t.Value - c.Value, AbsoluteCI: inf, RelativeCI: inf}
	if t.Trials == 0 || c.Trials == 0 {
		return l
	}
	se := math.Sqrt(variance(t) + variance(c))
	l.AbsoluteCI = Interval{l.Absolute - z95*se, l.Absolute + z95*se}
	if c.Value > 0 {
		l.Relative = t.Value/c.Value - 1
	}
	if t.Successes > 0 && c.Successes > 0 {
		// Var(log p̂) ≈ (1-p)/(n p).
		v := (1-t.Value)/(float64(t.Trials)*t.Value) + (1-c.Value)/(float64(c.Trials)*c.Value)
		lr := math.Log(t.Value / c.Value)
		h := z95 * math.Sqrt(v)
		l.RelativeCI = Interval{math.Exp(lr-h) - 1, math.Exp(lr+h) - 1}
	}
	return l
}

// variance is the variance of a rate's estimate.
func variance(r Rate) float64 {
	if r.Trials == 0 {
		return 0
	}
	return r.Value * (1 - r.Value) / float64(r.Trials)
}

// MDE is the smallest absolute difference from the control's rate that a
// test with these sample sizes detects with 80% power at 5% (two-sided,
// fixed-horizon normal approximation): what the experiment can and cannot
// tell at its current size. It is +Inf without trials on a side.
func MDE(controlRate float64, controlTrials, treatmentTrials int64) float64 {
	if controlTrials <= 0 || treatmentTrials <= 0 {
		return math.Inf(1)
	}
	const z80 = 0.8416212335729143
	v := controlRate * (1 - controlRate)
	return (z95 + z80) * math.Sqrt(v/float64(controlTrials)+v/float64(treatmentTrials))
}

// Sequential is an always-valid test of "treatment and control have the
// same rate": a mixture sequential probability ratio test (mSPRT, Johari,
// Pekelis and Walsh, "Always valid inference", 2017) on the difference of
// the two rates under its normal approximation, with a normal mixture of
// variance Tau² over the effect. Its p-value may be read after every new
// observation: the chance it ever falls below α when the rates are equal
// is at most α. The zero value is ready; Observe it with the running
// totals each time the figures are read.
type Sequential struct {
	// Tau is the standard deviation of the mixture over effects, in
	// absolute rate units. Zero means a tenth of the pooled rate (at least
	// 1e-4): effects of that order are the ones to be detected quickly.
	Tau float64

	p float64 // the always-valid p-value so far
}

// Observe updates the test with the running totals of both sides and
// returns the always-valid p-value, which never increases.
func (s *Sequential) Observe(t, c Rate) float64 {
	if s.p == 0 {
		s.p = 1
	}
	v := variance(t) + variance(c)
	if t.Trials == 0 || c.Trials == 0 || v <= 0 {
		return s.p
	}
	tau := s.Tau
	if tau <= 0 {
		pooled := float64(t.Successes+c.Successes) / float64(t.Trials+c.Trials)
		tau = math.Max(pooled/10, 1e-4)
	}
	t2 := tau * tau
	d := t.Value - c.Value
	// log Λ = ½ log(V/(V+τ²)) + d² τ² / (2 V (V+τ²))
	logL := 0.5*math.Log(v/(v+t2)) + d*d*t2/(2*v*(v+t2))
	if p := math.Exp(-logL); p < s.p {
		s.p = p
	}
	return s.p
}

// P returns the always-valid p-value so far (1 before any evidence).
func (s *Sequential) P() float64 {
	if s.p == 0 {
		return 1
	}
	return s.p
}

// SRM is the sample ratio mismatch check: whether the assignment counts
// fit the configured split.
type SRM struct {
	ChiSquare float64 `json:"chi_square"`
	P         float64 `json:"p_value"`
	// Mismatch is P < SRMThreshold: the split is broken (users of a variant
	// dropped, a redirect losing some, a bot), and no comparison of the
	// variants can be trusted until the cause is found.
	Mismatch bool `json:"mismatch"`
}

// SRMThreshold is the p-value under which a split is declared mismatched:
// strict, because the check runs continuously.
const SRMThreshold = 0.001

// ErrBadSplit reports counts and weights that cannot be compared.
var ErrBadSplit = errors.New("experiment: counts and split weights must have the same length ≥ 2, weights positive")

// CheckSRM runs a chi-square goodness-of-fit test of counts against the
// split weights (any positive scale).
func CheckSRM(counts []int64, weights []float64) (SRM, error) {
	if len(counts) != len(weights) || len(counts) < 2 {
		return SRM{}, ErrBadSplit
	}
	var total, wsum float64
	for i, c := range counts {
		if weights[i] <= 0 || c < 0 {
			return SRM{}, ErrBadSplit
		}
		total += float64(c)
		wsum += weights[i]
	}
	if total == 0 {
		return SRM{P: 1}, nil
	}
	var chi float64
	for i, c := range counts {
		exp := total * weights[i] / wsum
		d := float64(c) - exp
		chi += d * d / exp
	}
	p := chiSquareSurvival(chi, float64(len(counts)-1))
	return SRM{ChiSquare: chi, P: p, Mismatch: p < SRMThreshold}, nil
}

// chiSquareSurvival is P(X ≥ x) for X chi-square with k degrees of
// freedom: the regularized upper incomplete gamma Q(k/2, x/2).
func chiSquareSurvival(x, k float64) float64 {
	if x <= 0 {
		return 1
	}
	return gammaQ(k/2, x/2)
}

// gammaQ is the regularized upper incomplete gamma function Q(a, x), by
// its series below a+1 and its continued fraction above (Numerical
// Recipes §6.2).
func gammaQ(a, x float64) float64 {
	lg, _ := math.Lgamma(a)
	if x < a+1 {
		sum, term := 1/a, 1/a
		for n := 1; n < 500; n++ {
			term *= x / (a + float64(n))
			sum += term
			if math.Abs(term) < math.Abs(sum)*1e-15 {
				break
			}
		}
		return math.Max(0, 1-sum*math.Exp(-x+a*math.Log(x)-lg))
	}
	const tiny = 1e-300
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i < 500; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-15 {
			break
		}
	}
	return math.Exp(-x+a*math.Log(x)-lg) * h
}
