package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sightline/sightline/internal/ingest"
	"github.com/sightline/sightline/internal/learn"
)

// Run listens on the configured address and serves until ctx is done.
func (n *Node) Run(ctx context.Context) error {
	ln, err := n.Listen()
	if err != nil {
		return errors.Join(err, n.closeParts(ctx))
	}
	return n.Serve(ctx, ln)
}

// Listen opens the node's listener.
func (n *Node) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", n.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	n.listener = ln
	return ln, nil
}

// Addr returns the listening address, once Listen has run.
func (n *Node) Addr() string {
	if n.listener == nil {
		return n.cfg.Addr
	}
	return n.listener.Addr().String()
}

// consumer is one event consumer of the node: its name (a metric label and
// group suffix), start positions and handler.
type consumer struct {
	name   string
	from   offsets
	h      ingest.PartitionHandler
	commit bool
}

// consumers are the event consumers that run for the node's whole life: a
// single node's event path, an API node's index and live engagement. A
// trainer runs its own while it is active (lead).
func (n *Node) consumers() []consumer {
	var cs []consumer
	if n.path.model != nil {
		cs = append(cs, consumer{consumerModel, n.modelFrom, n.path.model, false})
	}
	if n.path.activity != nil {
		// Redis is not snapshotted: the bus keeps the activity updater's
		// position, and applying a suffix again is harmless. The decision
		// log's events ride on its read.
		cs = append(cs, consumer{consumerFeatures, n.featFrom, n.logEvents(n.path.activity), n.redis != nil})
	}
	var stats ingest.PartitionHandler
	if n.cfg.Role != RoleTrainer {
		obs := []learn.EngagementObserver{n.live, n.quality.engagement, n.experiments}
		if n.rollout != nil {
			obs = append(obs, n.rollout)
		}
		stats = learn.NewEngagementTracker(n.engine.Variant, obs...)
	}
	switch {
	case n.cfg.Role == RoleAPI:
		// An API node reads the stream once for its index and its live
		// engagement, each from its own start: every node reads every
		// event, so each read saved is saved N times.
		f := learn.NewFanout(learn.Stage{H: stats, From: n.statsFrom}, learn.Stage{H: n.path.index, From: n.indexFrom}, n.erasures(n.statsFrom))
		cs = append(cs, consumer{consumerIndex, f.From(), f, false})
	case stats != nil:
		cs = append(cs, consumer{consumerIndex, n.indexFrom, n.path.index, false},
			consumer{consumerStats, n.statsFrom, stats, false})
	}
	return cs
}

