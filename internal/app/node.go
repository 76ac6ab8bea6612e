package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sightline/sightline/internal/api"
	"github.com/sightline/sightline/internal/console"
	"github.com/sightline/sightline/internal/decisionlog"
	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/experiment"
	"github.com/sightline/sightline/internal/faults"
	"github.com/sightline/sightline/internal/features"
	"github.com/sightline/sightline/internal/ingest"
	"github.com/sightline/sightline/internal/learn"
	"github.com/sightline/sightline/internal/model"
	"github.com/sightline/sightline/internal/quality"
	"github.com/sightline/sightline/internal/registry"
	"github.com/sightline/sightline/internal/rollout"
	"github.com/sightline/sightline/internal/telemetry"
)

// Node is one running Sightline process of a role (Config.Role): stores,
// model, engine, event path, telemetry and the HTTP API. Build it with New,
// run it with Run.
type Node struct {
	rollout *rollout.Controller // guarded model rollouts, nil off --role all
	learner *rolloutLearner     // the model updater's learner on --role all
	cfg     Config
	tel     *telemetry.Telemetry
	logger  *slog.Logger
	reg     *prometheus.Registry
	tracer  trace.Tracer
	prop    propagation.TextMapPropagator
	log     ingest.Bus
	store   featureStore
	mem     *features.Memory // the store when it is in memory, else nil
	redis   *features.Redis  // the store when it is Redis, else nil
	scorer  *engine.ModelScorer
	engine  *engine.Engine
	live    *quality.Live
	journal *features.Journal
	handler http.Handler

	// The cluster's shared parts (roles api and trainer).
	registry  *registry.Registry
	decisions *decisionStream
	cluster   clusterParts

	// dlog is the Parquet decision log's writer: nil on an API node and
	// when the log is off.
	dlog *decisionlog.Writer

	httpRequests *prometheus.CounterVec
	faults       *faults.Set
	counts       console.DecisionCounts
	experiments  *experiment.Tracker // the live A/B test's totals
	console      *console.Console
	quality      qualityParts
	modelExtra   map[string]json.RawMessage

	// path is the event path of a node that learns (role all); a trainer
	// builds one each time it becomes active.
	path eventPath

	// start positions of the state consumers, from the snapshots, and of
	// the index and engagement consumers.
	modelFrom, featFrom, indexFrom, statsFrom offsets
	// readyAt is the bus position consumers must reach before /readyz passes.
	readyAt uint64
	restore RestoreReport

	// families are the models of the split's variants of other model
	// families (variants.go).
	families *familyModels

	listener net.Listener
	snapMu   sync.Mutex
	closed   atomic.Bool
	warm     warming // loads the node waits for before it recommends (warmup.go)
}

// eventPath is the event path's consumers; nil ones do not run.
type eventPath struct {
	model    *learn.ModelUpdater
	activity *learn.ActivityUpdater
	index    *learn.IndexUpdater
}

// RestoreReport says what New restored from disk.
type RestoreReport struct {
	ModelSnapshot   string `json:"model_snapshot"` // loaded, none, corrupt; published (cluster)
	FeatureSnapshot string `json:"feature_snapshot"`
	ModelOffset     uint64 `json:"model_offset"`
	// ModelOffsets are the restored model's positions by partition.
	ModelOffsets     ingest.Offsets `json:"model_offsets,omitempty"`
	FeatureOffset    uint64         `json:"feature_offset"`
	JournalReplayed  int            `json:"journal_replayed"`
	LogNext          uint64         `json:"log_next"`
	CorruptSnapshots []string       `json:"corrupt_snapshots,omitempty"`
}

