package app

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/sightline/sightline/internal/console"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/sightline/sightline/internal/api"
	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/features"
	"github.com/sightline/sightline/internal/ingest"
	"github.com/sightline/sightline/internal/model"
	"github.com/sightline/sightline/internal/quality"
	"github.com/sightline/sightline/internal/telemetry"
)

// Node is one running Sightline process: stores, model, engine, telemetry
// and the HTTP API. Build it with New, run it with Run.
type Node struct {
	cfg     Config
	tel     *telemetry.Telemetry
	logger  *slog.Logger
	reg     *prometheus.Registry
	tracer  trace.Tracer
	prop    propagation.TextMapPropagator
	log     eventBus
	store   featureStore
	mem     *features.Memory // the store when it is in memory, else nil
	redis   *features.Redis  // the store when it is Redis, else nil
	model   *model.Model
	engine  *engine.Engine
	live    *quality.Live
	journal *journal
	handler http.Handler

	httpRequests *prometheus.CounterVec
	faults       *faultSet
	counts       decisionCounts
	console      *console.Console
	quality      qualityParts
	modelExtra   map[string]json.RawMessage

	modelUp *modelUpdater
	featUp  *featureUpdater

	// start positions of the state consumers, from the snapshots, and of
	// the index and engagement consumers.
	modelFrom, featFrom, indexFrom, statsFrom offsets
	// readyAt is the bus position consumers must reach before /readyz passes.
	readyAt uint64
	restore RestoreReport

	listener net.Listener
	snapMu   sync.Mutex
	closed   atomic.Bool
}

// RestoreReport says what New restored from disk.
type RestoreReport struct {
	ModelSnapshot   string `json:"model_snapshot"` // loaded, none, corrupt
	FeatureSnapshot string `json:"feature_snapshot"`
	ModelOffset     uint64 `json:"model_offset"`
	// ModelOffsets are the restored model's positions by partition.
	ModelOffsets     map[int32]uint64 `json:"model_offsets,omitempty"`
	FeatureOffset    uint64           `json:"feature_offset"`
	JournalReplayed  int              `json:"journal_replayed"`
	LogNext          uint64           `json:"log_next"`
	CorruptSnapshots []string         `json:"corrupt_snapshots,omitempty"`
}

// New builds a node from cfg, restoring snapshots and preparing to replay
// the event log. It does not listen or start goroutines beyond telemetry;
// Run does.
func New(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, reg: telemetry.NewRegistry(cfg.Version), live: quality.NewLive(quality.LiveConfig{Now: cfg.Now}), faults: newFaultSet(cfg.OnFault)}
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
		ExportFault:          func() bool { return n.faults.active(FaultTelemetryOutage) },
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
	n.tel, n.logger, n.prop = tel, tel.Logger(), tel.Propagator()
	n.tracer = tel.TracerProvider().Tracer("github.com/sightline/sightline/internal/app")
	if err := n.build(ctx); err != nil {
		return nil, errors.Join(err, n.closeParts(ctx))
	}
	return n, nil
}

