package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/model"
	"github.com/sightline/sightline/internal/registry"
	"github.com/sightline/sightline/internal/rollout"
)

// Guarded rollouts on a cluster (docs/rollouts.md, "On a cluster"): the
// active trainer runs the rollout controller while it holds the lease,
// with its state in the registry; it publishes the challenger's snapshot
// (again as the challenger learns) and the routing; API nodes follow both.

// registryTimeout bounds a rollout's registry write or read.
const registryTimeout = 2 * time.Second

// clusterRollout is a cluster node's part of guarded rollouts.
type clusterRollout struct {
	// ctl is the active trainer's controller, nil otherwise.
	ctl atomic.Pointer[rollout.Controller]

	// On API nodes: the challenger they serve.
	mu     sync.Mutex
	seq    uint64              // the challenger publication loaded
	scorer *engine.ModelScorer // its scorer, nil when none is served
	routed registry.Routing    // the routing applied
	met    followMetrics
}

// followMetrics are an API node's rollout-following metrics.
type followMetrics struct {
	share prometheus.Gauge
	loads *prometheus.CounterVec
}

func (m *followMetrics) register(reg prometheus.Registerer) error {
	m.share = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sightline_rollout_followed_share",
		Help: "Share of the champion's users this API node routes to the rollout's challenger, as the trainer published it (0 when none).",
	})
	m.loads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sightline_rollout_challenger_loads_total",
		Help: "Challenger snapshots this API node loaded from the registry (outcome loaded) or refused (failed: checksum or decoding).",
	}, []string{"outcome"})
	m.loads.WithLabelValues("loaded")
	m.loads.WithLabelValues("failed")
	return errors.Join(reg.Register(m.share), reg.Register(m.loads))
}

// rolloutController is the node's rollout controller: a single node's,
// or the active trainer's; nil on API nodes and standby trainers.
func (n *Node) rolloutController() *rollout.Controller {
	if n.rollout != nil {
		return n.rollout
	}
	return n.cluster.rollout.ctl.Load()
}

// registryStore keeps the controller's state in the registry, fenced by
// the trainer's lease.
type registryStore struct {
	r *registry.Registry
	l registry.Lease
}

// LoadState implements rollout.Store.
func (s registryStore) LoadState(ctx context.Context) (rollout.State, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, registryTimeout)
	defer cancel()
	raw, ok, err := s.r.Rollout(ctx)
	if err != nil || !ok {
		return rollout.State{}, false, err
	}
	st, err := rollout.DecodeState(raw)
	return st, err == nil, err
}

// SaveState implements rollout.Store.
func (s registryStore) SaveState(ctx context.Context, st rollout.State) error {
	raw, err := rollout.EncodeState(st)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), registryTimeout)
	defer cancel()
	return s.r.PutRollout(ctx, s.l, raw)
}

// clusterTarget is the active trainer's side of a rollout: it loads the
// challenger (from its snapshot file, or, when it resumes a rollout
// another trainer ran, from the registry's publication of it), publishes
// it to the registry as it learns, writes the routing that API nodes
// follow, and promotes it by making it the model the trainer learns and
// publishes.
type clusterTarget struct {
	n *Node
	l registry.Lease
	// publish publishes the trainer's model (the champion) at once.
	publish func(ctx context.Context) error

	mu      sync.Mutex
	source  string
	next    *model.Model
	scorer  *engine.ModelScorer
	pub     registry.Publication // the challenger's last publication
	updates uint64               // the challenger's updates then
	routed  registry.Routing     // the routing last written (or due)
	dirty   bool                 // routed was not written
}

