package slo

import (
	"time"
)

// Alert is one multiwindow burn-rate alert: it fires for an SLO when the
// error ratio over both its long and its short window is above Factor
// times the error budget (1 − objective). The long window says the budget
// is really being spent; the short one that it still is, so the alert
// resolves minutes after the burn stops.
type Alert struct {
	Name     string
	Severity string
	// Long and Short are the windows, unscaled.
	Long, Short time.Duration
	// Factor is the burn rate: how many times faster than the rate that
	// spends exactly the budget over the period.
	Factor float64
	// BudgetSpent is the share of the period's budget a burn at Factor
	// spends over the long window.
	BudgetSpent float64
}

// fastFactor is the fast page's burn rate.
const fastFactor = 14.4

// Alerts are the workbook's three alerts, the rules of the same names in
// deploy/prometheus/rules/sightline.yml.
var Alerts = []Alert{
	{Name: "SLOFastBurn", Severity: "page", Long: time.Hour, Short: 5 * time.Minute, Factor: fastFactor, BudgetSpent: 0.02},
	{Name: "SLOSlowBurn", Severity: "page", Long: 6 * time.Hour, Short: 30 * time.Minute, Factor: 6, BudgetSpent: 0.05},
	{Name: "SLOSustainedBurn", Severity: "ticket", Long: 72 * time.Hour, Short: 6 * time.Hour, Factor: 1, BudgetSpent: 0.10},
}

// Window is a span burn rates are reported over.
type Window struct {
	// Name is the unscaled span ("1h").
	Name string
	Span time.Duration
}

// Windows are the spans [Status] reports burn rates over: every window
// of [Alerts], shortest first.
var Windows = []Window{
	{"5m", 5 * time.Minute}, {"30m", 30 * time.Minute}, {"1h", time.Hour}, {"6h", 6 * time.Hour}, {"3d", 72 * time.Hour},
}

// longestWindow is the longest span of Windows.
const longestWindow = 72 * time.Hour

// Status is one SLO's state at a moment, the body of an entry of GET
// /v1/slos.
type Status struct {
	SLO         string  `json:"slo"`
	Description string  `json:"description"`
	Objective   float64 `json:"objective"`
	// ThresholdSeconds is the latency SLO's threshold; 0 for availability.
	ThresholdSeconds float64 `json:"threshold_seconds,omitempty"`
	// PeriodSeconds is the (scaled) period the objective holds over.
	PeriodSeconds float64 `json:"period_seconds"`
	// Since is the start of the data the budget is computed from: the
	// later of the node's start and the beginning of the period.
	Since time.Time `json:"since"`
	// Good and Bad are the events since Since.
	Good int64 `json:"good"`
	Bad  int64 `json:"bad"`
	// BudgetRemaining is the share of the period's error budget left: 1
	// minus the burn rate over the period (see [Burn]; a node that started
	// less than a period ago has spent only what it served). 1 with no
	// events; negative once overspent.
	BudgetRemaining float64 `json:"budget_remaining"`
	// BurnRates are the burn rates over Windows, shortest first.
	BurnRates []Burn `json:"burn_rates"`
	// Alerts are the burn-rate alerts of this SLO, in the order of
	// [Alerts].
	Alerts []AlertStatus `json:"alerts"`
}

// Burn is an SLO's burn rate over one window.
type Burn struct {
	// Window is the unscaled window's name ("1h"); WindowSeconds its
	// scaled length.
	Window        string  `json:"window"`
	WindowSeconds float64 `json:"window_seconds"`
	Events        int64   `json:"events"`
	Bad           int64   `json:"bad"`
	// ErrorRatio is Bad / Events, and BurnRate ErrorRatio / (1 −
	// objective): 1 spends exactly the budget over the period. When the
	// window reaches back before the node started, that part counts as
	// good traffic at the rate seen since, so BurnRate is ErrorRatio /
	// (1 − objective) × (time since the start / window). Both are 0
	// without events.
	ErrorRatio float64 `json:"error_ratio"`
	BurnRate   float64 `json:"burn_rate"`
}