func (n *Node) build(ctx context.Context) error {
	cfg := &n.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return err
	}
	if err := n.openBus(ctx); err != nil {
		return err
	}
	if err := n.openStore(ctx); err != nil {
		return err
	}
	next, err := n.log.Next(ctx)
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
	if err := n.restoreModel(ctx); err != nil {
		return err
	}
	journalFrom, err := n.restoreFeatures(ctx)
	if err != nil {
		return err
	}
	replayed, err := n.journal.replay(journalFrom,
		func(u event.User) error { return n.store.PutUser(ctx, u) },
		func(it event.Item) error { return n.store.PutItem(ctx, it) })
	if err != nil {
		return fmt.Errorf("replay journal: %w", err)
	}
	n.restore.JournalReplayed = replayed

	split := model.DefaultSplit
	if cfg.Split != "" {
		if split, err = model.ParseSplit(cfg.Split); err != nil {
			return err
		}
	}
	featureBudget := cfg.FeatureBudget
	if featureBudget <= 0 {
		featureBudget = 5 * time.Millisecond
	}
	n.engine, err = engine.New(faultyStore{store: n.store, faults: n.faults, budget: featureBudget}, engine.Config{
		Split:            split,
		Scorers:          map[string]engine.Scorer{"ftrl": faultyScorer{ModelScorer: engine.NewModelScorer(n.model), faults: n.faults}},
		FeatureBudget:    cfg.FeatureBudget,
		ModelBudget:      cfg.ModelBudget,
		MinConfidence:    cfg.MinConfidence,
		Explore:          cfg.Explore,
		DecisionLogRatio: cfg.DecisionLogRatio,
		SlowThreshold:    cfg.SlowThreshold,
		Channels:         cfg.Channels,
		Now:              cfg.Now,
		Pseudonymize:     n.tel.Pseudonymize,
		OnDecision:       n.observeDecision,
		Logger:           n.logger,
		Registerer:       n.reg,
		TracerProvider:   n.tel.TracerProvider(),
	})
	if err != nil {
		return err
	}
	ix := n.engine.Index()
	n.store.OnItemChange(ix.PutItem) // first, so no item put meanwhile is missed
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = n.store.RangeItems(lctx, func(it event.Item) bool { ix.PutItem(it); return true })
	cancel()
	if err != nil {
		return fmt.Errorf("load the catalog into the candidate index: %w", err)
	}
	ix.Refresh()
	n.modelUp = &modelUpdater{n: n, applied: n.modelFrom.clone()}
	n.featUp = &featureUpdater{store: n.store, applied: n.featFrom.clone()}
	if err := n.buildQuality(); err != nil {
		return err
	}
	n.restoreBaseline(n.modelExtra)
	n.reg.MustRegister(n.collectors()...)
	return n.buildHTTP()
}

func (n *Node) modelPath() string    { return filepath.Join(n.cfg.DataDir, "model.snap") }
func (n *Node) featuresPath() string { return filepath.Join(n.cfg.DataDir, "features.snap") }

// quarantine renames a corrupt snapshot aside, so it is kept for analysis
// and never loaded again.
func (n *Node) quarantine(path string, err error) {
	bad := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405")
	n.logger.Error("snapshot corrupt: not loaded, starting from the event log", slog.String("path", path), slog.String("moved_to", bad), slog.String("err", err.Error()))
	os.Rename(path, bad)
	n.restore.CorruptSnapshots = append(n.restore.CorruptSnapshots, filepath.Base(path))
}

func (n *Node) restoreModel(ctx context.Context) error {
	m, meta, err := model.LoadFile(n.modelPath(), n.cfg.Model)
	switch {
	case err == nil:
		n.model, n.modelExtra = m, meta.Extra
		from, ok := restoredOffsets(n.log, meta.Extra[busOffsetsKey], meta.Offset)
		if !ok {
			n.logger.Warn("model snapshot was taken on another event bus: keeping its weights, consuming this bus from its start", slog.String("bus", n.log.ID()))
			if from, err = n.log.Start(ctx, consumerModel, false); err != nil {
				return fmt.Errorf("event bus start: %w", err)
			}
		}
		n.modelFrom = from
		n.restore.ModelSnapshot, n.restore.ModelOffset, n.restore.ModelOffsets = "loaded", from.sum(), from
		n.logger.Info("model snapshot restored", slog.Uint64("offset", from.sum()), slog.String("version", m.Version()), slog.Uint64("updates", m.Updates()))
		return nil
	case errors.Is(err, os.ErrNotExist):
		n.restore.ModelSnapshot = "none"
	case errors.Is(err, model.ErrCorruptSnapshot):
		n.restore.ModelSnapshot = "corrupt"
		n.quarantine(n.modelPath(), err)
	default:
		return fmt.Errorf("load model snapshot: %w", err)
	}
	if n.model, err = model.New(n.cfg.Model); err != nil {
		return err
	}
	n.modelFrom, err = n.log.Start(ctx, consumerModel, false)
	return err
}