// New builds a node from cfg, restoring snapshots and preparing to replay
// the event log. It does not listen or start goroutines beyond telemetry;
// Run does.
func New(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := cfg.Access.prepare(cfg.Addr); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, reg: telemetry.NewRegistry(cfg.Version), live: quality.NewLive(quality.LiveConfig{Now: cfg.Now}), faults: faults.NewSet(cfg.Now, cfg.OnFault)}
	tel, err := telemetry.Setup(ctx, telemetry.Config{
		ServiceVersion:       cfg.Version,
		SampleRatio:          cfg.TraceSampleRatio,
		DisableTailRetention: cfg.DisableTailRetention,
		SlowThreshold:        cfg.SlowThreshold,
		Exporter:             cfg.TraceExporter,
		PseudonymKey:         []byte(cfg.PseudonymKey),
		LogWriter:            cfg.LogWriter,
		LogLevel:             cfg.LogLevel,
		Registerer:           n.reg,
		Gatherer:             n.reg,
		ExportFault:          func() bool { return n.faults.Active(faults.TelemetryOutage) },
		ContextAttrs: func(ctx context.Context) []slog.Attr {
			if id := api.RequestIDFromContext(ctx); id != "" {
				return []slog.Attr{slog.String("request_id", id)}
			}
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	n.tel, n.prop = tel, tel.Propagator()
	n.logger = tel.Logger().With(slog.String("node_role", cfg.Role))
	n.tracer = tel.TracerProvider().Tracer("github.com/sightline/sightline/internal/app")
	if err := n.build(ctx); err != nil {
		return nil, errors.Join(err, n.closeParts(ctx))
	}
	return n, nil
}

func (n *Node) build(ctx context.Context) error {
	cfg := &n.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return err
	}
	if err := n.openBus(ctx); err != nil {
		return err
	}
	if err := n.openStore(ctx); err != nil {
		return err
	}
	if err := n.openDecisionLog(); err != nil {
		return err
	}
	if cfg.Role != RoleAll {
		if err := n.openCluster(ctx); err != nil {
			return err
		}
	}
	next, err := n.log.End(ctx)
	if err != nil {
		return fmt.Errorf("event bus end: %w", err)
	}
	n.restore.LogNext, n.readyAt = next, next
	if n.indexFrom, err = n.log.Recent(ctx, 2_000_000); err != nil { // popularity decays: recent history suffices
		return fmt.Errorf("event bus positions: %w", err)
	}
	if n.statsFrom, err = n.log.Recent(ctx, 0); err != nil {
		return fmt.Errorf("event bus positions: %w", err)
	}
	m, err := n.initialModel(ctx)
	if err != nil {
		return err
	}
	n.scorer = engine.NewModelScorer(m)
	n.learner = newRolloutLearner(n.scorer)
	if cfg.Role == RoleAll {
		journalFrom, err := n.restoreFeatures(ctx)
		if err != nil {
			return err
		}
		replayed, err := n.journal.Replay(journalFrom,
			func(u event.User) error { return n.store.PutUser(ctx, u) },
			func(it event.Item) error { return n.store.PutItem(ctx, it) },
			func(id string) error { _, err := n.mem.EraseUser(ctx, id); return err })
		if err != nil {
			return fmt.Errorf("replay journal: %w", err)
		}
		n.restore.JournalReplayed = replayed
	}
	if err := n.buildEngine(ctx); err != nil {
		return err
	}
	if err := n.buildEventPath(); err != nil {
		return err
	}
	if err := n.buildQuality(); err != nil {
		return err
	}
	if err := n.openRollout(ctx); err != nil {
		return err
	}
	n.restoreBaseline(n.modelExtra)
	n.reg.MustRegister(n.collectors()...)
	return n.buildHTTP()
}

// initialModel is the model a node starts with: a single node's snapshot,
// an API node's latest published model, or a standby trainer's empty one
// (it restores the published model when it becomes active).
func (n *Node) initialModel(ctx context.Context) (*model.Model, error) {
	switch n.cfg.Role {
	case RoleAll:
		return n.restoreModel(ctx)
	case RoleAPI:
		m, ok, err := n.fetchPublished(ctx)
		if err != nil || ok {
			return m, err
		}
		n.restore.ModelSnapshot = "none"
	}
	return model.New(n.cfg.Model)
}

// buildEngine builds the decision engine and loads the catalog into its
// candidate index.
func (n *Node) buildEngine(ctx context.Context) error {
	cfg := &n.cfg
	split := model.DefaultSplit
	if cfg.Split != "" {
		var err error
		if split, err = model.ParseSplit(cfg.Split); err != nil {
			return err
		}
	}
	n.experiments = experiment.NewTracker(split, "popularity")
	var err error
	if n.families, err = n.buildFamilies(split); err != nil {
		return err
	}
	featureBudget := cfg.FeatureBudget
	if featureBudget <= 0 {
		featureBudget = 5 * time.Millisecond
	}
	var onRecord func(string, []byte)
	switch {
	case cfg.Role == RoleAPI:
		onRecord = n.publishDecision
	case cfg.Role == RoleAll && n.dlog != nil:
		onRecord = n.recordDecision
	}
	n.engine, err = engine.New(faults.Store{Source: n.store, Faults: n.faults, Budget: featureBudget}, engine.Config{
		Split:         split,
		Scorers:       n.families.addScorers(map[string]engine.Scorer{"ftrl": faults.Scorer{ModelScorer: n.scorer, Faults: n.faults}}, n.faults),
		Discover:      n.families.discovering(),
		FeatureBudget: cfg.FeatureBudget,
		ModelBudget:   cfg.ModelBudget,
		MinConfidence: cfg.MinConfidence,
		Explore:       cfg.Explore,
		ExploreTop:    cfg.ExploreTop,
		PoolSize:      cfg.DecisionStore.pool(),
		// Every role: a --role all node runs guarded rollouts, a trainer
		// runs the cluster's, and API nodes serve its challenger.
		ChallengerVariant: challengerVariant,
		DecisionLogRatio:  cfg.DecisionLogRatio,
		DecisionRing:      cfg.DecisionRing,
		SlowThreshold:     cfg.SlowThreshold,
		Channels:          cfg.Channels,
		Now:               cfg.Now,
		Pseudonymize:      n.tel.Pseudonymize,
		OnDecision:        n.observeDecision,
		OnRecord:          onRecord,
		Logger:            n.logger,
		Registerer:        n.reg,
		TracerProvider:    n.tel.TracerProvider(),
	})
	if err != nil {
		return err
	}
	ix := n.engine.Index()
	n.store.OnItemChange(ix.PutItem) // first, so no item put meanwhile is missed
	if n.redis != nil {
		n.redis.UseCatalog(ix) // activity updates take categories from memory
	}
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = n.store.RangeItems(lctx, func(it event.Item) bool { ix.PutItem(it); return true })
	cancel()
	if err != nil {
		return fmt.Errorf("load the catalog into the candidate index: %w", err)
	}
	ix.Refresh()
	return nil
}

// tracing is how the event path traces.
func (n *Node) tracing() learn.Tracing {
	return learn.Tracing{TracerProvider: n.tel.TracerProvider(), Propagator: n.prop}
}

// buildEventPath builds the consumers of the node's role: a single node
// learns from the engine's own decisions; an API node only keeps its
// candidate index and live CTR; a trainer builds its event path when it
// becomes active (lead).
func (n *Node) buildEventPath() error {
	tr := n.tracing()
	switch n.cfg.Role {
	case RoleAll:
		var err error
		n.path.model, err = learn.NewModelUpdater(n.modelFrom, learn.ModelConfig{
			// The scorer, not the initial model: a promoted challenger is
			// learned from then on, and a challenger in play learns too.
			Joiner: n.engine.Ring(), Features: n.store, Learner: n.families.learner(n.learner), Tracing: tr, Registerer: n.reg, Now: n.cfg.Now,
		})
		if err != nil {
			return err
		}
		n.path.activity = learn.NewActivityUpdater(n.store, n.featFrom)
		n.path.index = learn.NewIndexUpdater(n.engine, n.engine.Ring(), tr)
	case RoleAPI:
		n.path.index = learn.NewIndexUpdater(n.engine, nil, tr)
	}
	return nil
}

// model is the model the node serves.
func (n *Node) model() *model.Model { return n.scorer.Model() }

func (n *Node) closeParts(ctx context.Context) error {
	if !n.closed.CompareAndSwap(false, true) {
		return nil
	}
	var errs []error
	if n.decisions != nil {
		errs = append(errs, n.decisions.close())
	}
	if n.log != nil {
		errs = append(errs, n.log.Close())
	}
	if n.journal != nil {
		errs = append(errs, n.journal.Close())
	}
	if n.redis != nil {
		errs = append(errs, n.redis.Close())
	}
	if n.registry != nil {
		errs = append(errs, n.registry.Close())
	}
	if n.tel != nil {
		errs = append(errs, n.tel.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// Ready reports whether the node has replayed the log it found at start
// and is loading nothing ([Node.Loading]).
// Nodes of a cluster are ready once built: an API node serves the model it
// has (or falls back), a trainer serves its state pages.
func (n *Node) Ready(context.Context) error {
	if n.closed.Load() {
		return errors.New("shutting down")
	}
	if err := n.warm.err(); err != nil {
		return err
	}
	if n.cfg.Role != RoleAll {
		return nil
	}
	if p := n.log.Position(consumerModel); p < n.readyAt {
		return fmt.Errorf("replaying the event log: %d of %d records applied", p, n.readyAt)
	}
	return nil
}

// observeDecision feeds each decision to the live statistics.
func (n *Node) observeDecision(d *engine.Decision) {
	out := quality.OutcomeOK
	if d.Fallback != engine.ReasonNone {
		out = quality.OutcomeFallback
	}
	n.live.ObserveRequest(quality.Request{Variant: d.Variant, Outcome: out, Reason: string(d.Fallback), Duration: d.Duration})
	n.observeQuality(d)
	n.counts.Observe(d)
	n.experiments.ObserveDecision(d.Variant)
	n.observeRollout(d)
}

// Stats is the body of GET /v1/stats.
type Stats struct {
	quality.Snapshot
	Role          string          `json:"role"`
	Node          string          `json:"node"`
	ModelVersion  string          `json:"model_version"`
	ModelUpdates  uint64          `json:"model_updates"`
	Model         model.EvalStats `json:"model_eval"`
	EventsLogged  uint64          `json:"events_logged"`
	EventsApplied uint64          `json:"events_applied"`
	// EventsLearned and EventsDeduplicated count, since the node started
	// (or a trainer last became active), the events the model learned and
	// those it skipped as already seen.
	EventsLearned      uint64        `json:"events_learned"`
	EventsDeduplicated uint64        `json:"events_deduplicated"`
	IngestLagSecs      float64       `json:"ingest_lag_seconds"`
	Users              int           `json:"users"`
	Items              int           `json:"items"`
	Restore            RestoreReport `json:"restore"`
	// Active reports, on a trainer, whether it holds the lease.
	Active *bool `json:"active,omitempty"`
	// Cluster is the state the active trainer published, on a node of a
	// cluster.
	Cluster *ClusterState `json:"cluster,omitempty"`

	// VariantModels is the online evaluation of the model of each variant
	// of another model family (e.g. ftrl-ucb), by variant.
	VariantModels map[string]model.EvalStats `json:"variant_models,omitempty"`
}

// Stats returns the node's live figures. Users and Items are -1 while the
// feature store does not answer.
func (n *Node) Stats(ctx context.Context) any {
	_, age := n.lag()
	applied := n.position()
	logged, err := n.log.End(ctx)
	if err != nil {
		logged = applied // unknown: report no backlog rather than a wrong one
	}
	users, items, err := n.store.Counts(ctx)
	if err != nil {
		users, items = -1, -1 // the store is unreachable
	}
	m := n.model()
	st := Stats{
		Snapshot:      n.live.Snapshot(),
		Role:          n.cfg.Role,
		Node:          n.cfg.NodeName,
		ModelVersion:  m.Version(),
		ModelUpdates:  m.Updates(),
		Model:         m.Eval(),
		VariantModels: n.families.evals(),
		EventsLogged:  logged,
		EventsApplied: applied,
		IngestLagSecs: age.Seconds(),
		Users:         users,
		Items:         items,
		Restore:       n.restore,
	}
	if up := n.modelUpdater(); up != nil {
		st.EventsLearned, st.EventsDeduplicated = up.Learned(), up.Duplicates()
	}
	if n.cfg.Role == RoleTrainer {
		active := n.cluster.active.Load()
		st.Active = &active
		if p := n.cluster.published.Load(); p != nil && active {
			// The version the API nodes serve once they follow it.
			st.ModelVersion = p.Version
		}
	}
	if n.cfg.Role != RoleAll {
		st.Cluster = n.clusterState(ctx)
	}
	return st
}

// Handler returns the node's HTTP handler (API, metrics, traces, logs, admin).
func (n *Node) Handler() http.Handler { return n.handler }

// Engine returns the node's decision engine.
func (n *Node) Engine() *engine.Engine { return n.engine }

// Model returns the model the node serves.
func (n *Node) Model() *model.Model { return n.model() }

// Telemetry returns the node's telemetry.
func (n *Node) Telemetry() *telemetry.Telemetry { return n.tel }

// Registry returns the node's metric registry.
func (n *Node) Registry() *prometheus.Registry { return n.reg }

// requireAdmin refuses a request that access control did not grant the
// admin scope (the admin token or an admin key, checked by the API for the
// route's scope): a second line should a route be given a wrong scope.
func (n *Node) requireAdmin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !api.Granted(r.Context(), api.ScopeAdmin) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sightline"`)
			writeProblem(w, r, http.StatusUnauthorized, "unauthorized", "this route needs the admin token (--admin-token) or an API key with the admin scope: send Authorization: Bearer <token>")
			return
		}
		h(w, r)
	}
}

// writeProblem answers an operational route's error as the API does.
func writeProblem(w http.ResponseWriter, r *http.Request, status int, slug, detail string) {
	api.WriteProblem(w, r, status, slug, detail)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return // the client went away; nothing to tell it
	}
}
