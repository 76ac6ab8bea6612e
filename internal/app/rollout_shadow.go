package app

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/sightline/sightline/internal/decisionlog"
	"github.com/sightline/sightline/internal/evaluate"
	"github.com/sightline/sightline/internal/rollout"
)

// Bounds of the shadow estimate's rows (a decision row with its pool
// takes a few KiB): past them the estimate is made on the first
// decisions read, as many as a stage of a few minutes at a few hundred
// requests a second shadows, which have long said what they can.
const (
	maxShadowDecisions = 20_000
	maxShadowEvents    = 400_000
	shadowBootstrap    = 100
)

// shadowEstimator is the node's rollout.Estimator: it follows the node's
// Parquet decision log from the shadow stage's start (each closed file read
// once, as files close every roll interval), keeps the decisions a shadow
// challenger scored and the events, and estimates the challenger with
// package evaluate's shadow target (its recorded choices against the
// champion's logged propensities).
type shadowEstimator struct {
	dir string

	mu    sync.Mutex
	since time.Time           // the shadow stage the rows are of
	read  map[string]bool     // files read
	ids   map[string]struct{} // request ids of the decisions kept
	src   evaluate.MemorySource
	last  *rollout.Offline // the estimate of the rows read so far
}

// newShadowEstimator returns the estimator over the decision log in dir,
// nil (no estimate) when the node writes no log.
func (n *Node) newShadowEstimator() rollout.Estimator {
	if n.dlog == nil {
		return nil
	}
	return &shadowEstimator{dir: filepath.Join(n.cfg.DataDir, "decisions")} // openDecisionLog's
}

// EstimateShadow implements rollout.Estimator.
func (e *shadowEstimator) EstimateShadow(ctx context.Context, _ string, since time.Time) (*rollout.Offline, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !since.Equal(e.since) || e.read == nil {
		e.since, e.read, e.ids, e.src, e.last = since, map[string]bool{}, map[string]struct{}{}, evaluate.MemorySource{}, nil
	}
	files, err := decisionlog.FilesSince(e.dir, since)
	if err != nil {
		return nil, err
	}
	fresh := false
	for _, f := range files {
		if e.read[f.Path] {
			continue
		}
		fresh = true
		full := len(e.src.DecisionRows) >= maxShadowDecisions
		err := decisionlog.ReadFile(ctx, f, func(d *decisionlog.Decision) error {
			if d.ShadowModelVersion != "" && !d.Time.Before(since) && len(e.src.DecisionRows) < maxShadowDecisions {
				e.src.DecisionRows = append(e.src.DecisionRows, *d)
				e.ids[d.RequestID] = struct{}{}
			}
			return nil
		}, func(ev *decisionlog.Event) error {
			// Once the decisions are all read, only their events; before,
			// any event since the stage began (its decision may be in a
			// file not read yet).
			_, kept := e.ids[ev.RequestID]
			if !ev.Time.Before(since) && len(e.src.EventRows) < maxShadowEvents && (kept || !full) {
				e.src.EventRows = append(e.src.EventRows, *ev)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read the decision log: %w", err)
		}
		e.read[f.Path] = true
	}
	if !fresh || len(e.src.DecisionRows) == 0 {
		return e.last, nil // nothing new: the last estimate, if any
	}
	rep, err := evaluate.Run(ctx, &e.src, []evaluate.Spec{{Kind: evaluate.KindShadow}}, evaluate.Config{Bootstrap: shadowBootstrap, Seed: uint64(since.UnixNano())})
	if err != nil {
		return nil, fmt.Errorf("estimate the shadow challenger: %w", err)
	}
	e.last = offlineOf(rep)
	return e.last, nil
}

// offlineOf is the rollout's view of rep's shadow estimate: SNIPS, or IPS
// where SNIPS is undefined (a position where the challenger's choices
// never matched the logged ones has no weight to normalize by).
func offlineOf(rep *evaluate.Report) *rollout.Offline {
	p := rep.Policies[0]
	o := &rollout.Offline{
		At: rep.Created, Decisions: rep.Decisions, Slots: rep.Slots,
		Champion:    rollout.Interval(rep.Logged.CTR),
		Trustworthy: p.Trustworthy, Reasons: p.Reasons,
		ESS: p.Diagnostics.ESS, Unsupported: p.Diagnostics.Unsupported,
	}
	for _, name := range []string{evaluate.EstimatorSNIPS, evaluate.EstimatorIPS} {
		for _, est := range p.Estimates {
			if est.Estimator == name && est.CTR != nil && o.Estimator == "" {
				o.Estimator, o.Challenger = name, rollout.Interval(*est.CTR)
			}
		}
	}
	return o
}
