package app

import (
	"net/http"

	"github.com/sightline/sightline/internal/console"
	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/quality"
	"github.com/sightline/sightline/internal/slo"
)

// buildSLO builds the node's SLO tracker (internal/slo) from cfg.SLO. A
// node counts the recommendations it answers and exports the counters; a
// trainer counts the cluster's decisions it reads from the decision
// stream for its own console and alerts, unexported, so that a sum over
// instances counts each request once (the API nodes export them).
func (n *Node) buildSLO() (*slo.Tracker, error) {
	c := n.cfg.SLO
	c.Now = n.cfg.Now
	if n.cfg.Role != RoleTrainer {
		c.Registerer = n.reg
	}
	return slo.New(c)
}

// observeSLO counts one decision for the SLOs.
func (n *Node) observeSLO(d *engine.Decision) {
	n.quality.slo.ObserveDecision(d.Fallback, d.Duration)
}

// recommendationRoutes are the routes the availability SLO counts.
var recommendationRoutes = map[string]bool{
	"POST /v1/recommendations":                true,
	"GET /v1/users/{user_id}/recommendations": true,
}

// observeSLOStatus counts a 5xx answer of a recommendation route against
// the availability SLO (other answers were counted with their decision).
func (n *Node) observeSLOStatus(pattern string, status int) {
	if status >= 500 && recommendationRoutes[pattern] {
		n.quality.slo.ObserveServerError()
	}
}

// slosBody is the body of GET /v1/slos.
type slosBody struct {
	// WindowScale is the factor every window and the period are scaled
	// by (1 but in drills).
	WindowScale float64 `json:"window_scale"`
	// SLOs are the availability and latency SLOs: objective, budget left,
	// burn rates and the state of their alerts.
	SLOs []slo.Status `json:"slos"`
}

func (n *Node) listSLOs(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, slosBody{WindowScale: n.quality.slo.WindowScale(), SLOs: n.SLOs()})
}

// SLOs returns the state of each SLO now, with its alerts' states from
// the in-process evaluator.
func (n *Node) SLOs() []slo.Status {
	st := n.quality.slo.Status(n.cfg.Now())
	states := map[string]string{}
	for _, a := range n.quality.evaluator.Alerts() {
		if a.State != quality.StateResolved {
			states[a.Name+"/"+a.Labels["slo"]] = a.State
		}
	}
	for i := range st {
		for j := range st[i].Alerts {
			a := &st[i].Alerts[j]
			a.State = states[a.Name+"/"+st[i].SLO]
			if a.State == "" {
				a.State = quality.StateInactive
			}
		}
	}
	return st
}

// SLOs implements console.SLOs.
func (c consoleSource) SLOs() []console.SLOView {
	sts := c.n.SLOs()
	out := make([]console.SLOView, len(sts))
	for i, s := range sts {
		v := console.SLOView{
			Name: s.SLO, Description: s.Description, Objective: s.Objective, Threshold: s.ThresholdSeconds,
			BudgetRemaining: s.BudgetRemaining, Good: s.Good, Bad: s.Bad, Since: s.Since,
			WindowScale: c.n.quality.slo.WindowScale(), Burn: map[string]float64{},
		}
		for _, b := range s.BurnRates {
			v.Burn[b.Window] = b.BurnRate
		}
		for _, a := range s.Alerts {
			v.Alerts = append(v.Alerts, console.SLOAlertView{Name: a.Name, Severity: a.Severity, Factor: a.Factor, LongWindow: a.LongWindow, ShortWindow: a.ShortWindow, State: a.State})
		}
		out[i] = v
	}
	return out
}