// Serve runs the node on ln until ctx is done.
func (n *Node) Serve(ctx context.Context, ln net.Listener) error {
	ln = n.secureListener(ln)
	srv := &http.Server{Handler: n.handler, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(n.logger.Handler(), slog.LevelWarn)}
	bg, bgCtx := errgroup.WithContext(context.WithoutCancel(ctx))
	bgCtx, stopBG := context.WithCancel(bgCtx)
	// The decision log stops after everything that feeds it (the engine,
	// the consumers, the trainer), so it writes what they queued.
	dlCtx, stopDL := context.WithCancel(context.WithoutCancel(ctx))
	dlDone := make(chan error, 1)
	go func() { dlDone <- n.runDecisionLog(dlCtx) }()
	for _, c := range n.consumers() {
		bg.Go(func() error {
			err := n.log.Subscribe(bgCtx, c.name, c.from, c.h, c.commit)
			if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, ingest.ErrClosed) {
				return fmt.Errorf("consumer %s: %w", c.name, err)
			}
			return nil
		})
	}
	switch n.cfg.Role {
	case RoleAPI:
		bg.Go(func() error { n.follow(bgCtx); return nil })
		bg.Go(func() error {
			n.refreshClusterQuality(bgCtx)
			every(bgCtx, time.Second, func() { n.refreshClusterQuality(bgCtx) })
			return nil
		})
	case RoleTrainer:
		bg.Go(func() error { n.runTrainer(bgCtx); return nil })
	}
	if n.cfg.AlertInterval > 0 && n.cfg.Role != RoleTrainer {
		bg.Go(func() error {
			every(bgCtx, n.cfg.AlertInterval, func() { n.EvaluateAlerts(bgCtx, n.cfg.Now()) })
			return nil
		})
	}
	bg.Go(func() error { return n.log.Run(bgCtx) })
	bg.Go(func() error { return n.store.Run(bgCtx) })
	bg.Go(func() error { return n.engine.Run(bgCtx) })
	bg.Go(func() error { return n.console.Run(bgCtx) })
	if n.rollout != nil {
		bg.Go(func() error { return n.rollout.Run(bgCtx) })
	}
	if n.cfg.SnapshotInterval > 0 && n.cfg.Role == RoleAll {
		bg.Go(func() error {
			every(bgCtx, n.cfg.SnapshotInterval, func() {
				if err := n.Snapshot(bgCtx); err != nil {
					n.logger.Error("periodic snapshot failed", slog.String("err", err.Error()))
				}
			})
			return nil
		})
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	n.logger.Info("serving", slog.String("addr", ln.Addr().String()), slog.String("role", n.cfg.Role), slog.String("node", n.cfg.NodeName),
		slog.String("data_dir", n.cfg.DataDir), slog.String("model_snapshot", n.restore.ModelSnapshot), slog.Uint64("log_next", n.restore.LogNext))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-serveErr:
	}
	// Graceful shutdown: stop accepting and drain in-flight requests, let the
	// consumers catch up with what was accepted, snapshot (a trainer
	// publishes), close.
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("http shutdown: %w", err))
	}
	n.waitCaughtUp(shutCtx)
	stopBG()
	runErr = errors.Join(runErr, bg.Wait())
	stopDL()
	runErr = errors.Join(runErr, <-dlDone)
	if err := n.Snapshot(shutCtx); err != nil {
		runErr = errors.Join(runErr, err)
	}
	runErr = errors.Join(runErr, n.closeParts(shutCtx))
	if errors.Is(runErr, http.ErrServerClosed) {
		runErr = nil
	}
	return runErr
}

// progress is the consumer whose position and lag the node reports: the
// model's where the node learns, the candidate index's on an API node, none
// on a standby trainer (it consumes nothing).
func (n *Node) progress() string {
	switch {
	case n.cfg.Role == RoleAPI:
		return consumerIndex
	case n.cfg.Role == RoleTrainer && !n.cluster.active.Load():
		return ""
	}
	return consumerModel
}

// lag is the progress consumer's lag; zero when there is none.
func (n *Node) lag() (records uint64, age time.Duration) {
	if c := n.progress(); c != "" {
		return n.log.Lag(c)
	}
	return 0, 0
}

// position is the progress consumer's position; zero when there is none.
func (n *Node) position() uint64 {
	if c := n.progress(); c != "" {
		return n.log.Position(c)
	}
	return 0
}

// learning names the consumers whose state must include every appended
// event: the model and activity of a node that learns.
func (n *Node) learning() []string {
	switch {
	case n.cfg.Role == RoleAll:
		return []string{consumerModel, consumerFeatures}
	case n.cluster.active.Load():
		return []string{consumerModel} // the trainer's one read of the stream (lead)
	}
	return nil
}

// WaitApplied waits until every consumer of the node has applied
// everything appended to the log so far, or ctx ends. Drills call it to
// keep their simulated clock and the node's state in step.
func (n *Node) WaitApplied(ctx context.Context) error {
	target, err := n.log.End(ctx)
	if err != nil {
		return err
	}
	names := n.learning()
	for _, c := range n.consumers() {
		if c.name != consumerModel && c.name != consumerFeatures {
			names = append(names, c.name)
		}
	}
	return n.waitFor(ctx, target, names, 200*time.Microsecond)
}

// waitFor waits until each named consumer's position reaches target.
func (n *Node) waitFor(ctx context.Context, target uint64, names []string, poll time.Duration) error {
	for {
		done := true
		for _, c := range names {
			if n.log.Position(c) < target {
				done = false
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

// waitCaughtUp waits until the state consumers have applied everything in
// the log, or ctx ends.
func (n *Node) waitCaughtUp(ctx context.Context) {
	names := n.learning()
	if len(names) == 0 {
		return
	}
	target, err := n.log.End(ctx)
	if err != nil {
		n.logger.Warn("shutdown: event bus end unknown; not waiting for consumers", slog.String("err", err.Error()))
		return
	}
	_ = n.waitFor(ctx, target, names, 5*time.Millisecond)
}

// every calls fn every interval until ctx is done.
func every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}
