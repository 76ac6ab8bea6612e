package app

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sightline/sightline/internal/console"
	"github.com/sightline/sightline/internal/evaluate"
	"github.com/sightline/sightline/internal/experiment"
)

// What the console reads of a node beyond its quality figures: the live
// experiment, the last offline evaluation saved in the data directory
// and, on a cluster node, the cluster's active trainer and served rows.
// Each converts its package's own types to the console's views.

// experimentView converts the experiment's report (the body of GET
// /v1/experiments) to the console's view.
func experimentView(r experiment.Report) console.ExperimentView {
	v := console.ExperimentView{
		Control: r.Control,
		SRM:     console.SRMView{ChiSquare: r.SRM.ChiSquare, P: r.SRM.P, Threshold: experiment.SRMThreshold, Mismatch: r.SRM.Mismatch},
	}
	for _, x := range r.Variants {
		xv := console.ExperimentVariantView{
			Name: x.Name, Weight: x.Weight, Decisions: x.Assignments,
			Impressions: x.CTR.Trials, Clicks: x.CTR.Successes, Conversions: x.Conversion.Successes,
			CTR:        rateView(x.CTR),
			Conversion: rateView(x.Conversion),
			PValue:     x.PValue, MDE: x.MDE,
		}
		if l := x.Lift; l != nil {
			xv.Lift = &console.LiftView{
				Absolute: l.Absolute, AbsoluteLow: l.AbsoluteCI.Low, AbsoluteHigh: l.AbsoluteCI.High,
				Relative: l.Relative, RelativeLow: l.RelativeCI.Low, RelativeHigh: l.RelativeCI.High,
			}
		}
		v.Variants = append(v.Variants, xv)
	}
	return v
}

func rateView(r experiment.Rate) console.RateView {
	return console.RateView{Value: r.Value, Low: r.CI.Low, High: r.CI.High}
}

// consoleExperiments is the live experiment as the console reads it.
type consoleExperiments struct{ n *Node }

func (c consoleExperiments) Experiment() console.ExperimentView {
	return experimentView(c.n.experiments.Report())
}

// holderTTL is how long a cluster node's console reuses the lease holder
// it read from the registry, and holderWait how long a read may take.
const (
	holderTTL  = 2 * time.Second
	holderWait = 300 * time.Millisecond
)

// consoleCluster is a cluster node's cluster panel: the lease holder, read
// from the registry at most every holderTTL, and the served rows — the
// active trainer's own counts, or on an API node the quality state it last
// read from the registry.
type consoleCluster struct {
	n *Node

	mu      sync.Mutex
	readAt  time.Time
	holder  string
	readErr error
}

