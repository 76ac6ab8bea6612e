package app

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/ingest"
	"github.com/sightline/sightline/internal/learn"
	"github.com/sightline/sightline/internal/model"
	"github.com/sightline/sightline/internal/quality"
	"github.com/sightline/sightline/internal/registry"
)

// A cluster (docs/scaling.md): API nodes serve and publish their decisions;
// one trainer, holding the registry's lease, learns from the events and
// the decisions and publishes model snapshots that the API nodes follow.

// joinWait is how long the trainer lets a fresh event wait for its
// decision to arrive on the decision stream (see learn.ModelConfig).
const joinWait = 500 * time.Millisecond

// activityOffsetsKey is the model snapshot's extra-data key of the
// activity updater's positions when the snapshot was taken: a trainer
// taking over resumes writing recent activity from there.
const activityOffsetsKey = "activity_offsets"

// qualityStateKey names the registry document of cluster-wide quality.
const qualityStateKey = "quality"

// clusterParts is a cluster node's state of the cluster.
type clusterParts struct {
	// active is set while this trainer holds the lease.
	active atomic.Bool
	// published is the last publication this node published (a trainer)
	// or serves (an API node).
	published atomic.Pointer[registry.Publication]
	// updater is the model updater while this trainer is active.
	updater atomic.Pointer[learn.ModelUpdater]
	// quality is, on an API node, the trainer's last quality state read.
	quality atomic.Pointer[clusterQuality]
	// served counts, on the active trainer, the decisions of each API node.
	served servedBy
	// rollout is the active trainer's rollout controller, or an API node's
	// challenger as the trainer routes it (rollout_cluster.go).
	rollout clusterRollout

	met clusterMetrics

	warnMu   sync.Mutex
	warnedAt map[string]time.Time
}

// clusterMetrics are a cluster node's model publication metrics.
type clusterMetrics struct {
	// On the trainer.
	published   prometheus.Counter   // publications
	pubBytes    prometheus.Gauge     // size of the last one
	pubDuration prometheus.Histogram // snapshot + publish
	// On API nodes.
	swaps       *prometheus.CounterVec // by outcome: loaded, failed
	propagation prometheus.Histogram   // publication → swapped in
}

func (m *clusterMetrics) register(reg prometheus.Registerer) error {
	buckets := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m.published = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sightline_model_publications_total",
		Help: "Model snapshots this trainer published to the registry.",
	})
	m.pubBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sightline_model_publication_bytes",
		Help: "Size of the last model snapshot this trainer published.",
	})
	m.pubDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "sightline_model_publication_duration_seconds",
		Help:    "Time to snapshot the model (learning paused) and write it to the registry.",
		Buckets: buckets,
	})
	m.swaps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sightline_model_swaps_total",
		Help: "Published models this API node swapped in (outcome loaded) or refused (failed: the snapshot did not match its SHA-256 and size, or did not decode; counted at each poll that refuses it). A registry it cannot reach is logged, not counted.",
	}, []string{"outcome"})
	m.propagation = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "sightline_model_propagation_seconds",
		Help:    "Time from a model's publication to this API node serving it.",
		Buckets: buckets,
	})
	m.swaps.WithLabelValues("loaded")
	m.swaps.WithLabelValues("failed")
	for _, c := range []prometheus.Collector{m.published, m.pubBytes, m.pubDuration, m.swaps, m.propagation} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// warn logs a recurring problem at most every 5 s per kind.
func (n *Node) warnEvery(ctx context.Context, kind, msg string, attrs ...slog.Attr) {
	c := &n.cluster
	c.warnMu.Lock()
	now := time.Now()
	if c.warnedAt == nil {
		c.warnedAt = map[string]time.Time{}
	}
	if now.Sub(c.warnedAt[kind]) < 5*time.Second {
		c.warnMu.Unlock()
		return
	}
	c.warnedAt[kind] = now
	c.warnMu.Unlock()
	n.logger.LogAttrs(ctx, slog.LevelWarn, msg, attrs...)
}

