package app

import (
	"context"
	"net/http"

	"github.com/sightline/sightline/internal/console"
)

// consolePaths are the console's pages, mounted next to the API so that
// unknown API paths keep their problem+json answers.
var consolePaths = []string{
	"GET /{$}", "GET /traces", "GET /traces/{trace_id}", "GET /logs", "GET /decisions",
	"GET /decisions/{request_id}", "GET /model", "GET /experiments", "GET /rollouts", "GET /evaluate", "GET /alerts", "GET /drills",
	"GET /static/", "GET /console/api/series",
}

func (n *Node) buildConsole() (*console.Console, error) {
	cfg := console.Config{
		Traces:      n.tel.Flight(),
		Logs:        n.tel.Logs(),
		Decisions:   n.engine,
		Stats:       consoleSource{n},
		Alerts:      consoleSource{n},
		Quality:     consoleSource{n},
		Drills:      consoleSource{n},
		Experiments: consoleExperiments{n},
		Evaluations: newConsoleEvaluations(n.cfg.DataDir),
		SLOs:        consoleSource{n},
		Now:         n.cfg.Now,
		Logger:      n.logger,
	}
	if n.cfg.Role != RoleAll {
		cfg.Cluster = &consoleCluster{n: n}
	}
	if n.rollout != nil || n.cfg.Role != RoleAll {
		cfg.Rollouts = consoleRollouts{n} // a cluster node shows the cluster's
	}
	return console.New(cfg)
}

func mountConsole(mount map[string]http.Handler, h http.Handler) {
	for _, p := range consolePaths {
		mount[p] = h
	}
}

// consoleSource is what the console reads of the node. On an API node the
// quality panels and the alerts show the cluster's, as the trainer last
// published them (cached: no call blocks on I/O).
type consoleSource struct{ n *Node }

func (c consoleSource) Overview(context.Context) console.Overview {
	_, lag := c.n.lag()
	return console.Overview{Stats: c.n.live.Snapshot(), ModelVersion: c.n.model().Version(), IngestLag: lag}
}

func (c consoleSource) Alerts() []console.AlertView {
	alerts, _ := c.n.allAlerts()
	return console.AlertViews(alerts)
}

func (c consoleSource) Faults() []console.FaultView {
	fs := c.n.FaultStates()
	out := make([]console.FaultView, len(fs))
	for i, f := range fs {
		out[i] = console.FaultView{Name: f.Name, Description: f.Description, Active: f.Active, Since: f.Since}
	}
	return out
}

func (c consoleSource) Features() []console.FeatureView {
	if cq := c.n.clusterQuality(); cq != nil {
		return console.FeatureViews(cq.Features)
	}
	return console.FeatureViews(c.n.quality.monitor.Features())
}

func (c consoleSource) CTR() []console.VariantView {
	if cq := c.n.clusterQuality(); cq != nil {
		return console.VariantViews(cq.CTR)
	}
	return console.VariantViews(c.n.quality.engagement.CTR())
}

func (c consoleSource) Confidence() []console.BucketView { return c.n.counts.Confidence() }

func (c consoleSource) Calibration() console.CalibrationView {
	if cq := c.n.clusterQuality(); cq != nil {
		return console.CalibrationOf(cq.Calibration)
	}
	return console.CalibrationOf(c.n.model().Eval())
}

func (c consoleSource) VariantUsage() map[string]int64 { return c.n.counts.VariantUsage() }
