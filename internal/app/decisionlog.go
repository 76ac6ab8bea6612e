package app

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/sightline/sightline/internal/decisionlog"
	"github.com/sightline/sightline/internal/ingest"
	"github.com/sightline/sightline/internal/learn"
	"github.com/sightline/sightline/internal/quality"
)

// withDefaults returns c with its zero fields set to their defaults.
func (c DecisionStoreConfig) withDefaults() DecisionStoreConfig {
	if c.Ratio <= 0 || c.Ratio > 1 {
		c.Ratio = 1
	}
	if c.Retention <= 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 10 << 30
	}
	if c.Pool == 0 {
		c.Pool = 20
	}
	return c
}

// pool is the engine's PoolSize: the candidates each decision records
// for offline evaluation, none when the log is off.
func (c DecisionStoreConfig) pool() int {
	c = c.withDefaults()
	if c.Disabled || c.Pool < 0 {
		return 0
	}
	return c.Pool
}

// openDecisionLog creates the Parquet decision log's writer of a node that
// writes it: a --role all node (its own decisions) and a trainer (the
// cluster's, from the decision stream, while it is active). API nodes
// publish their decisions to the stream and write nothing.
func (n *Node) openDecisionLog() error {
	c := n.cfg.DecisionStore.withDefaults()
	if c.Disabled || n.cfg.Role == RoleAPI {
		return nil
	}
	w, err := decisionlog.New(decisionlog.Config{
		Dir:        filepath.Join(n.cfg.DataDir, "decisions"),
		Node:       n.cfg.NodeName,
		StoreRatio: c.Ratio,
		Retention:  c.Retention,
		MaxBytes:   max(c.MaxBytes, 0),
		Logger:     n.logger,
		Registerer: n.reg,
		Now:        n.cfg.Now,
	})
	if err != nil {
		return fmt.Errorf("decision log: %w", err)
	}
	n.dlog = w
	return nil
}

// recordDecision is a single node's engine OnRecord: the decision goes to
// the Parquet log's queue, without waiting.
func (n *Node) recordDecision(_ string, rec []byte) {
	n.dlog.Record(rec)
}

// logEvents chains the decision log's event side after h: the events that
// answer a decision are logged as the consumer that feeds h reads them.
// It runs on the activity consumer, whose position a restart resumes from
// the feature snapshot (or the bus), so every acknowledged event is
// logged at least once; readers join an event again to the same slot.
func (n *Node) logEvents(h ingest.PartitionHandler) ingest.PartitionHandler {
	if n.dlog == nil {
		return h
	}
	return learn.NewFanout(learn.Stage{H: h}, learn.Stage{H: learn.NewDecisionEvents(n.dlog)})
}

// runDecisionLog runs the writer until ctx is done; a nil writer returns at
// once.
func (n *Node) runDecisionLog(ctx context.Context) error {
	if n.dlog == nil {
		return nil
	}
	return n.dlog.Run(ctx)
}

// decisionLogWindow is the span over which the in-process
// DecisionLogDropping alert counts drops, as the Prometheus rule's
// increase(...[10m]).
const decisionLogWindow = 10 * time.Minute

// decisionLogRule is the in-process DecisionLogDropping alert (the rule of
// the same name in deploy/prometheus): the writer lost rows in the last 10
// minutes, or a queued row has waited over a minute.
func (n *Node) decisionLogRule() quality.Rule {
	type sample struct {
		at      time.Time
		dropped int64
	}
	var seen []sample // drop totals at each evaluation, oldest first
	return quality.Rule{
		Name: "DecisionLogDropping", Severity: "ticket", For: 5 * time.Minute,
		Summary:     "The decision log is losing rows or stuck: {value} lost in 10m",
		Description: "The Parquet decision log's writer dropped decisions or events (its queue was full, or a file failed), or a row has waited over a minute in its queue. Serving is unaffected; offline evaluation over this period reads a biased sample.",
		RunbookURL:  "docs/runbooks/DecisionLogDropping.md",
		Expr: func(now time.Time) []quality.Sample {
			st := n.dlog.Stats()
			total := st.DecisionsDropped + st.EventsDropped
			seen = append(seen, sample{now, total})
			for len(seen) > 1 && now.Sub(seen[1].at) >= decisionLogWindow {
				seen = seen[1:]
			}
			lost := total - seen[0].dropped
			if lost > 0 || st.QueueAge > time.Minute {
				return []quality.Sample{{Labels: map[string]string{}, Value: float64(lost)}}
			}
			return nil
		},
	}
}
