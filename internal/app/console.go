package app

import (
	"context"
	"net/http"
	"sync"

	"github.com/sightline/sightline/internal/console"
	"github.com/sightline/sightline/internal/engine"
)

// consolePaths are the console's pages, mounted next to the API so that
// unknown API paths keep their problem+json answers.
var consolePaths = []string{
	"GET /{$}", "GET /traces", "GET /traces/{trace_id}", "GET /logs", "GET /decisions",
	"GET /decisions/{request_id}", "GET /model", "GET /alerts", "GET /drills",
	"GET /static/", "GET /console/api/series",
}

func (n *Node) buildConsole() (*console.Console, error) {
	return console.New(console.Config{
		Traces:    n.tel.Flight(),
		Logs:      n.tel.Logs(),
		Decisions: n.engine,
		Stats:     consoleStats{n},
		Alerts:    consoleAlerts{n},
		Quality:   consoleQuality{n},
		Drills:    consoleDrills{n},
		Now:       n.cfg.Now,
		Logger:    n.logger,
	})
}

type consoleStats struct{ n *Node }

func (c consoleStats) Overview(context.Context) console.Overview {
	_, lag := c.n.log.Lag(consumerModel)
	return console.Overview{Stats: c.n.live.Snapshot(), ModelVersion: c.n.model().Version(), IngestLag: lag}
}

type consoleAlerts struct{ n *Node }

func (c consoleAlerts) Alerts() []console.AlertView {
	alerts, _ := c.n.allAlerts(context.Background())
	out := make([]console.AlertView, 0, len(alerts))
	for _, a := range alerts {
		v := console.AlertView{
			Name: a.Name, State: a.State, Severity: a.Severity, Summary: a.Summary, Description: a.Description,
			RunbookURL: a.RunbookURL, Labels: a.Labels, Value: a.Value, ActiveAt: a.ActiveAt, FiredAt: a.FiredAt,
			ResolvedAt: a.ResolvedAt, ExampleTraces: a.ExampleTraces,
		}
		for _, h := range a.Hints {
			name := h.Feature
			switch {
			case h.Reason != "":
				name = h.Reason
			case h.Stage != "":
				name = h.Stage
			}
			v.Hints = append(v.Hints, console.HintView{Kind: string(h.Kind), Name: name, Segment: h.Segment, Detail: h.Detail, Score: h.Score})
		}
		out = append(out, v)
	}
	return out
}

type consoleDrills struct{ n *Node }

func (c consoleDrills) Faults() []console.FaultView {
	fs := c.n.FaultStates()
	out := make([]console.FaultView, len(fs))
	for i, f := range fs {
		out[i] = console.FaultView{Name: f.Name, Description: f.Description, Active: f.Active, Since: f.Since}
	}
	return out
}

// confidenceBuckets are the upper bounds of the console's confidence histogram.
var confidenceBuckets = []float64{0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1}

// decisionCounts tallies decisions by confidence bucket and variant for the
// console, since the node started.
type decisionCounts struct {
	mu       sync.Mutex
	buckets  []int64
	variants map[string]int64
}

func (dc *decisionCounts) observe(d *engine.Decision) {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if dc.buckets == nil {
		dc.buckets = make([]int64, len(confidenceBuckets))
		dc.variants = map[string]int64{}
	}
	dc.variants[d.Variant]++
	if d.Fallback != engine.ReasonNone && d.Confidence == 0 {
		return
	}
	for i, ub := range confidenceBuckets {
		if d.Confidence <= ub {
			dc.buckets[i]++
			break
		}
	}
}

type consoleQuality struct{ n *Node }

// cluster is the trainer's quality state on an API node, nil elsewhere or
// when there is none: an API node's console shows the cluster's quality.
func (c consoleQuality) cluster() *clusterQuality {
	if c.n.cfg.Role != RoleAPI {
		return nil
	}
	return c.n.clusterQuality(context.Background())
}

func (c consoleQuality) Features() []console.FeatureView {
	fs := c.n.quality.monitor.Features()
	if cq := c.cluster(); cq != nil {
		fs = cq.Features
	}
	out := make([]console.FeatureView, len(fs))
	for i, f := range fs {
		v := console.FeatureView{Name: f.Name, NullRatio: f.NullRatio, BaselineNullRatio: f.BaselineNullRatio, PSI: f.PSI, Samples: f.Samples}
		for _, s := range f.BySegment {
			v.BySegment = append(v.BySegment, console.SegmentView{Segment: s.Segment, NullRatio: s.NullRatio, BaselineNullRatio: s.BaselineNullRatio, PSI: s.PSI, Samples: s.Samples})
		}
		out[i] = v
	}
	return out
}

func (c consoleQuality) CTR() []console.VariantView {
	vs := c.n.quality.engagement.CTR()
	if cq := c.cluster(); cq != nil {
		vs = cq.CTR
	}
	out := make([]console.VariantView, len(vs))
	for i, v := range vs {
		out[i] = console.VariantView{Variant: v.Variant, Impressions: v.Impressions, Clicks: v.Clicks, CTR: v.CTR, Baseline: v.Baseline, Ratio: v.Ratio}
	}
	return out
}

func (c consoleQuality) Confidence() []console.BucketView {
	dc := &c.n.counts
	dc.mu.Lock()
	defer dc.mu.Unlock()
	out := make([]console.BucketView, len(confidenceBuckets))
	for i, ub := range confidenceBuckets {
		out[i] = console.BucketView{Upper: ub}
		if dc.buckets != nil {
			out[i].Count = dc.buckets[i]
		}
	}
	return out
}

func (c consoleQuality) Calibration() console.CalibrationView {
	ev := c.n.model().Eval()
	if cq := c.cluster(); cq != nil {
		ev = cq.Calibration
	}
	return console.CalibrationView{MeanPredicted: ev.MeanPredicted, Observed: ev.ObservedCTR, Samples: ev.Count}
}

func (c consoleQuality) VariantUsage() map[string]int64 {
	dc := &c.n.counts
	dc.mu.Lock()
	defer dc.mu.Unlock()
	out := make(map[string]int64, len(dc.variants))
	for k, v := range dc.variants {
		out[k] = v
	}
	return out
}

func mountConsole(mount map[string]http.Handler, h http.Handler) {
	for _, p := range consolePaths {
		mount[p] = h
	}
}