// Load implements rollout.Target.
func (t *clusterTarget) Load(ctx context.Context, source string) (string, error) {
	n := t.n
	var m *model.Model
	if rt, ok, err := n.registry.Routing(ctx); err == nil && ok && rt.Active() && rt.Source == source {
		// A rollout another trainer ran: its challenger as it learned.
		if p, data, ok, err := n.registry.FetchChallenger(ctx); err == nil && ok {
			if m, _, err = model.ReadSnapshot(bytes.NewReader(data), n.cfg.Model); err != nil {
				m = nil
				n.logger.WarnContext(ctx, "published challenger unreadable: loading its snapshot file", slog.Uint64("seq", p.Seq), slog.Any("err", err))
			}
		}
	}
	if m == nil {
		var err error
		if m, _, err = model.LoadFile(source, n.cfg.Model); err != nil {
			return "", fmt.Errorf("challenger snapshot %s: %w", filepath.Base(source), err)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.source, t.next, t.scorer = source, m, engine.NewModelScorer(m)
	t.pub = registry.Publication{}
	if err := t.publishLocked(ctx); err != nil {
		return "", fmt.Errorf("publish the challenger: %w", err)
	}
	return m.Version(), nil
}

// publishLocked publishes the challenger's snapshot.
func (t *clusterTarget) publishLocked(ctx context.Context) error {
	var buf bytes.Buffer
	updates := t.next.Updates()
	version, err := t.next.WritePublished(&buf, model.SnapshotMeta{Created: t.n.cfg.Now()})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, registryTimeout)
	defer cancel()
	p, err := t.n.registry.PublishChallenger(ctx, t.l, version, buf.Bytes(), t.n.cfg.Now())
	if err != nil {
		return err
	}
	t.pub, t.updates = p, updates
	return nil
}

// Route implements rollout.Target: the trainer's engine routes like the
// API nodes (its engagement tracker attributes events by it), the
// challenger learns from the stream while it is in play, and the routing
// is written to the registry for the API nodes.
func (t *clusterTarget) Route(ctx context.Context, shadow bool, share float64) {
	n := t.n
	t.mu.Lock()
	defer t.mu.Unlock()
	rt := registry.Routing{Source: t.source, Seq: t.pub.Seq, Updated: n.cfg.Now()}
	if t.next != nil {
		rt.Version = t.next.Version()
	}
	if (share <= 0 && !shadow) || t.scorer == nil {
		_ = n.engine.SetChallenger(nil) // withdrawing cannot fail
		n.learner.challenger.Store(nil)
	} else {
		rt.Share, rt.Shadow = share, shadow
		n.learner.challenger.Store(t.scorer)
		if err := n.engine.SetChallenger(&engine.Challenger{Base: championVariant, Scorer: t.scorer, Share: share, Shadow: shadow}); err != nil {
			n.logger.ErrorContext(ctx, "rollout: the trainer cannot route the challenger: its events are not attributed to it", slog.Any("err", err))
		}
	}
	t.routed, t.dirty = rt, true
	t.writeRoutingLocked(ctx)
}

// writeRoutingLocked writes the routing when it is due.
func (t *clusterTarget) writeRoutingLocked(ctx context.Context) {
	if !t.dirty {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), registryTimeout)
	defer cancel()
	if err := t.n.registry.PutRouting(ctx, t.l, t.routed); err != nil {
		t.n.warnEvery(ctx, "rollout-routing", "rollout: the challenger's routing is not published: retrying", slog.Float64("share", t.routed.Share), slog.Any("err", err))
		return
	}
	t.dirty = false
}

// refresh publishes the challenger again when it learned since its last
// publication, and writes a routing whose write failed; the trainer calls
// it every publish interval.
func (t *clusterTarget) refresh(ctx context.Context) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.next != nil && t.routed.Active() && t.next.Updates() != t.updates {
		if err := t.publishLocked(ctx); err != nil && !errors.Is(err, registry.ErrLeaseLost) {
			t.n.warnEvery(ctx, "rollout-publish", "rollout: cannot publish the challenger: retrying", slog.Any("err", err))
		}
	}
	t.writeRoutingLocked(ctx)
}

// Promote implements rollout.Target: the challenger becomes the model the
// trainer learns into and publishes, and is published at once, so API
// nodes swap it in as they swap any new model; the routing is withdrawn
// next (the Promoted transition).
func (t *clusterTarget) Promote(ctx context.Context) error {
	n := t.n
	t.mu.Lock()
	m := t.next
	t.mu.Unlock()
	if m == nil {
		return errors.New("no challenger loaded")
	}
	old := n.scorer.Model()
	_ = n.engine.SetChallenger(nil)
	n.learner.challenger.Store(nil)
	n.scorer.Swap(m)
	if err := t.publish(ctx); err != nil {
		n.scorer.Swap(old)
		return fmt.Errorf("publish the promoted model: %w", err)
	}
	return nil
}

// leadRollout builds the active trainer's rollout controller on the
// registry's state, resuming the rollout a previous trainer ran (or
// finishing its promotion). publish publishes the trainer's model. A state
// the registry holds but this build cannot read is logged, and the trainer
// runs without rollouts.
func (n *Node) leadRollout(ctx context.Context, l registry.Lease, log *slog.Logger, publish func(context.Context) error) (*rollout.Controller, *clusterTarget) {
	t := &clusterTarget{n: n, l: l, publish: publish}
	cfg := n.cfg.Rollout
	cfg.Champion, cfg.Challenger = championVariant, challengerVariant
	cfg.StatePath, cfg.Store = "", registryStore{n.registry, l}
	cfg.Estimator = n.newShadowEstimator()
	cfg.Now = n.cfg.Now
	cfg.Logger = log
	cfg.Registerer = n.reg
	cfg.TracerProvider = n.tel.TracerProvider()
	ctl, err := rollout.New(ctx, t, cfg)
	if err != nil {
		log.ErrorContext(ctx, "rollouts unavailable on this trainer: the registry's rollout state is not readable", slog.Any("err", err))
		return nil, nil
	}
	n.cluster.rollout.ctl.Store(ctl)
	return ctl, t
}