// restoreFeatures loads the feature snapshot and returns the first journal
// generation to replay. Redis keeps its own state: its feature updater
// resumes from the position the bus committed for it.
func (n *Node) restoreFeatures(ctx context.Context) (uint64, error) {
	var err error
	if n.mem == nil {
		n.restore.FeatureSnapshot = "redis"
		n.featFrom, err = n.log.Start(ctx, consumerFeatures, true)
		return 0, err
	}
	off, err := n.mem.LoadFile(n.featuresPath())
	switch {
	case err == nil:
		n.featFrom = offsets{0: off}
		if n.log.ID() != BusEmbedded {
			raw, rerr := loadOffsets(n.featuresPath() + ".offsets")
			if rerr != nil {
				return 0, rerr
			}
			from, ok := restoredOffsets(n.log, raw, off)
			if !ok {
				n.logger.Warn("feature snapshot was taken on another event bus: consuming this bus from its start", slog.String("bus", n.log.ID()))
				if from, err = n.log.Start(ctx, consumerFeatures, false); err != nil {
					return 0, fmt.Errorf("event bus start: %w", err)
				}
			}
			n.featFrom = from
		}
		n.restore.FeatureSnapshot, n.restore.FeatureOffset = "loaded", n.featFrom.sum()
		b, rerr := os.ReadFile(n.featuresPath() + ".journal")
		var gen uint64
		if rerr == nil {
			fmt.Sscan(string(b), &gen)
		}
		return gen, nil
	case errors.Is(err, os.ErrNotExist):
		n.restore.FeatureSnapshot = "none"
	case errors.Is(err, features.ErrCorruptSnapshot):
		n.restore.FeatureSnapshot = "corrupt"
		n.quarantine(n.featuresPath(), err)
	default:
		return 0, fmt.Errorf("load feature snapshot: %w", err)
	}
	n.featFrom, err = n.log.Start(ctx, consumerFeatures, false)
	return 0, err
}

// Snapshot saves the model and the in-memory feature store with the bus
// positions they include (per partition, in the model snapshot's extra data
// and beside the feature snapshot). Each updater is paused only while its
// state is copied out. A Redis feature store is not snapshotted: Redis is
// its store of record.
func (n *Node) Snapshot(ctx context.Context) error {
	n.snapMu.Lock()
	defer n.snapMu.Unlock()
	start := time.Now()
	extra := n.baselineExtra()
	if extra == nil {
		extra = make(map[string]json.RawMessage, 1)
	}
	n.modelUp.mu.Lock()
	modelAt := n.modelUp.applied.clone()
	raw, err := json.Marshal(busOffsets{Bus: n.log.ID(), Offsets: modelAt})
	if err == nil {
		extra[busOffsetsKey] = raw
		err = n.model.SaveFile(n.modelPath(), model.SnapshotMeta{Offset: modelAt.sum(), Created: n.cfg.Now(), Updates: n.model.Updates(), Extra: extra})
	}
	n.modelUp.mu.Unlock()
	if err != nil {
		return fmt.Errorf("model snapshot: %w", err)
	}
	if n.mem != nil {
		if err := n.snapshotFeatures(ctx); err != nil {
			return err
		}
	}
	n.logger.InfoContext(ctx, "snapshot saved", slog.Duration("took", time.Since(start)), slog.Uint64("model_offset", modelAt.sum()), slog.String("model_version", n.model.Version()))
	return nil
}

