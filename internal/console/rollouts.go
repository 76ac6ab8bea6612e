package console

import (
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Rollouts reports the guarded model rollout, the figures of GET
// /v1/rollouts. The console calls it on Rollouts page requests and when it
// samples its charts (for their annotations), concurrently; it must not
// block on I/O.
type Rollouts interface {
	// Rollout returns the rollout's state now.
	Rollout() RolloutView
}

// RolloutView is a guarded model rollout.
type RolloutView struct {
	// Stage is idle, shadow, canary, promoting, promoted or rolled_back.
	Stage string
	// Version and Source name the challenger.
	Version, Source string
	// Steps are the canary steps (shares of the champion's users), Step
	// the index of the current one, Share the challenger's share now.
	Steps []float64
	Step  int
	Share float64
	// StepHold is how long each step is held.
	StepHold time.Duration
	// StartedAt is when the challenger was registered, Since when the
	// current stage or step began.
	StartedAt, Since time.Time
	// Checks are the guardrails' verdicts at the last check.
	Checks []RolloutCheckView
	// Champion and Challenger are the two arms' figures.
	Champion, Challenger RolloutArmView
	// Timeline is the transitions, oldest first.
	Timeline []RolloutTransitionView
	// Offline is the shadow stage's offline estimate of the challenger,
	// nil before one was made (or without a shadow stage).
	Offline *RolloutOfflineView
}

// RolloutOfflineView is the shadow stage's offline estimate: the
// challenger's CTR per shown slot estimated from its recorded would-be
// choices against the champion's logged propensities, beside the
// champion's logged CTR on the same decisions.
type RolloutOfflineView struct {
	// At is when it was made, Decisions the shadowed decisions it is from.
	At        time.Time
	Decisions int64
	// Estimator names the estimator (snips).
	Estimator string
	// Challenger and Champion are the CTRs with their 95% intervals.
	Challenger, ChallengerLow, ChallengerHigh float64
	Champion, ChampionLow, ChampionHigh       float64
	// Trustworthy reports that it passed the limits of trust; Reasons
	// says which failed. Verdict says how the two compare, in words.
	Trustworthy bool
	Reasons     []string
	Verdict     string
}

// RolloutCheckView is one guardrail's verdict.
type RolloutCheckView struct {
	// Name is ctr, calibration, latency_p99, fallback_rate or
	// null_feature_rate; Status pass, wait or fail.
	Name, Status string
	// Challenger, Champion and Limit are the compared values and the
	// bound; Detail says it in words.
	Challenger, Champion, Limit float64
	Detail                      string
}

// RolloutArmView is one arm's running totals.
type RolloutArmView struct {
	Decisions, Fallbacks, Impressions, Clicks, Users int64
	// CTR is clicks over impressions (0 without impressions).
	CTR float64
}

// RolloutTransitionView is one entry of the timeline.
type RolloutTransitionView struct {
	At             time.Time
	From, To       string
	Share          float64
	Reason, Detail string
	// TraceID is the transition span's trace, "" when not recorded.
	TraceID string
}

// rolloutsData is the Rollouts page.
type rolloutsData struct {
	Available      bool
	RefreshSeconds float64
	RolloutView
	// Active reports a challenger in play; Verdict a stage that ended one.
	Active  bool
	Steps   []rolloutStep
	Recent  []RolloutTransitionView // newest first
	HeldFor time.Duration
}

// rolloutStep is one step of the plan as the page shows it.
type rolloutStep struct {
	Share   float64
	Current bool
	Done    bool
}

func (c *Console) rollouts(w http.ResponseWriter, r *http.Request) {
	d := rolloutsData{Available: c.cfg.Rollouts != nil, RefreshSeconds: c.cfg.SampleInterval.Seconds()}
	if c.cfg.Rollouts != nil {
		d.RolloutView = c.cfg.Rollouts.Rollout()
		d.Active = d.Stage == "shadow" || d.Stage == "canary" || d.Stage == "promoting"
		for i, s := range d.RolloutView.Steps {
			d.Steps = append(d.Steps, rolloutStep{Share: s, Current: d.Active && d.Stage == "canary" && i == d.Step, Done: i < d.Step || d.Stage == "promoted"})
		}
		d.Recent = slices.Clone(d.Timeline)
		slices.Reverse(d.Recent)
		if d.Active && !d.Since.IsZero() {
			d.HeldFor = c.cfg.Now().Sub(d.Since).Round(time.Second)
		}
	}
	c.render(w, r, http.StatusOK, "rollouts", "Rollouts", d)
}

// annotation marks a rollout transition on the charts.
type annotation struct {
	T    int64  `json:"t"` // unix milliseconds
	Text string `json:"text"`
	// Kind is "rollback" for a rollback, "rollout" otherwise.
	Kind string `json:"kind"`
}

// annotations are the rollout transitions since from, for the charts.
func (c *Console) annotations(from time.Time) []annotation {
	out := []annotation{}
	if c.cfg.Rollouts == nil {
		return out
	}
	for _, tr := range c.cfg.Rollouts.Rollout().Timeline {
		if tr.At.Before(from) {
			continue
		}
		a := annotation{T: tr.At.UnixMilli(), Text: rolloutLabel(tr), Kind: "rollout"}
		if tr.To == "rolled_back" {
			a.Kind = "rollback"
		}
		out = append(out, a)
	}
	return out
}

// rolloutLabel is a transition in a few words.
func rolloutLabel(tr RolloutTransitionView) string {
	switch tr.To {
	case "canary":
		return "canary " + strconv.FormatFloat(100*tr.Share, 'f', -1, 64) + "%"
	case "rolled_back":
		return "rolled back (" + tr.Reason + ")"
	default:
		return tr.To
	}
}
