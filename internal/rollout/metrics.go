package rollout

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// stages lists the stages the stage gauge reports.
var stages = []Stage{Idle, Shadow, Canary, Promoting, Promoted, RolledBack}

// metrics are the controller's Prometheus metrics.
type metrics struct {
	stage         *prometheus.GaugeVec
	share         prometheus.Gauge
	transitions   *prometheus.CounterVec
	guardrail     *prometheus.GaugeVec
	persistErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, c *Controller) (*metrics, error) {
	m := &metrics{
		stage: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sightline_rollout_stage",
			Help: "1 for the stage the model rollout is in, 0 for the others.",
		}, []string{"stage"}),
		share: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sightline_rollout_challenger_share",
			Help: "Share of the champion's users the challenger model serves (0..1).",
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_rollout_transitions_total",
			Help: "Model rollout transitions by stage entered and reason (start, step, promote, abort, inconclusive, restored, promote_failed or the failing guardrail).",
		}, []string{"to", "reason"}),
		guardrail: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sightline_rollout_guardrail_status",
			Help: "Verdict of each rollout guardrail at the last check: 1 pass, 0 wait, -1 fail.",
		}, []string{"guardrail"}),
		persistErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sightline_rollout_state_write_errors_total",
			Help: "Rollout state writes (the state file, or the registry on a cluster) that failed.",
		}),
	}
	m.setStage(c.st.Stage, c.st.Share)
	if reg == nil {
		return m, nil
	}
	for _, col := range []prometheus.Collector{m.stage, m.share, m.transitions, m.guardrail, m.persistErrors} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("rollout: register metrics: %w", err)
		}
	}
	return m, nil
}

// unregister removes the metrics from reg.
func (m *metrics) unregister(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	for _, col := range []prometheus.Collector{m.stage, m.share, m.transitions, m.guardrail, m.persistErrors} {
		reg.Unregister(col)
	}
}

// transition records entering stage to for reason, at share.
func (m *metrics) transition(to Stage, reason string, share float64) {
	m.setStage(to, share)
	m.transitions.WithLabelValues(string(to), reason).Inc()
}

// setStage sets the stage and share gauges.
func (m *metrics) setStage(stage Stage, share float64) {
	for _, s := range stages {
		v := 0.0
		if s == stage {
			v = 1
		}
		m.stage.WithLabelValues(string(s)).Set(v)
	}
	m.share.Set(share)
}

// observeChecks records the guardrails' verdicts.
func (m *metrics) observeChecks(checks []Check) {
	for _, k := range checks {
		v := 0.0
		switch k.Status {
		case Pass:
			v = 1
		case Fail:
			v = -1
		}
		m.guardrail.WithLabelValues(k.Name).Set(v)
	}
}