// AlertStatus is one burn-rate alert's condition for one SLO.
type AlertStatus struct {
	Name     string  `json:"name"`
	Severity string  `json:"severity"`
	Factor   float64 `json:"factor"`
	// LongWindow and ShortWindow name the unscaled windows.
	LongWindow       string  `json:"long_window"`
	ShortWindow      string  `json:"short_window"`
	LongBurnRate     float64 `json:"long_burn_rate"`
	ShortBurnRate    float64 `json:"short_burn_rate"`
	LongWindowEvents int64   `json:"long_window_events"`
	// Burning is whether the alert's condition holds now: both burn rates
	// above Factor with at least the minimum events in the long window.
	Burning bool `json:"burning"`
	// State is the evaluator's state of the alert ("firing", "pending",
	// or "inactive"); the tracker leaves it empty, the node fills it.
	State string `json:"state,omitempty"`
}

var descriptions = map[string]string{
	Availability: "recommendation requests answered without a 5xx and without a fallback caused by a failed or late dependency",
	Latency:      "recommendation decisions that took at most the threshold",
}

// windowName names an unscaled span of Windows.
func windowName(d time.Duration) string {
	for _, w := range Windows {
		if w.Span == d {
			return w.Name
		}
	}
	return d.String()
}

// burn returns the counts of r over the window w (scaled) ending at now,
// their error ratio and the burn rate. A window that reaches back before
// the tracker started counts that part as good traffic at the rate seen
// since, as if the node had served well before: the burn rate is the bad
// events over the events the whole window would hold. Otherwise a node
// that just started, with a few minutes of data in every window, would
// read one early failure as days of burn. Ratio and rate are 0 without
// events.
func (t *Tracker) burn(r *ring, width time.Duration, objective float64, w time.Duration, now time.Time) (c counts, ratio, rate float64) {
	c = r.sum(now, w)
	if c.total() == 0 {
		return c, 0, 0
	}
	covered := min(w, max(now.Sub(t.start), width))
	ratio = float64(c.bad) / float64(c.total())
	return c, ratio, ratio / (1 - objective) * covered.Seconds() / w.Seconds()
}

// Status returns each SLO's budget, burn rates and alert conditions at
// now, in the order of [Names].
func (t *Tracker) Status(now time.Time) []Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Status, 0, 2)
	for _, s := range []*series{t.avail, t.lat} {
		st := Status{SLO: s.name, Description: descriptions[s.name], Objective: s.objective, PeriodSeconds: t.scale(Period).Seconds()}
		if s.name == Latency {
			st.ThresholdSeconds = t.cfg.LatencyThreshold.Seconds()
		}
		st.Since = t.start
		if from := now.Add(-t.scale(Period)); from.After(st.Since) {
			st.Since = from
		}
		period, _, spent := t.burn(s.coarse, t.coarseWidth, s.objective, t.scale(Period), now)
		st.Good, st.Bad = period.good, period.bad
		st.BudgetRemaining = 1 - spent
		for _, w := range Windows {
			c, ratio, rate := t.burn(s.fine, t.fineWidth, s.objective, t.scale(w.Span), now)
			st.BurnRates = append(st.BurnRates, Burn{Window: w.Name, WindowSeconds: t.scale(w.Span).Seconds(), Events: c.total(), Bad: c.bad, ErrorRatio: ratio, BurnRate: rate})
		}
		for _, a := range Alerts {
			st.Alerts = append(st.Alerts, t.condition(s, a, now))
		}
		out = append(out, st)
	}
	return out
}

// condition evaluates alert a for s at now. The caller holds t.mu.
func (t *Tracker) condition(s *series, a Alert, now time.Time) AlertStatus {
	long, _, lr := t.burn(s.fine, t.fineWidth, s.objective, t.scale(a.Long), now)
	_, _, sr := t.burn(s.fine, t.fineWidth, s.objective, t.scale(a.Short), now)
	return AlertStatus{
		Name: a.Name, Severity: a.Severity, Factor: a.Factor,
		LongWindow: windowName(a.Long), ShortWindow: windowName(a.Short),
		LongBurnRate: lr, ShortBurnRate: sr, LongWindowEvents: long.total(),
		Burning: long.total() >= t.cfg.MinRequests && lr > a.Factor && sr > a.Factor,
	}
}

// Burning returns, for the alert named name, the SLOs whose condition
// holds at now and their long-window burn rates.
func (t *Tracker) Burning(name string, now time.Time) map[string]float64 {
	var a Alert
	for _, x := range Alerts {
		if x.Name == name {
			a = x
		}
	}
	out := map[string]float64{}
	if a.Name == "" {
		return out
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range []*series{t.avail, t.lat} {
		if c := t.condition(s, a, now); c.Burning {
			out[s.name] = c.LongBurnRate
		}
	}
	return out
}
