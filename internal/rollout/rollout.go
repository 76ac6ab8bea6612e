package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/experiment"
)

// Stage is where a rollout is.
type Stage string

// Stages of a rollout.
const (
	// Idle: no challenger was ever registered.
	Idle Stage = "idle"
	// Shadow: the challenger scores live requests without being shown.
	Shadow Stage = "shadow"
	// Canary: the challenger serves a share of the champion's users.
	Canary Stage = "canary"
	// Promoting: the challenger is being made the champion (a restart
	// finishes it).
	Promoting Stage = "promoting"
	// Promoted: the challenger is the champion.
	Promoted Stage = "promoted"
	// RolledBack: the challenger was withdrawn by a guardrail, a timeout
	// or a person.
	RolledBack Stage = "rolled_back"
)

// active reports a stage with a challenger in play.
func (s Stage) active() bool { return s == Shadow || s == Canary || s == Promoting }

// Errors of the controller.
var (
	// ErrBusy is returned by Start while a rollout is under way.
	ErrBusy = errors.New("rollout: a rollout is under way")
	// ErrNone is returned by Abort when no rollout is under way.
	ErrNone = errors.New("rollout: no rollout under way")
	// ErrInvalid wraps a Spec that does not validate.
	ErrInvalid = errors.New("rollout: invalid spec")
)

// Target is what a rollout steers: the serving side of the node. The
// controller calls it from one goroutine at a time.
type Target interface {
	// Load prepares the challenger named by source (a model snapshot file)
	// and returns its model version. It may block (it reads the file).
	Load(ctx context.Context, source string) (version string, err error)
	// Route serves the loaded challenger to share (0..1) of the champion's
	// users, the same users at every share they are part of; with shadow
	// the challenger scores the champion's requests without being shown.
	// Route(ctx, false, 0) withdraws it. Route must not block for long (a
	// cluster's trainer writes the routing to the registry, bounded by
	// ctx); it reports a failure itself.
	Route(ctx context.Context, shadow bool, share float64)
	// Promote makes the loaded challenger the champion, durably: once it
	// returned, a restart serves the challenger's model.
	Promote(ctx context.Context) error
}

// Defaults of Config.
var (
	DefaultSteps = []float64{0.05, 0.25, 0.50}
)

// Default durations of Config.
const (
	DefaultStepHold   = 10 * time.Minute
	DefaultCheckEvery = time.Minute
	maxTimeline       = 200
)

// Config configures a [Controller]. The zero value of every field means its
// default.
type Config struct {
	// Steps are the challenger's shares of the champion's users, in order
	// (default 5%, 25%, 50%), each in (0, 1].
	Steps []float64
	// StepHold is how long each step is held before the next one, or the
	// promotion (default 10m).
	StepHold time.Duration
	// ShadowHold is how long the challenger is scored in shadow before its
	// first canary step (default 0: no shadow stage).
	ShadowHold time.Duration
	// MaxWait is how long the last step may wait past its hold for every
	// guardrail to pass before the rollout is rolled back as inconclusive
	// (default 3 × StepHold).
	MaxWait time.Duration
	// CheckEvery is the period of the guardrail checks (default 1m).
	CheckEvery time.Duration
	// Champion and Challenger are the variant names of the champion's
	// decisions and the challenger's (defaults "ftrl" and "challenger").
	Champion, Challenger string
	// Guards are the guardrails' settings.
	Guards Guards
	// StatePath is the file the state is written to before each transition
	// takes effect; empty keeps it in memory only. Store, when set, is used
	// instead.
	StatePath string
	// Store keeps the state instead of StatePath's file (a cluster's
	// registry).
	Store Store
	// Estimator, when set, estimates the challenger offline at each check
	// of its shadow stage (State.Offline).
	Estimator Estimator
	// Now is the clock (default time.Now).
	Now            func() time.Time
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
	TracerProvider trace.TracerProvider
}

