package rollout

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Offline is the shadow stage's offline estimate of the challenger: its
// click-through rate had it served the decisions it scored in shadow,
// estimated from its recorded would-be choices against the propensities
// the champion logged (package evaluate's self-normalized IPS), beside the
// CTR the champion achieved on the same decisions. It informs the people
// watching the rollout; the guardrails judge the canary on live clicks.
type Offline struct {
	// At is when the estimate was made; Decisions and Slots are the
	// decisions (and their shown slots) it was made from.
	At        time.Time `json:"at"`
	Decisions int64     `json:"decisions"`
	Slots     int64     `json:"slots"`
	// Estimator names the estimator of Challenger ("snips").
	Estimator string `json:"estimator"`
	// Challenger is the challenger's estimated CTR per shown slot and
	// Champion the champion's logged one, each with its 95% bootstrap
	// interval.
	Challenger Interval `json:"challenger"`
	Champion   Interval `json:"champion"`
	// Trustworthy reports that the estimate passed the estimator's limits
	// of trust (effective sample size, unsupported choices, clipped
	// weight); Reasons says which failed.
	Trustworthy bool     `json:"trustworthy"`
	Reasons     []string `json:"reasons,omitempty"`
	// ESS is the effective sample size in slots; Unsupported the share of
	// the challenger's choices the champion's exploration never makes.
	ESS         float64 `json:"ess"`
	Unsupported float64 `json:"unsupported"`
}

// Interval is an estimate with its confidence interval.
type Interval struct {
	Value float64 `json:"value"`
	Low   float64 `json:"low"`
	High  float64 `json:"high"`
}

// Verdict says in words how the estimate compares the challenger with the
// champion: above, below, or no different at the intervals' level, and
// whether it is to be trusted.
func (o *Offline) Verdict() string {
	ch, ca := o.Challenger, o.Champion
	var cmp string
	switch {
	case ch.Low > ca.High:
		cmp = "above the champion's"
	case ch.High < ca.Low:
		cmp = "below the champion's"
	default:
		cmp = "not distinguishable from the champion's"
	}
	s := fmt.Sprintf("offline estimate of the challenger's CTR %.2f%% [%.2f, %.2f] %s %.2f%% [%.2f, %.2f] on %d shadowed decisions",
		100*ch.Value, 100*ch.Low, 100*ch.High, cmp, 100*ca.Value, 100*ca.Low, 100*ca.High, o.Decisions)
	if !o.Trustworthy {
		s += fmt.Sprintf(" (not trustworthy: %v)", o.Reasons)
	}
	return s
}

// attr is the estimate as a log attribute group.
func (o *Offline) attr() slog.Attr {
	return slog.Group("offline", slog.String("estimator", o.Estimator),
		slog.Float64("challenger_ctr", o.Challenger.Value), slog.Float64("challenger_low", o.Challenger.Low), slog.Float64("challenger_high", o.Challenger.High),
		slog.Float64("champion_ctr", o.Champion.Value), slog.Float64("champion_low", o.Champion.Low), slog.Float64("champion_high", o.Champion.High),
		slog.Int64("decisions", o.Decisions), slog.Bool("trustworthy", o.Trustworthy), slog.Float64("ess", o.ESS))
}

// Estimator estimates a shadow challenger offline (the node implements it
// over its decision log). The controller calls it from Check while the
// rollout is in its shadow stage, without its lock held, from one
// goroutine at a time; it may block for a while (it reads the log).
type Estimator interface {
	// EstimateShadow estimates the challenger of version version over the
	// decisions it scored in shadow since since. It returns nil when it
	// has none yet.
	EstimateShadow(ctx context.Context, version string, since time.Time) (*Offline, error)
}

// estimate runs the Config's estimator when the rollout is in its shadow
// stage, and returns nil otherwise or when it fails (logged).
func (c *Controller) estimate(ctx context.Context) *Offline {
	if c.cfg.Estimator == nil {
		return nil
	}
	c.mu.Lock()
	stage, version, since := c.st.Stage, c.st.Version, c.st.Since
	c.mu.Unlock()
	if stage != Shadow {
		return nil
	}
	o, err := c.cfg.Estimator.EstimateShadow(ctx, version, since)
	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelWarn, "rollout: no offline estimate of the shadow challenger", slog.String("model_version", version), slog.Any("err", err))
		return nil
	}
	return o
}