// openCluster connects a cluster node to the registry and the decision
// stream.
func (n *Node) openCluster(ctx context.Context) error {
	if err := n.cluster.met.register(n.reg); err != nil {
		return err
	}
	var err error
	if n.registry, err = registry.Open(registry.Config{Addr: n.cfg.RedisAddr, Prefix: n.cfg.RedisPrefix}); err != nil {
		return err
	}
	n.decisions, err = newDecisionStream(ctx, &n.cfg, n.logger, n.reg, n.cfg.Role == RoleAPI)
	return err
}

// loadPublished reads the cluster's current model; ok is false before the
// first publication.
func (n *Node) loadPublished(ctx context.Context) (*model.Model, model.SnapshotMeta, registry.Publication, bool, error) {
	p, data, ok, err := n.registry.Fetch(ctx)
	if err != nil || !ok {
		return nil, model.SnapshotMeta{}, p, false, err
	}
	m, meta, err := model.ReadSnapshot(bytes.NewReader(data), n.cfg.Model)
	if err != nil {
		return nil, model.SnapshotMeta{}, p, false, fmt.Errorf("published model %s (seq %d): %w", p.Version, p.Seq, err)
	}
	return m, meta, p, true, nil
}

// fetchPublished is an API node's first model: the published one.
func (n *Node) fetchPublished(ctx context.Context) (*model.Model, bool, error) {
	m, meta, p, ok, err := n.loadPublished(ctx)
	if err != nil {
		// Serve the popularity fallback until a good one is published.
		n.logger.ErrorContext(ctx, "published model not loaded: starting with an empty one", slog.Any("err", err))
		return nil, false, nil
	}
	if !ok {
		return nil, false, nil
	}
	n.cluster.published.Store(&p)
	n.modelExtra = meta.Extra
	n.restore.ModelSnapshot = "published"
	n.logger.InfoContext(ctx, "published model loaded", slog.String("version", p.Version), slog.Uint64("seq", p.Seq), slog.Uint64("updates", m.Updates()))
	return m, true, nil
}

// publishDecision is an API node's engine OnRecord: the decision's record
// goes to the decision stream, without waiting.
func (n *Node) publishDecision(requestID string, rec []byte) {
	n.decisions.publish(requestID, rec)
}

// follow swaps in each model the trainer publishes, until ctx is done.
func (n *Node) follow(ctx context.Context) {
	warn := func(err error) {
		n.warnEvery(ctx, "follow", "cannot load the published model: serving the current one", slog.Any("err", err))
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { n.followRollout(ctx, n.cfg.FollowInterval) })
	n.registry.Follow(ctx, n.cfg.FollowInterval, n.cluster.published.Load(), func(p registry.Publication, data []byte) error {
		m, _, err := model.ReadSnapshot(bytes.NewReader(data), n.cfg.Model)
		if err != nil {
			n.cluster.met.swaps.WithLabelValues("failed").Inc()
			return fmt.Errorf("published model %s (seq %d): %w", p.Version, p.Seq, err)
		}
		n.scorer.Swap(m)
		n.cluster.published.Store(&p)
		n.cluster.met.swaps.WithLabelValues("loaded").Inc()
		n.cluster.met.propagation.Observe(max(time.Since(p.Published), 0).Seconds())
		n.logger.LogAttrs(ctx, slog.LevelDebug, "published model swapped in", slog.String("version", p.Version), slog.Uint64("seq", p.Seq))
		return nil
	}, func(err error) {
		if errors.Is(err, registry.ErrCorrupt) {
			n.cluster.met.swaps.WithLabelValues("failed").Inc()
		}
		warn(err)
	})
}

// trainerUserCache is how long the trainer reuses a user's features read
// from Redis to rebuild the contexts of events no decision explains: a
// profile written through an API node reaches those contexts up to this
// late (recent activity, which the trainer writes itself, at once).
const trainerUserCache = 10 * time.Second