func (c *Config) defaults() error {
	if c.Steps == nil {
		c.Steps = DefaultSteps
	}
	if err := validSteps(c.Steps); err != nil {
		return err
	}
	if c.StepHold == 0 {
		c.StepHold = DefaultStepHold
	}
	if c.MaxWait == 0 {
		c.MaxWait = 3 * c.StepHold
	}
	if c.CheckEvery == 0 {
		c.CheckEvery = DefaultCheckEvery
	}
	if c.Champion == "" {
		c.Champion = "ftrl"
	}
	if c.Challenger == "" {
		c.Challenger = "challenger"
	}
	if c.Champion == c.Challenger {
		return fmt.Errorf("%w: the champion and the challenger need distinct variant names", ErrInvalid)
	}
	if c.StepHold < 0 || c.ShadowHold < 0 || c.MaxWait < 0 || c.CheckEvery < 0 {
		return fmt.Errorf("%w: durations must not be negative", ErrInvalid)
	}
	if err := c.Guards.defaults(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
	return nil
}

// validSteps checks that steps are increasing shares in (0, 1].
func validSteps(steps []float64) error {
	if len(steps) == 0 {
		return fmt.Errorf("%w: no canary steps", ErrInvalid)
	}
	for i, s := range steps {
		if !(s > 0 && s <= 1) || (i > 0 && s <= steps[i-1]) {
			return fmt.Errorf("%w: canary steps %v must be increasing shares in (0, 1]", ErrInvalid, steps)
		}
	}
	return nil
}

// Spec is a rollout request: the challenger and, optionally, its own
// steps and hold.
type Spec struct {
	// Source names the challenger: a model snapshot file.
	Source string `json:"source"`
	// Steps and StepHold override the Config's for this rollout.
	Steps    []float64     `json:"steps,omitempty"`
	StepHold time.Duration `json:"step_hold,omitempty"`
}

// Transition is one entry of a rollout's timeline.
type Transition struct {
	At   time.Time `json:"at"`
	From Stage     `json:"from"`
	To   Stage     `json:"to"`
	// Share is the challenger's share of the champion's users from then on.
	Share float64 `json:"share"`
	// Reason is a short code (start, step, promote, abort, inconclusive,
	// restored, or the failing guardrail's name); Detail says it in words.
	Reason string `json:"reason"`
	Detail string `json:"detail"`
	// Checks are the guardrails' verdicts the transition was decided on.
	Checks []Check `json:"checks,omitempty"`
	// TraceID is the transition span's trace id.
	TraceID string `json:"trace_id,omitempty"`
	// Offline is the shadow stage's last offline estimate, on the
	// transition that ends the shadow stage.
	Offline *Offline `json:"offline,omitempty"`
}

// State is a rollout's state: what the console and the API show, and what
// is written to Config.StatePath.
type State struct {
	Stage   Stage  `json:"stage"`
	Source  string `json:"source,omitempty"`
	Version string `json:"version,omitempty"`
	// Steps and StepHoldSeconds are the rollout's plan; Step is the index
	// of the current canary step.
	Steps           []float64 `json:"steps,omitempty"`
	StepHoldSeconds float64   `json:"step_hold_seconds,omitempty"`
	Step            int       `json:"step"`
	Share           float64   `json:"share"`
	// StartedAt is when the challenger was registered; Since when the
	// current stage (or step) began.
	StartedAt time.Time `json:"started_at,omitzero"`
	Since     time.Time `json:"since,omitzero"`
	// Checks are the guardrails' verdicts at the last check.
	Checks []Check `json:"checks,omitempty"`
	// Arms are the running totals of the champion's users (0) and the
	// challenger's (1) since the challenger started serving.
	Arms [2]Counts `json:"arms"`
	// Offline is the offline estimate of the challenger at the shadow
	// stage's last check (Config.Estimator), nil before one was made.
	Offline *Offline `json:"offline,omitempty"`
	// Timeline is the rollout's transitions, oldest first (the last 200,
	// across rollouts).
	Timeline []Transition `json:"timeline"`
}

// Controller runs rollouts. Its methods are safe for concurrent use;
// ObserveDecision and ObserveEvent are cheap and never block for long
// (serving calls them).
type Controller struct {
	cfg    Config
	target Target
	log    *slog.Logger
	tracer trace.Tracer
	met    *metrics

	// live is true while a challenger is in play, so that serving skips
	// the observation hooks otherwise.
	live atomic.Bool
	arms [2]*arm

	mu  sync.Mutex // guards st, seq
	st  State
	seq experiment.Sequential
}

// New returns a controller of target. It restores the state of
// Config.StatePath when the file exists: a rollout under way is resumed
// (its challenger loaded and routed again) and a promotion begun is
// finished; a challenger that no longer loads is rolled back.
func New(ctx context.Context, target Target, cfg Config) (*Controller, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	c := &Controller{
		cfg:    cfg,
		target: target,
		log:    cfg.Logger,
		tracer: cfg.TracerProvider.Tracer("github.com/sightline/sightline/internal/rollout"),
		arms:   [2]*arm{newArm(), newArm()},
		st:     State{Stage: Idle},
	}
	if c.cfg.Store == nil && cfg.StatePath != "" {
		c.cfg.Store = fileStore(cfg.StatePath)
	}
	met, err := newMetrics(cfg.Registerer, c)
	if err != nil {
		return nil, err
	}
	c.met = met
	var st State
	ok := false
	if c.cfg.Store != nil {
		if st, ok, err = c.cfg.Store.LoadState(ctx); err != nil {
			met.unregister(cfg.Registerer)
			return nil, err
		}
	}
	if ok {
		c.restore(ctx, st)
		c.met.setStage(c.st.Stage, c.st.Share)
	}
	return c, nil
}

// restore resumes the persisted state st.
func (c *Controller) restore(ctx context.Context, st State) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st = st
	if !st.Stage.active() {
		return
	}
	for i, a := range c.arms {
		a.restore(st.Arms[i])
	}
	if _, err := c.target.Load(ctx, st.Source); err != nil {
		c.transitionLocked(ctx, RolledBack, 0, "restored", fmt.Sprintf("the challenger %s could not be loaded after a restart: %v", st.Source, err), nil)
		return
	}
	switch st.Stage {
	case Promoting:
		c.promoteLocked(ctx, "restored", "a promotion begun before a restart is finished", st.Checks)
	default:
		c.live.Store(true)
		c.target.Route(ctx, st.Stage == Shadow, st.Share)
		c.log.LogAttrs(ctx, slog.LevelInfo, "rollout resumed after a restart",
			slog.String("stage", string(st.Stage)), slog.Float64("share", st.Share), slog.String("model_version", st.Version))
	}
}

