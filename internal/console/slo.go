package console

import (
	"time"
)

// SLOs reports the node's service level objectives: error budget left,
// burn rates and the state of the burn-rate alerts. The console calls it
// on Alerts page requests, concurrently; it must be cheap and must not
// block on I/O.
type SLOs interface {
	// SLOs returns each SLO's state now.
	SLOs() []SLOView
}

// SLOView is one SLO as the SLOs panel shows it.
type SLOView struct {
	// Name is "availability" or "latency".
	Name        string
	Description string
	// Objective is the share of good events the SLO promises over its
	// period (0.999).
	Objective float64
	// Threshold is the latency SLO's threshold in seconds; 0 otherwise.
	Threshold float64
	// BudgetRemaining is the share of the period's error budget left;
	// negative once overspent.
	BudgetRemaining float64
	// Good and Bad are the events counted since Since.
	Good, Bad int64
	Since     time.Time
	// Burn is the burn rate by window name ("5m", "30m", "1h", "6h",
	// "3d"): 1 spends exactly the budget over the period.
	Burn map[string]float64
	// Alerts are the SLO's burn-rate alerts.
	Alerts []SLOAlertView
	// WindowScale is the factor the windows are scaled by (1 but in
	// drills).
	WindowScale float64
}

// SLOAlertView is one burn-rate alert of an SLO.
type SLOAlertView struct {
	Name     string
	Severity string
	// Factor is the burn rate over both windows that fires it.
	Factor                  float64
	LongWindow, ShortWindow string
	// State is "firing", "pending" or "inactive".
	State string
}

// sloPanel is the SLOs panel of the Alerts page.
type sloPanel struct {
	Rows []sloRow
	// Scaled is set when the windows are scaled (a drill), with the
	// factor.
	Scaled      bool
	WindowScale float64
}

// sloRow is one SLO with the burn rates the panel shows, each flagged
// when it is above the factor of the alert whose long window it is.
type sloRow struct {
	SLOView
	Burns []sloBurn
	// Events is Good + Bad.
	Events    int64
	Overspent bool
	// ThresholdS is Threshold as a duration, 0 without one.
	ThresholdS time.Duration
}

type sloBurn struct {
	Window string
	Rate   float64
	// Over marks a rate above its alert's factor.
	Over bool
}

// panelWindows are the burn-rate columns: the long window of each alert.
var panelWindows = []string{"1h", "6h", "3d"}

func (c *Console) sloPanel() *sloPanel {
	if c.cfg.SLOs == nil {
		return nil
	}
	p := &sloPanel{}
	for _, v := range c.cfg.SLOs.SLOs() {
		r := sloRow{SLOView: v, Events: v.Good + v.Bad, Overspent: v.BudgetRemaining < 0, ThresholdS: time.Duration(v.Threshold * float64(time.Second))}
		for _, w := range panelWindows {
			b := sloBurn{Window: w, Rate: v.Burn[w]}
			for _, a := range v.Alerts {
				if a.LongWindow == w && b.Rate > a.Factor {
					b.Over = true
				}
			}
			r.Burns = append(r.Burns, b)
		}
		if v.WindowScale != 0 && v.WindowScale != 1 {
			p.Scaled, p.WindowScale = true, v.WindowScale
		}
		p.Rows = append(p.Rows, r)
	}
	return p
}
