package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/experiment"
	"github.com/sightline/sightline/internal/quality"
	"github.com/sightline/sightline/internal/slo"
	"github.com/sightline/sightline/internal/telemetry"
)

// baselineKey names the feature baseline in the model snapshot's Extra: the
// distribution of inputs the model was trained on travels with the model.
const baselineKey = "feature_baseline"

// qualityParts are the node's ML-observability signals and alerting.
type qualityParts struct {
	monitor    *quality.Monitor
	engagement *quality.Engagement
	decisions  *quality.Decisions
	evaluator  *quality.Evaluator
	slo        *slo.Tracker // the SLOs' counters and burn-rate alerts
	started    time.Time
	drops      *telemetry.DropShare // share of telemetry dropped
}

func (n *Node) buildQuality() error {
	now := n.cfg.Now
	variants := make([]string, 0, len(n.engine.Variants()))
	for _, v := range n.engine.Variants() {
		variants = append(variants, v.Name)
	}
	q := &n.quality
	q.started = now()
	q.drops = telemetry.NewDropShare(n.reg, dropWindow)
	// In a cluster the trainer computes the quality signals over all
	// traffic and alone exports them; an API node keeps its own for its
	// console's fallback view, unexported, so a sum over instances does not
	// count the cluster's traffic once per node.
	var reg prometheus.Registerer = n.reg
	if n.cfg.Role == RoleAPI {
		reg = nil
	}
	var err error
	q.monitor, err = quality.NewMonitor(quality.MonitorConfig{
		Features:   event.UserAttributes,
		Segments:   n.cfg.Segments,
		Window:     n.cfg.QualityWindow,
		Registerer: reg,
		Now:        now,
	})
	if err != nil {
		return err
	}
	q.engagement, err = quality.NewEngagement(quality.EngagementConfig{
		Variants:   variants,
		Channels:   n.cfg.Channels,
		Window:     n.cfg.QualityWindow,
		HalfLife:   n.cfg.CTRBaselineHalfLife,
		Registerer: reg,
		Now:        now,
	})
	if err != nil {
		return err
	}
	reasons := make([]string, 0, len(engine.Reasons))
	for _, r := range engine.Reasons {
		reasons = append(reasons, string(r))
	}
	q.decisions, err = quality.NewDecisions(q.monitor, quality.DecisionsConfig{
		Reasons: reasons,
		Stages:  []string{engine.StageFeatures, engine.StageCandidates, engine.StageInference, engine.StageRules},
		Window:  n.cfg.QualityWindow,
		Now:     now,
	})
	if err != nil {
		return err
	}
	sig := quality.Signals{Monitor: q.monitor, Engagement: q.engagement, Decisions: q.decisions, Inputs: qualityInputs{n}}
	var rules []quality.Rule
	for _, r := range quality.DefaultRules(sig, quality.AlertConfig{}) {
		// An API node alerts on what is its own: its latency, errors,
		// fallbacks and telemetry. The cluster's quality alerts come from
		// the trainer (allAlerts).
		if n.cfg.Role != RoleAPI || nodeRules[r.Name] {
			rules = append(rules, r)
		}
	}
	rules = append(rules, n.srmRule())
	if q.slo, err = n.buildSLO(); err != nil {
		return err
	}
	rules = append(rules, q.slo.Rules()...)
	if n.dlog != nil {
		rules = append(rules, n.decisionLogRule())
	}
	q.evaluator, err = quality.NewEvaluator(sig, quality.EvaluatorConfig{Logger: n.logger, Rules: rules})
	return err
}

// srmRule is the in-process SampleRatioMismatch alert: the decisions each
// variant served do not fit the split (the rule of the same name in
// deploy/prometheus).
func (n *Node) srmRule() quality.Rule {
	return quality.Rule{
		Name: "SampleRatioMismatch", Severity: "ticket", For: 10 * time.Minute,
		Summary:     "The variant split does not match its configuration: chi-square p-value {value}",
		Description: fmt.Sprintf("The decisions each variant served do not fit --split (p < %g): until the cause is found, no comparison of the variants can be trusted.", experiment.SRMThreshold),
		RunbookURL:  "docs/runbooks/SampleRatioMismatch.md",
		Expr: func(time.Time) []quality.Sample {
			if srm := n.experiments.Report().SRM; srm.Mismatch {
				return []quality.Sample{{Labels: map[string]string{}, Value: srm.P}}
			}
			return nil
		},
	}
}

// nodeRules are the alert rules about one node rather than the cluster's
// traffic.
var nodeRules = map[string]bool{"HighP99Latency": true, "HighErrorRate": true, "HighFallbackRate": true, "TelemetryDropping": true}