// Start registers a challenger and starts its rollout: shadow first when
// Config.ShadowHold is set, else the first canary step. It returns
// ErrBusy while another rollout is under way.
func (c *Controller) Start(ctx context.Context, spec Spec) (State, error) {
	if strings.TrimSpace(spec.Source) == "" {
		return State{}, fmt.Errorf("%w: source (a model snapshot file) is required", ErrInvalid)
	}
	steps := spec.Steps
	if steps == nil {
		steps = c.cfg.Steps
	}
	if err := validSteps(steps); err != nil {
		return State{}, err
	}
	hold := spec.StepHold
	if hold == 0 {
		hold = c.cfg.StepHold
	}
	if hold < 0 {
		return State{}, fmt.Errorf("%w: step hold must not be negative", ErrInvalid)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.Stage.active() {
		return State{}, ErrBusy
	}
	version, err := c.target.Load(ctx, spec.Source)
	if err != nil {
		return State{}, fmt.Errorf("load challenger: %w", err)
	}
	now := c.cfg.Now()
	c.st.Source, c.st.Version = spec.Source, version
	c.st.Steps, c.st.StepHoldSeconds, c.st.Step = slices.Clone(steps), hold.Seconds(), 0
	c.st.StartedAt, c.st.Checks, c.st.Arms, c.st.Offline = now, nil, [2]Counts{}, nil
	for _, a := range c.arms {
		a.restore(Counts{})
	}
	c.seq = experiment.Sequential{}
	c.live.Store(true)
	if c.cfg.ShadowHold > 0 {
		c.transitionLocked(ctx, Shadow, 0, "start", "challenger "+version+" registered: shadow scoring", nil)
	} else {
		c.transitionLocked(ctx, Canary, steps[0], "start", fmt.Sprintf("challenger %s registered: canary step 1 of %d", version, len(steps)), nil)
	}
	return c.stateLocked(), nil
}

// Abort rolls the rollout under way back.
func (c *Controller) Abort(ctx context.Context, why string) (State, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.st.Stage.active() || c.st.Stage == Promoting {
		return State{}, ErrNone
	}
	if why == "" {
		why = "aborted by an operator"
	}
	c.transitionLocked(ctx, RolledBack, 0, "abort", why, c.st.Checks)
	return c.stateLocked(), nil
}

// arm returns the arm of variant: the champion's, the challenger's, or
// false for another variant.
func (c *Controller) arm(variant string) (*arm, bool) {
	switch variant {
	case c.cfg.Champion:
		return c.arms[Champion], true
	case c.cfg.Challenger:
		return c.arms[Challenger], true
	}
	return nil, false
}

// ObserveDecision records a decision served by variant to a user (h hashes
// the user's pseudonym; any well-mixed hash). Decisions of other variants
// than the champion's and the challenger's, and every decision while no
// rollout is under way, are ignored.
func (c *Controller) ObserveDecision(variant string, h uint64, d Decision) {
	if !c.live.Load() {
		return
	}
	if a, ok := c.arm(variant); ok {
		a.decision(h, d)
	}
}

// ObserveEvent records an impression or click of a user of variant; it has
// the signature of the event path's engagement observers.
func (c *Controller) ObserveEvent(variant, _ string, typ event.Type) {
	if !c.live.Load() {
		return
	}
	if a, ok := c.arm(variant); ok {
		a.event(typ)
	}
}

// Live reports whether a challenger is in play (shadow or canary).
func (c *Controller) Live() bool { return c.live.Load() }

// State returns the current state.
func (c *Controller) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stateLocked()
}

