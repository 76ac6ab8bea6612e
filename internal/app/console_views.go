package app

import (
	"context"
	"sync"
	"time"

	"github.com/sightline/sightline/internal/console"
	"github.com/sightline/sightline/internal/experiment"
)

// What the console reads of a node beyond its quality figures: the live
// experiment and, on a cluster node, the cluster's active trainer and
// served rows. Each converts the app's own types to the console's views.

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