// runTrainer competes for the trainer lease until ctx is done, and leads
// while it holds it.
func (n *Node) runTrainer(ctx context.Context) {
	n.registry.Lead(ctx, n.cfg.NodeName, n.cfg.TrainerLease, func(lctx context.Context, l registry.Lease) {
		if err := n.lead(ctx, lctx, l); err != nil && ctx.Err() == nil {
			n.logger.ErrorContext(ctx, "trainer stepped down", slog.Any("err", err))
		}
	}, func(err error) {
		n.warnEvery(ctx, "lease", "trainer lease: the registry did not answer", slog.Any("err", err))
	})
}

// lead is the active trainer: it restores the published model and the
// positions it includes, learns from there, and publishes until lctx ends
// (the lease is lost, or the node shuts down: ctx). On shutdown it
// publishes what it learned last, so a standby takes over from there.
func (n *Node) lead(ctx, lctx context.Context, l registry.Lease) error {
	lctx, cancel := context.WithCancelCause(lctx)
	defer cancel(nil)
	// The lease's fencing token, named so the log redactor keeps it (it
	// removes *_token values as secrets; this one is not).
	log := n.logger.With(slog.Uint64("lease_epoch", l.Token))

	m, meta, p, ok, err := n.loadPublished(lctx)
	if err != nil {
		return fmt.Errorf("restore the published model: %w", err)
	}
	var from, actFrom offsets
	if ok {
		var good bool
		if from, good = restoredOffsets(n.log, meta.Extra[busOffsetsKey], meta.Offset); !good {
			from = nil // taken on another bus: learn this one from its start
		}
		actFrom = from
		var bo busOffsets
		if raw := meta.Extra[activityOffsetsKey]; raw != nil && json.Unmarshal(raw, &bo) == nil && bo.Bus == n.log.ID() {
			actFrom = bo.Offsets
		}
		n.cluster.published.Store(&p)
		n.restoreBaseline(meta.Extra)
	} else if m, err = model.New(n.cfg.Model); err != nil {
		return err
	}
	n.scorer.Swap(m)
	up, err := learn.NewModelUpdater(from, learn.ModelConfig{
		Joiner: n.engine.Ring(), Features: n.store, Catalog: n.engine.Index(), UserCache: trainerUserCache, Learner: n.learner, Tracing: n.tracing(),
		Registerer: n.reg, Now: n.cfg.Now, JoinWait: joinWait,
	})
	if err != nil {
		return err
	}
	act := learn.NewActivityUpdater(n.store, actFrom)
	n.cluster.updater.Store(up)
	n.cluster.served.reset()
	log.InfoContext(ctx, "trainer active", slog.String("restored", p.Version), slog.Uint64("updates", m.Updates()), slog.Uint64("from", from.Sum()))

	g, gctx := errgroup.WithContext(lctx)
	ring := n.engine.Ring()
	loaded := make(chan struct{})
	g.Go(func() error {
		return n.decisions.consume(gctx, int64(n.cfg.DecisionRing), func() { close(loaded) }, func(node string, rec []byte) error {
			err := ring.Put(rec)
			if err == nil {
				err = n.observeRecord(node, rec)
			}
			if err == nil && n.dlog != nil {
				// The backlog read again at each takeover is logged
				// again: readers keep one row per request id.
				n.dlog.WaitRoom(gctx)
				n.dlog.RecordFrom(node, rec)
			}
			if err != nil {
				n.warnEvery(gctx, "decision-record", "skipping a bad decision record", slog.Any("err", err))
			}
			return err // counted in sightline_decision_stream_rejected_total
		})
	})
	consume := func(name string, from offsets, h ingest.PartitionHandler) {
		g.Go(func() error {
			err := n.log.Subscribe(gctx, name, from, h, false)
			if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, ingest.ErrClosed) {
				return fmt.Errorf("consumer %s: %w", name, err)
			}
			return nil
		})
	}
	n.decisions.awaitBacklog(gctx, loaded)
	// The model published is the scorer's: a promoted challenger replaces
	// m (rollout_cluster.go).
	var pubMu sync.Mutex
	var last uint64
	var lastModel *model.Model
	published := ok
	publish := func(ctx context.Context) error {
		pubMu.Lock()
		defer pubMu.Unlock()
		cur := n.scorer.Model()
		if published && cur == lastModel && cur.Updates() == last {
			return nil
		}
		pub, err := n.publishModel(ctx, l, cur, up, act)
		if err != nil {
			return err
		}
		last, lastModel, published = cur.Updates(), cur, true
		n.cluster.published.Store(&pub)
		return nil
	}
	engaged := []learn.EngagementObserver{n.live, n.quality.engagement, n.experiments}
	ctl, rt := n.leadRollout(gctx, l, log, publish)
	defer n.endRollout(ctl)
	if ctl != nil {
		engaged = append(engaged, ctl)
		g.Go(func() error { return ctl.Run(gctx) })
		g.Go(func() error { every(gctx, n.cfg.PublishInterval, func() { rt.refresh(gctx) }); return nil })
	}
	// One read of the stream for the trainer's whole event path: the
	// cluster's engagement (CTR), recent activity with the decision log's
	// events, and the model (from further back, to rebuild its dedupe
	// window), each from its own position.
	events := learn.NewFanout(
		learn.Stage{H: learn.NewEngagementTracker(n.engine.Variant, engaged...), From: actFrom},
		learn.Stage{H: n.logEvents(act), From: actFrom},
		learn.Stage{H: up, From: rewind(from, learn.DefaultDedupeWindow)},
		// From as far back as the model: the decision stream's backlog,
		// read again at takeover, holds decisions of users erased before
		// it, and an erasure drops only decisions made up to its time.
		n.erasures(rewind(actFrom, learn.DefaultDedupeWindow)),
	)
	consume(consumerModel, events.From(), events)
	g.Go(func() error {
		t := time.NewTicker(n.cfg.PublishInterval)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
			}
			if err := publish(gctx); errors.Is(err, registry.ErrLeaseLost) {
				cancel(registry.ErrLeaseLost)
				return nil
			} else if err != nil {
				n.warnEvery(gctx, "publish", "cannot publish the model: retrying", slog.Any("err", err))
			}
		}
	})
	if n.cfg.AlertInterval > 0 {
		g.Go(func() error {
			every(gctx, n.cfg.AlertInterval, func() { n.publishQuality(gctx, l) })
			return nil
		})
	}
	n.cluster.active.Store(true)
	err = g.Wait()
	n.cluster.active.Store(false)
	n.cluster.updater.Store(nil)
	cause := context.Cause(lctx)
	if ctx.Err() != nil && !errors.Is(cause, registry.ErrLeaseLost) {
		// Shutting down with the lease: hand over what was learned.
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if perr := publish(sctx); perr != nil {
			log.WarnContext(sctx, "final model publication failed: a standby resumes from the previous one", slog.Any("err", perr))
		}
		scancel()
	}
	log.InfoContext(ctx, "trainer inactive", slog.Any("cause", cause))
	if err == nil && errors.Is(cause, registry.ErrLeaseLost) {
		err = cause
	}
	return err
}