// snapshotFeatures saves the in-memory feature store and cuts the journal
// of imports it includes. The offsets file is written after the snapshot:
// if a crash falls between the two, the next start applies again a suffix
// of the events, which changes nothing (featureStore.Apply).
func (n *Node) snapshotFeatures(ctx context.Context) error {
	gen, err := n.journal.cut()
	if err != nil {
		return fmt.Errorf("cut journal: %w", err)
	}
	n.featUp.mu.Lock()
	featAt := n.featUp.applied.clone()
	err = n.mem.SaveFile(n.featuresPath(), featAt.sum())
	n.featUp.mu.Unlock()
	if err != nil {
		return fmt.Errorf("feature snapshot: %w", err)
	}
	if err := saveOffsets(n.featuresPath()+".offsets", n.log, featAt); err != nil {
		return fmt.Errorf("feature snapshot offsets: %w", err)
	}
	if err := writeFileAtomic(n.featuresPath()+".journal", []byte(fmt.Sprint(gen))); err != nil {
		return err
	}
	if err := n.journal.prune(gen); err != nil {
		n.logger.WarnContext(ctx, "prune journal", slog.String("err", err.Error()))
	}
	return nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Run serves HTTP on cfg.Addr (unless ln is given to Serve) and runs the
// consumers, the index refresher and the snapshotter until ctx is done; then
// it shuts down gracefully: stop accepting, drain, snapshot, close.
func (n *Node) Run(ctx context.Context) error {
	ln, err := n.Listen()
	if err != nil {
		return err
	}
	return n.Serve(ctx, ln)
}

// Listen opens the node's listener on cfg.Addr.
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

// Serve runs the node on ln until ctx is done.
func (n *Node) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: n.handler, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(n.logger.Handler(), slog.LevelWarn)}
	bg, bgCtx := errgroup.WithContext(context.WithoutCancel(ctx))
	bgCtx, stopBG := context.WithCancel(bgCtx)
	consume := func(name string, from offsets, h partitionHandler, commit bool) {
		bg.Go(func() error {
			err := n.log.Consume(bgCtx, name, from, h, commit)
			if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, ingest.ErrClosed) {
				return fmt.Errorf("consumer %s: %w", name, err)
			}
			return nil
		})
	}
	consume(consumerModel, n.modelFrom, n.modelUp, false)
	// Redis is not snapshotted: the bus keeps the feature updater's
	// position, and applying a suffix again is harmless.
	consume(consumerFeatures, n.featFrom, n.featUp, n.redis != nil)
	consume(consumerIndex, n.indexFrom, indexUpdater{n}, false)
	consume(consumerStats, n.statsFrom, engagementTracker{live: n.live, engine: n.engine, engagement: n.quality.engagement}, false)
	if n.cfg.AlertInterval > 0 {
		bg.Go(func() error {
			every(bgCtx, n.cfg.AlertInterval, func() { n.EvaluateAlerts(bgCtx, n.cfg.Now()) })
			return nil
		})
	}
	bg.Go(func() error { return n.log.Run(bgCtx) })
	bg.Go(func() error { return n.engine.Run(bgCtx) })
	bg.Go(func() error { return n.console.Run(bgCtx) })
	if n.cfg.SnapshotInterval > 0 {
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
	n.logger.Info("serving", slog.String("addr", ln.Addr().String()), slog.String("data_dir", n.cfg.DataDir),
		slog.String("model_snapshot", n.restore.ModelSnapshot), slog.Uint64("log_next", n.restore.LogNext))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-serveErr:
	}
	// Graceful shutdown: stop accepting and drain in-flight requests, let the
	// consumers catch up with what was accepted, snapshot, close.
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("http shutdown: %w", err))
	}
	n.waitCaughtUp(shutCtx)
	stopBG()
	runErr = errors.Join(runErr, bg.Wait())
	if err := n.Snapshot(shutCtx); err != nil {
		runErr = errors.Join(runErr, err)
	}
	runErr = errors.Join(runErr, n.closeParts(shutCtx))
	if errors.Is(runErr, http.ErrServerClosed) {
		runErr = nil
	}
	return runErr
}