// endRollout stops the trainer's controller when it steps down: the
// state stays in the registry for the next active trainer.
func (n *Node) endRollout(ctl *rollout.Controller) {
	if ctl == nil {
		return
	}
	n.cluster.rollout.ctl.Store(nil)
	ctl.Unregister()
	_ = n.engine.SetChallenger(nil)
	n.learner.challenger.Store(nil)
}

// followRollout applies, on an API node, the rollout routing the trainer
// publishes, every interval until ctx is done.
func (n *Node) followRollout(ctx context.Context, interval time.Duration) {
	f := &n.cluster.rollout
	if err := f.met.register(n.reg); err != nil {
		n.logger.ErrorContext(ctx, "rollout following disabled: metrics not registered", slog.Any("err", err))
		return
	}
	every(ctx, interval, func() {
		rctx, cancel := context.WithTimeout(ctx, registryTimeout)
		defer cancel()
		if err := n.applyRouting(rctx); err != nil && ctx.Err() == nil {
			n.warnEvery(ctx, "rollout-follow", "cannot follow the rollout's routing: serving the current one", slog.Any("err", err))
		}
	})
}

// applyRouting reads the routing and the challenger's publication and
// serves them.
func (n *Node) applyRouting(ctx context.Context) error {
	f := &n.cluster.rollout
	rt, _, err := n.registry.Routing(ctx)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !rt.Active() {
		if f.scorer != nil {
			_ = n.engine.SetChallenger(nil)
			f.scorer, f.seq, f.routed = nil, 0, rt
			f.met.share.Set(0)
			n.logger.InfoContext(ctx, "rollout challenger withdrawn", slog.String("model_version", rt.Version))
		}
		return nil
	}
	p, ok, err := n.registry.LatestChallenger(ctx)
	if err != nil {
		return err
	}
	if !ok || p.Seq < rt.Seq {
		return fmt.Errorf("challenger publication %d of the routing not found", rt.Seq)
	}
	fresh := f.scorer == nil
	if p.Seq != f.seq {
		p, data, ok, err := n.registry.FetchChallenger(ctx)
		if err != nil || !ok {
			if errors.Is(err, registry.ErrCorrupt) {
				f.met.loads.WithLabelValues("failed").Inc()
			}
			return fmt.Errorf("fetch the challenger: %w", cmpErr(err))
		}
		m, _, err := model.ReadSnapshot(bytes.NewReader(data), n.cfg.Model)
		if err != nil {
			f.met.loads.WithLabelValues("failed").Inc()
			return fmt.Errorf("challenger %s (seq %d): %w", p.Version, p.Seq, err)
		}
		if fresh {
			f.scorer = engine.NewModelScorer(m)
		} else {
			f.scorer.Swap(m)
		}
		f.seq = p.Seq
		f.met.loads.WithLabelValues("loaded").Inc()
	}
	if fresh || rt.Share != f.routed.Share || rt.Shadow != f.routed.Shadow {
		if err := n.engine.SetChallenger(&engine.Challenger{Base: championVariant, Scorer: f.scorer, Share: rt.Share, Shadow: rt.Shadow}); err != nil {
			return fmt.Errorf("route the challenger: %w", err)
		}
		f.met.share.Set(rt.Share)
		n.logger.InfoContext(ctx, "rollout routing applied", slog.String("model_version", rt.Version),
			slog.Float64("share", rt.Share), slog.Bool("shadow", rt.Shadow), slog.String("trainer", rt.Holder))
	}
	f.routed = rt
	return nil
}

// cmpErr is err, or an error saying the publication vanished.
func cmpErr(err error) error {
	if err == nil {
		return errors.New("no challenger publication")
	}
	return err
}

// clusterRolloutState reads the cluster's rollout state from the
// registry: an Idle state when none ran.
func (n *Node) clusterRolloutState(ctx context.Context) (rollout.State, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	raw, ok, err := n.registry.Rollout(ctx)
	if err != nil {
		return rollout.State{}, err
	}
	if !ok {
		return rollout.State{Stage: rollout.Idle, Timeline: []rollout.Transition{}}, nil
	}
	st, err := rollout.DecodeState(raw)
	if err == nil && st.Timeline == nil {
		st.Timeline = []rollout.Transition{}
	}
	return st, err
}