// publishModel writes a snapshot of m with the positions it includes and
// publishes it, fenced by l.
func (n *Node) publishModel(ctx context.Context, l registry.Lease, m *model.Model, up *learn.ModelUpdater, act *learn.ActivityUpdater) (registry.Publication, error) {
	start := time.Now()
	// The activity positions first: a standby resumes writing activity
	// from them, and applying a suffix again changes nothing.
	var actAt offsets
	_ = act.Pause(func(applied offsets) error { actAt = applied; return nil })
	actRaw, err := json.Marshal(busOffsets{Bus: n.log.ID(), Offsets: actAt})
	if err != nil {
		return registry.Publication{}, err
	}
	var buf bytes.Buffer
	var version string
	err = up.Pause(func(applied offsets) error {
		extra, err := n.snapshotExtra(applied)
		if err != nil {
			return err
		}
		extra[activityOffsetsKey] = actRaw
		version, err = m.WritePublished(&buf, model.SnapshotMeta{Offset: applied.Sum(), Created: n.cfg.Now(), Extra: extra})
		return err
	})
	if err != nil {
		return registry.Publication{}, fmt.Errorf("model snapshot: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	p, err := n.registry.Publish(pctx, l, version, buf.Bytes(), n.cfg.Now())
	if err != nil {
		return p, err
	}
	n.cluster.met.published.Inc()
	n.cluster.met.pubBytes.Set(float64(p.Size))
	n.cluster.met.pubDuration.Observe(time.Since(start).Seconds())
	return p, nil
}

// rewind moves each position back by a share of window, so a consumer
// started there sees again the event ids of the records before it (the
// model updater enters them in its dedupe window without applying them).
func rewind(from offsets, window int) offsets {
	if len(from) == 0 {
		return from
	}
	per := uint64(window / len(from))
	out := make(offsets, len(from))
	for p, o := range from {
		out[p] = o - min(o, per)
	}
	return out
}

// modelUpdater is the node's model updater, nil when it does not learn
// now.
func (n *Node) modelUpdater() *learn.ModelUpdater {
	if n.cfg.Role == RoleAll {
		return n.path.model
	}
	return n.cluster.updater.Load()
}

// ClusterState is what a node of a cluster reports of it in /v1/stats.
type ClusterState struct {
	// Trainer is the node holding the trainer lease, "" when none does.
	Trainer string `json:"trainer"`
	// Published is the cluster's current model.
	Published *registry.Publication `json:"published,omitempty"`
	// Serving is the publication this node serves (API) or last
	// published (trainer).
	Serving *registry.Publication `json:"serving,omitempty"`
	// Quality is the active trainer's cluster-wide quality state.
	Quality json.RawMessage `json:"quality,omitempty"`
	// Error says what could not be read from the registry.
	Error string `json:"error,omitempty"`
}

// clusterState reads the cluster's state from the registry.
func (n *Node) clusterState(ctx context.Context) *ClusterState {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st := &ClusterState{Serving: n.cluster.published.Load()}
	var errs []error
	var err error
	if st.Trainer, err = n.registry.Holder(ctx); err != nil {
		errs = append(errs, err)
	}
	if p, ok, err := n.registry.Latest(ctx); err != nil {
		errs = append(errs, err)
	} else if ok {
		st.Published = &p
	}
	if q, ok, err := n.registry.State(ctx, qualityStateKey); err != nil {
		errs = append(errs, err)
	} else if ok && json.Valid(q) {
		st.Quality = q
	}
	if err := errors.Join(errs...); err != nil {
		st.Error = err.Error()
	}
	return st
}

// clusterQuality is the active trainer's view of the whole cluster's
// traffic: it reads every API node's decisions from the decision stream
// and every event, and publishes this for every node's /v1/alerts and
// console.
type clusterQuality struct {
	// Trainer is the node that computed it, ModelVersion the model it had
	// published then.
	Trainer      string    `json:"trainer"`
	ModelVersion string    `json:"model_version"`
	Evaluated    time.Time `json:"evaluated"`
	// CTR is each variant's click-through rate against its baseline over
	// the quality window.
	CTR []quality.VariantEngagement `json:"ctr"`
	// Features are the null rates and drift of the features the API nodes
	// fetched.
	Features []quality.FeatureStats `json:"features"`
	// Calibration is the model's mean prediction against the observed CTR.
	Calibration model.EvalStats `json:"calibration"`
	// Alerts are the trainer's alerts on the cluster-wide signals.
	Alerts []quality.Alert `json:"alerts"`
	// Served says which API node served which model version, per variant:
	// the decisions read since the trainer became active.
	Served []ServedCount `json:"served"`
}

// publishQuality evaluates the cluster-wide signals and publishes them.
func (n *Node) publishQuality(ctx context.Context, l registry.Lease) {
	now := n.cfg.Now()
	n.EvaluateAlerts(ctx, now)
	q := clusterQuality{
		Trainer: n.cfg.NodeName, Evaluated: now, CTR: n.quality.engagement.CTR(),
		Features: n.quality.monitor.Features(), Calibration: n.model().Eval(), Alerts: n.quality.evaluator.Alerts(),
		Served: n.cluster.served.latest(),
	}
	if p := n.cluster.published.Load(); p != nil {
		q.ModelVersion = p.Version
	}
	raw, err := json.Marshal(q)
	if err != nil {
		n.warnEvery(ctx, "quality", "cannot encode the cluster quality state", slog.Any("err", err))
		return
	}
	if err := n.registry.PutState(ctx, l, qualityStateKey, raw); err != nil && !errors.Is(err, registry.ErrLeaseLost) {
		n.warnEvery(ctx, "quality", "cannot publish the cluster quality state", slog.Any("err", err))
	}
}

// refreshClusterQuality reads the trainer's last published quality state
// into the node's cache, which /v1/alerts and the console read.
func (n *Node) refreshClusterQuality(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	raw, ok, err := n.registry.State(ctx, qualityStateKey)
	if err != nil {
		n.warnEvery(ctx, "quality-read", "cannot read the cluster quality state: showing the last one read", slog.Any("err", err))
		return
	}
	var q clusterQuality
	if !ok || json.Unmarshal(raw, &q) != nil {
		return
	}
	n.cluster.quality.Store(&q)
}

// clusterQuality is the cluster's quality state on an API node, as last
// read from the registry; nil on other nodes and before the first.
func (n *Node) clusterQuality() *clusterQuality {
	if n.cfg.Role != RoleAPI {
		return nil
	}
	return n.cluster.quality.Load()
}

// observeRecord feeds a decision of the stream, made by API node node, to
// the trainer's cluster-wide quality signals. It returns
// engine.ErrBadRecord for a record it cannot decode (the caller counts
// it as rejected).
func (n *Node) observeRecord(node string, rec []byte) error {
	d, _, err := engine.DecodeRecord(rec)
	if err != nil {
		return err
	}
	n.observeDecision(d)
	n.cluster.served.observe(node, d)
	return nil
}

// servedBy counts the decisions of each (API node, variant, model version)
// the trainer has read since it became active: which node served what.
type servedBy struct {
	mu   sync.Mutex
	m    map[servedKey]*ServedCount
	last map[servedKey]uint64 // when each row was last counted (n)
	n    uint64
}

type servedKey struct{ node, variant, version string }

// ServedCount is how many decisions an API node made with a model
// version, and how many of them fell back.
type ServedCount struct {
	Node         string `json:"node"`
	Variant      string `json:"variant"`
	ModelVersion string `json:"model_version"`
	Decisions    int64  `json:"decisions"`
	Fallbacks    int64  `json:"fallbacks"`
}

// maxServed bounds the (node, variant, version) rows kept: versions change
// with every publication, so the oldest rows are dropped.
const maxServed = 256

func (s *servedBy) observe(node string, d *engine.Decision) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m, s.last = map[servedKey]*ServedCount{}, map[servedKey]uint64{}
	}
	k := servedKey{node, d.Variant, d.ModelVersion}
	s.n++
	s.last[k] = s.n
	c := s.m[k]
	if c == nil {
		if len(s.m) >= maxServed {
			clear(s.m) // a new window of rows; the counts restart
			clear(s.last)
			s.last[k] = s.n
		}
		c = &ServedCount{Node: node, Variant: d.Variant, ModelVersion: d.ModelVersion}
		s.m[k] = c
	}
	c.Decisions++
	if d.Fallback != engine.ReasonNone {
		c.Fallbacks++
	}
}

// latest returns, per node and variant, the row of the version it served
// last (the one it serves now), sorted by node and variant.
func (s *servedBy) latest() []ServedCount {
	s.mu.Lock()
	defer s.mu.Unlock()
	type nv struct{ node, variant string }
	best := map[nv]servedKey{}
	for k := range s.m {
		b, ok := best[nv{k.node, k.variant}]
		if !ok || s.last[k] > s.last[b] {
			best[nv{k.node, k.variant}] = k
		}
	}
	out := make([]ServedCount, 0, len(best))
	for _, k := range best {
		out = append(out, *s.m[k])
	}
	slices.SortFunc(out, func(a, b ServedCount) int {
		return cmp.Or(strings.Compare(a.Node, b.Node), strings.Compare(a.Variant, b.Variant))
	})
	return out
}

func (s *servedBy) reset() {
	s.mu.Lock()
	clear(s.m)
	clear(s.last)
	s.mu.Unlock()
}