// trainer returns the lease holder, read again when the cached one is
// older than holderTTL; on a failed read, the last one read and the error.
func (c *consoleCluster) trainer(ctx context.Context) (string, error) {
	now := time.Now()
	c.mu.Lock()
	if !c.readAt.IsZero() && now.Sub(c.readAt) < holderTTL {
		h, err := c.holder, c.readErr
		c.mu.Unlock()
		return h, err
	}
	c.mu.Unlock()
	if c.n.registry == nil {
		return "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, holderWait)
	defer cancel()
	h, err := c.n.registry.Holder(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readAt, c.readErr = now, err
	if err == nil {
		c.holder = h
	}
	return c.holder, err
}

func (c *consoleCluster) Cluster(ctx context.Context) console.ClusterView {
	n := c.n
	v := console.ClusterView{Node: n.cfg.NodeName, Role: n.cfg.Role}
	if n.cfg.Role == RoleTrainer && n.cluster.active.Load() {
		// The active trainer counts the rows itself: no registry read.
		v.Active, v.Trainer, v.Publisher = true, n.cfg.NodeName, n.cfg.NodeName
		v.Evaluated = n.cfg.Now()
		if p := n.cluster.published.Load(); p != nil {
			v.ModelVersion = p.Version
		}
		v.Served = servedViews(n.cluster.served.latest())
		return v
	}
	var err error
	if v.Trainer, err = c.trainer(ctx); err != nil {
		v.Problem = "the lease holder could not be read from the registry: " + err.Error()
	}
	if cq := n.clusterQuality(); cq != nil {
		v.Publisher, v.ModelVersion, v.Evaluated = cq.Trainer, cq.ModelVersion, cq.Evaluated
		v.Served = servedViews(cq.Served)
		v.Stale = n.cfg.Now().Sub(cq.Evaluated) > 3*n.cfg.AlertInterval+time.Second
	}
	return v
}

func servedViews(rows []ServedCount) []console.ServedView {
	out := make([]console.ServedView, len(rows))
	for i, r := range rows {
		out[i] = console.ServedView{Node: r.Node, Variant: r.Variant, ModelVersion: r.ModelVersion, Decisions: r.Decisions, Fallbacks: r.Fallbacks}
	}
	return out
}

// consoleEvaluations reads the last offline evaluation from the report
// `sightline evaluate` saves in the node's data directory, parsing it
// again only when the file changes.
type consoleEvaluations struct {
	dataDir string

	mu    sync.Mutex
	mtime time.Time
	size  int64
	view  *console.EvaluationView
	err   string
}

func newConsoleEvaluations(dataDir string) *consoleEvaluations {
	return &consoleEvaluations{dataDir: dataDir}
}

func (c *consoleEvaluations) LastEvaluation(context.Context) console.EvaluationState {
	st := console.EvaluationState{
		ReportPath:   filepath.Join(c.dataDir, "evaluations", "last.json"),
		DecisionsDir: filepath.Join(c.dataDir, "decisions"),
		DataDir:      c.dataDir,
	}
	fi, err := os.Stat(st.ReportPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return st
	case err != nil:
		st.Err = err.Error()
		return st
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !fi.ModTime().Equal(c.mtime) || fi.Size() != c.size {
		c.mtime, c.size, c.view, c.err = fi.ModTime(), fi.Size(), nil, ""
		if r, err := evaluate.ReadFile(st.ReportPath); err != nil {
			c.err = err.Error()
		} else {
			v := evaluationView(r)
			c.view = &v
		}
	}
	st.Report, st.Err = c.view, c.err
	return st
}

// evaluationView converts an evaluation report to the console's view.
func evaluationView(r *evaluate.Report) console.EvaluationView {
	v := console.EvaluationView{
		Created: r.Created, Elapsed: time.Duration(r.ElapsedSeconds * float64(time.Second)).Round(time.Millisecond),
		Source: r.Source, From: r.From, To: r.To,
		Decisions: r.Decisions, Slots: r.Slots, Events: r.Events,
		Fallbacks: r.Fallbacks, Duplicates: r.Duplicates, Invalid: r.Invalid,
		Clip: r.Settings.Clip, Bootstrap: r.Settings.Bootstrap, Level: r.Settings.Level,
		Thresholds: console.EvaluationThresholds{
			MinESS: r.Thresholds.MinESS, MinESSShare: r.Thresholds.MinESSShare,
			MaxUnsupported: r.Thresholds.MaxUnsupported, MaxClippedMass: r.Thresholds.MaxClippedMass,
		},
		Logged: console.LoggedView{
			CTR:               intervalView(r.Logged.CTR),
			ClicksPerDecision: intervalView(r.Logged.ClicksPerDecision),
			ConversionRate:    r.Logged.ConversionRate,
		},
		Notes: r.Notes,
	}
	for _, p := range r.Logged.Positions {
		v.Logged.Positions = append(v.Logged.Positions, console.LoggedPositionView{Position: p.Position, Slots: p.Slots, CTR: p.CTR})
	}
	for _, lv := range r.Logged.Variants {
		v.Logged.Variants = append(v.Logged.Variants, console.LoggedVariantView{
			Variant: lv.Variant, Decisions: lv.Decisions, Slots: lv.Slots, CTR: lv.CTR, ConversionRate: lv.ConversionRate,
		})
	}
	for _, p := range r.Policies {
		pv := console.PolicyView{
			Spec: p.Spec, Kind: p.Kind, Explore: p.Explore, Trustworthy: p.Trustworthy, Reasons: p.Reasons,
			Estimates: estimateViews(p.Estimates), Conversions: estimateViews(p.Conversions),
			Diagnostics: diagnosticsView(p.Diagnostics), Warnings: p.Warnings,
		}
		for _, pos := range p.Positions {
			pv.Positions = append(pv.Positions, console.PositionView{
				Position: pos.Position, LoggedCTR: pos.LoggedCTR, Estimates: estimateViews(pos.Estimates),
				Diagnostics: diagnosticsView(pos.Diagnostics), Trustworthy: pos.Trustworthy, Reasons: pos.Reasons,
			})
		}
		v.Policies = append(v.Policies, pv)
	}
	return v
}

func intervalView(iv evaluate.Interval) console.IntervalView {
	return console.IntervalView{Value: iv.Value, Low: iv.Low, High: iv.High}
}

func optionalInterval(iv *evaluate.Interval) *console.IntervalView {
	if iv == nil {
		return nil
	}
	v := intervalView(*iv)
	return &v
}

func estimateViews(es []evaluate.Estimate) []console.EstimateView {
	out := make([]console.EstimateView, len(es))
	for i, e := range es {
		out[i] = console.EstimateView{Estimator: e.Estimator, CTR: optionalInterval(e.CTR), ClicksPerDecision: optionalInterval(e.ClicksPerDecision)}
	}
	return out
}

func diagnosticsView(d evaluate.Diagnostics) console.DiagnosticsView {
	return console.DiagnosticsView{
		Slots: d.Slots, ESS: d.ESS, ESSShare: d.ESSShare, Unsupported: d.Unsupported, Matched: d.Matched,
		MeanWeight: d.MeanWeight, MaxWeight: d.MaxWeight, ClippedShare: d.ClippedShare, ClippedMass: d.ClippedMass,
	}
}