// WaitApplied waits until every consumer has applied everything appended
// to the log so far, or ctx ends. Drills call it to keep their simulated
// clock and the node's state in step.
func (n *Node) WaitApplied(ctx context.Context) error {
	target, err := n.log.Next(ctx)
	if err != nil {
		return err
	}
	for {
		done := true
		for _, c := range []string{consumerModel, consumerFeatures, consumerIndex, consumerStats} {
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
		case <-time.After(200 * time.Microsecond):
		}
	}
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

// waitCaughtUp waits until the state consumers have applied everything in
// the log, or ctx ends.
func (n *Node) waitCaughtUp(ctx context.Context) {
	target, err := n.log.Next(ctx)
	if err != nil {
		n.logger.Warn("shutdown: event bus end unknown; not waiting for consumers", slog.String("err", err.Error()))
		return
	}
	for {
		if n.log.Position(consumerModel) >= target && n.log.Position(consumerFeatures) >= target {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (n *Node) closeParts(ctx context.Context) error {
	if !n.closed.CompareAndSwap(false, true) {
		return nil
	}
	var errs []error
	if n.log != nil {
		errs = append(errs, n.log.Close())
	}
	if n.journal != nil {
		errs = append(errs, n.journal.close())
	}
	if n.redis != nil {
		errs = append(errs, n.redis.Close())
	}
	if n.tel != nil {
		errs = append(errs, n.tel.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// Ready reports whether the node has replayed the log it found at start.
func (n *Node) Ready(context.Context) error {
	if n.closed.Load() {
		return errors.New("shutting down")
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
	n.counts.observe(d)
}

// Stats is the body of GET /v1/stats.
type Stats struct {
	quality.Snapshot
	ModelVersion  string          `json:"model_version"`
	ModelUpdates  uint64          `json:"model_updates"`
	Model         model.EvalStats `json:"model_eval"`
	EventsLogged  uint64          `json:"events_logged"`
	EventsApplied uint64          `json:"events_applied"`
	IngestLagSecs float64         `json:"ingest_lag_seconds"`
	Users         int             `json:"users"`
	Items         int             `json:"items"`
	Restore       RestoreReport   `json:"restore"`
}

// Stats returns the node's live figures. Users and Items are -1 while the
// feature store does not answer.
func (n *Node) Stats(ctx context.Context) any {
	_, age := n.log.Lag(consumerModel)
	applied := n.log.Position(consumerModel)
	logged, err := n.log.Next(ctx)
	if err != nil {
		logged = applied // unknown: report no backlog rather than a wrong one
	}
	users, items, err := n.store.Counts(ctx)
	if err != nil {
		users, items = -1, -1 // the store is unreachable
	}
	return Stats{
		Snapshot:      n.live.Snapshot(),
		ModelVersion:  n.model.Version(),
		ModelUpdates:  n.model.Updates(),
		Model:         n.model.Eval(),
		EventsLogged:  logged,
		EventsApplied: applied,
		IngestLagSecs: age.Seconds(),
		Users:         users,
		Items:         items,
		Restore:       n.restore,
	}
}

// Handler returns the node's HTTP handler (API, metrics, traces, logs, admin).
func (n *Node) Handler() http.Handler { return n.handler }

// Engine returns the node's decision engine.
func (n *Node) Engine() *engine.Engine { return n.engine }

// Model returns the node's model.
func (n *Node) Model() *model.Model { return n.model }

// Telemetry returns the node's telemetry.
func (n *Node) Telemetry() *telemetry.Telemetry { return n.tel }

// Registry returns the node's metric registry.
func (n *Node) Registry() *prometheus.Registry { return n.reg }

func (n *Node) requireAdmin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get("Authorization")
		want := "Bearer " + n.cfg.AdminToken
		if n.cfg.AdminToken == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(want)) != 1 {
			writeProblem(w, http.StatusUnauthorized, "unauthorized", "this route needs the admin token: send Authorization: Bearer <token> (set with --admin-token)")
			return
		}
		h(w, r)
	}
}

func writeProblem(w http.ResponseWriter, status int, slug, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": "https://sightline.dev/problems/" + slug, "title": http.StatusText(status), "status": status, "detail": detail})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

var _ = io.Discard
var _ = otelhttp.NewHandler