func (c *Controller) stateLocked() State {
	st := c.st
	if st.Stage.active() {
		st.Arms = [2]Counts{c.arms[0].counts(), c.arms[1].counts()}
	}
	st.Steps = slices.Clone(st.Steps)
	st.Checks = slices.Clone(st.Checks)
	st.Timeline = slices.Clone(st.Timeline)
	if st.Timeline == nil {
		st.Timeline = []Transition{}
	}
	return st
}

// Unregister removes the controller's metrics from Config.Registerer, so
// that another controller may register them: a cluster's trainer builds
// one each time it becomes active.
func (c *Controller) Unregister() { c.met.unregister(c.cfg.Registerer) }

// Run checks the guardrails every Config.CheckEvery until ctx is done.
func (c *Controller) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.CheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.Check(ctx)
		}
	}
}

// Check evaluates the guardrails once and takes the transition they call
// for: a failed guardrail rolls back; a step held long enough advances;
// the last step promotes once every guardrail passes, or rolls back when
// they have not passed MaxWait after its hold.
func (c *Controller) Check(ctx context.Context) {
	off := c.estimate(ctx) // reads the log: without the lock
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &c.st
	now := c.cfg.Now()
	if st.Stage != Shadow && st.Stage != Canary {
		return
	}
	if off != nil && st.Stage == Shadow {
		st.Offline = off
	}
	ch, ca := c.arms[Challenger].counts(), c.arms[Champion].counts()
	checks := c.cfg.Guards.evaluate(ch, ca, &c.seq)
	st.Checks, st.Arms = checks, [2]Counts{ca, ch}
	c.met.observeChecks(checks)
	for _, k := range checks {
		if k.Status == Fail {
			c.transitionLocked(ctx, RolledBack, 0, k.Name, k.Name+" guardrail failed"+inShadow(st.Stage)+": "+k.Detail, checks)
			return
		}
	}
	if st.Stage == Shadow {
		// Shadow: the challenger's would-be decisions (latency, scoring
		// errors) are judged; nothing was shown, so CTR and calibration
		// wait for the canary, which starts from fresh totals.
		if now.Sub(st.Since) >= c.cfg.ShadowHold {
			for _, a := range c.arms {
				a.restore(Counts{})
			}
			c.seq = experiment.Sequential{}
			detail := fmt.Sprintf("shadow held %v with no guardrail failing: canary step 1 of %d", c.cfg.ShadowHold, len(st.Steps))
			if st.Offline != nil {
				detail += "; " + st.Offline.Verdict()
			}
			c.transitionLocked(ctx, Canary, st.Steps[0], "step", detail, checks)
			return
		}
		c.persistLocked(ctx)
		return
	}
	held, hold := now.Sub(st.Since), time.Duration(st.StepHoldSeconds*float64(time.Second))
	if held < hold {
		c.persistLocked(ctx)
		return
	}
	if st.Step < len(st.Steps)-1 {
		st.Step++
		c.transitionLocked(ctx, Canary, st.Steps[st.Step], "step", fmt.Sprintf("step %d held %v with no guardrail failing: canary step %d of %d", st.Step, hold, st.Step+1, len(st.Steps)), checks)
		return
	}
	if allPass(checks) {
		c.promoteLocked(ctx, "promote", fmt.Sprintf("every guardrail passed at the last step (%.0f%%)", 100*st.Share), checks)
		return
	}
	if held >= hold+c.cfg.MaxWait {
		c.transitionLocked(ctx, RolledBack, 0, "inconclusive", fmt.Sprintf("the guardrails did not all pass within %v of the last step's hold: %s", c.cfg.MaxWait, waiting(checks)), checks)
		return
	}
	c.persistLocked(ctx)
}