// observeQuality feeds one decision to the quality signals.
func (n *Node) observeQuality(d *engine.Decision) {
	var arr [8]quality.StageDuration // ObserveDecision keeps none of it: on the stack
	stages := arr[:0]
	for _, s := range d.Stages {
		stages = append(stages, quality.StageDuration{Stage: s.Stage, Duration: s.Duration})
	}
	n.observeSLO(d)
	n.quality.decisions.ObserveDecision(quality.DecisionObs{
		Variant:    d.Variant,
		Channel:    n.engine.Channel(d.Channel),
		Segment:    d.Segment,
		Fallback:   string(d.Fallback),
		Confidence: d.Confidence,
		Duration:   d.Duration,
		Stages:     stages,
		TraceID:    d.TraceID,
		Features:   d.Features, // nil when the store failed: no data signal
	})
}

// EvaluateAlerts runs one evaluation of the alert rules at now, capturing
// the feature baseline first if none exists and the window is warm. The
// node calls it every AlertInterval; drills call it on their clock.
func (n *Node) EvaluateAlerts(ctx context.Context, now time.Time) []quality.Transition {
	q := &n.quality
	if !q.monitor.HasBaseline() && now.Sub(q.started) >= n.cfg.QualityWindow {
		b := q.monitor.CaptureBaseline()
		n.logger.InfoContext(ctx, "feature baseline captured", slog.Time("at", b.CapturedAt))
	}
	if err := q.drops.Update(now); err != nil {
		n.logger.WarnContext(ctx, "gather telemetry counters", slog.Any("err", err))
	}
	return q.evaluator.Evaluate(ctx, now)
}

// dropWindow is the span over which the telemetry drop share is computed.
const dropWindow = 5 * time.Minute

// qualityInputs supplies the signals the quality package does not own.
type qualityInputs struct{ n *Node }

func (in qualityInputs) ErrorRate() float64 { return in.n.live.Snapshot().ErrorRate }

func (in qualityInputs) IngestLagSeconds() float64 {
	_, age := in.n.lag()
	return age.Seconds()
}

func (in qualityInputs) TelemetryDropRate() float64 { return in.n.quality.drops.Share() }

func (in qualityInputs) Calibration() (float64, float64, int64) {
	ev := in.n.model().Eval()
	return ev.MeanPredicted, ev.ObservedCTR, ev.Count
}

// baselineExtra encodes the feature baseline for the model snapshot.
func (n *Node) baselineExtra() map[string]json.RawMessage {
	if !n.quality.monitor.HasBaseline() {
		return nil
	}
	b, err := json.Marshal(n.quality.monitor.Baseline())
	if err != nil {
		return nil
	}
	return map[string]json.RawMessage{baselineKey: b}
}

// restoreBaseline loads the feature baseline saved with the model.
func (n *Node) restoreBaseline(extra map[string]json.RawMessage) {
	raw, ok := extra[baselineKey]
	if !ok {
		return
	}
	var b quality.Baseline
	if err := json.Unmarshal(raw, &b); err != nil {
		n.logger.Warn("feature baseline in the model snapshot is unreadable; a new one will be captured", slog.String("err", err.Error()))
		return
	}
	n.quality.monitor.SetBaseline(b)
}

// alertsBody is the body of GET /v1/alerts.
type alertsBody struct {
	// Alerts are this node's alerts and, on an API node, the cluster's
	// (labelled scope=cluster and the trainer's node name).
	Alerts []quality.Alert `json:"alerts"`
	// Cluster is the state the cluster's alerts come from, on an API node.
	Cluster *clusterQuality `json:"cluster,omitempty"`
}

func (n *Node) listAlerts(w http.ResponseWriter, _ *http.Request) {
	alerts, cq := n.allAlerts()
	writeJSON(w, alertsBody{Alerts: alerts, Cluster: cq})
}

// allAlerts returns the node's alerts, and on an API node the cluster's
// from the trainer's published quality state.
func (n *Node) allAlerts() ([]quality.Alert, *clusterQuality) {
	alerts := n.quality.evaluator.Alerts()
	if n.cfg.Role != RoleAPI {
		return alerts, nil
	}
	for i := range alerts {
		alerts[i].Labels = withLabel(alerts[i].Labels, "scope", "node")
	}
	cq := n.clusterQuality()
	if cq == nil {
		return alerts, nil
	}
	for _, a := range cq.Alerts {
		a.Labels = withLabel(a.Labels, "scope", "cluster")
		a.Labels["trainer"] = cq.Trainer
		alerts = append(alerts, a)
	}
	return alerts, cq
}

func withLabel(l map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(l)+2)
	for lk, lv := range l {
		out[lk] = lv
	}
	out[k] = v
	return out
}

// QualityFeatures returns the per-feature null rates and drift.
func (n *Node) QualityFeatures() []quality.FeatureStats { return n.quality.monitor.Features() }

// Alerts returns the alerts evaluated in process.
func (n *Node) Alerts() []quality.Alert { return n.quality.evaluator.Alerts() }