// inShadow says " in shadow" for the shadow stage.
func inShadow(s Stage) string {
	if s == Shadow {
		return " in shadow"
	}
	return ""
}

func allPass(checks []Check) bool {
	for _, k := range checks {
		if k.Status != Pass {
			return false
		}
	}
	return true
}

// waiting names the guardrails that have not passed.
func waiting(checks []Check) string {
	var names []string
	for _, k := range checks {
		if k.Status != Pass {
			names = append(names, k.Name+" ("+k.Detail+")")
		}
	}
	return strings.Join(names, "; ")
}

// promoteLocked writes the Promoting state, promotes the challenger and
// writes Promoted; a failed promotion rolls back.
func (c *Controller) promoteLocked(ctx context.Context, reason, detail string, checks []Check) {
	if c.st.Stage != Promoting {
		c.transitionLocked(ctx, Promoting, c.st.Share, reason, detail, checks)
	}
	if err := c.target.Promote(ctx); err != nil {
		c.transitionLocked(ctx, RolledBack, 0, "promote_failed", "the promotion failed: "+err.Error(), checks)
		return
	}
	c.transitionLocked(ctx, Promoted, 0, reason, detail, checks)
}

// transitionLocked moves to stage to: it records the transition (span,
// timeline, metric, log line), writes the state, then routes the target.
func (c *Controller) transitionLocked(ctx context.Context, to Stage, share float64, reason, detail string, checks []Check) {
	st := &c.st
	from := st.Stage
	now := c.cfg.Now()
	ctx, span := c.tracer.Start(ctx, "RolloutTransition", trace.WithAttributes(
		attribute.String("rollout.from", string(from)), attribute.String("rollout.to", string(to)),
		attribute.Float64("rollout.share", share), attribute.String("rollout.reason", reason),
		attribute.String("model.version", st.Version)))
	defer span.End()
	for _, k := range checks {
		span.SetAttributes(attribute.String("rollout.guardrail."+k.Name, string(k.Status)))
	}
	if to == RolledBack {
		span.SetStatus(codes.Error, detail)
	}
	if from.active() {
		st.Arms = [2]Counts{c.arms[0].counts(), c.arms[1].counts()}
	}
	st.Stage, st.Share, st.Since = to, share, now
	if checks != nil {
		st.Checks = checks
	}
	tr := Transition{At: now, From: from, To: to, Share: share, Reason: reason, Detail: detail, Checks: checks}
	if from == Shadow {
		tr.Offline = st.Offline
	}
	if sc := span.SpanContext(); sc.IsValid() {
		tr.TraceID = sc.TraceID().String()
	}
	st.Timeline = append(st.Timeline, tr)
	if n := len(st.Timeline); n > maxTimeline {
		st.Timeline = slices.Delete(st.Timeline, 0, n-maxTimeline)
	}
	c.persistLocked(ctx)
	switch to {
	case Shadow:
		c.target.Route(ctx, true, 0)
	case Canary:
		c.target.Route(ctx, false, share)
	case Promoting:
	default:
		c.live.Store(false)
		c.target.Route(ctx, false, 0)
	}
	c.met.transition(to, reason, share)
	level := slog.LevelInfo
	if to == RolledBack {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("from", string(from)), slog.String("to", string(to)), slog.Float64("share", share),
		slog.String("reason", reason), slog.String("detail", detail), slog.String("model_version", st.Version),
	}
	for _, k := range checks {
		attrs = append(attrs, slog.Group("guardrail_"+k.Name, slog.String("status", string(k.Status)),
			slog.Float64("challenger", k.Challenger), slog.Float64("champion", k.Champion), slog.Float64("limit", k.Limit)))
	}
	if tr.Offline != nil {
		attrs = append(attrs, tr.Offline.attr())
	}
	c.log.LogAttrs(ctx, level, "rollout "+string(to), attrs...)
}

// persistLocked writes the state; a failure is logged (the rollout goes
// on: the state in memory is right, only a restart would lose it).
func (c *Controller) persistLocked(ctx context.Context) {
	if c.cfg.Store == nil {
		return
	}
	if err := c.cfg.Store.SaveState(ctx, c.stateLocked()); err != nil {
		c.met.persistErrors.Inc()
		c.log.LogAttrs(ctx, slog.LevelError, "rollout state not written", slog.Any("err", err))
	}
}
