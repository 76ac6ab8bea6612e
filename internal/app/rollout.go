package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sightline/sightline/internal/console"
	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
	"github.com/sightline/sightline/internal/rollout"
)

// challengerVariant is the variant name of a rollout challenger's
// decisions, in responses, spans, logs and metric labels.
const challengerVariant = "challenger"

// championVariant is the variant a challenger competes with: the online
// model's.
const championVariant = "ftrl"

// rolloutTarget is the node's side of a guarded rollout: it loads a
// challenger snapshot, routes a share of the champion's users to it through
// the engine, and promotes it by swapping it into the champion's scorer
// (which the event path learns into) and snapshotting at once.
type rolloutTarget struct {
	n *Node

	mu     sync.Mutex
	next   *model.Model
	scorer *engine.ModelScorer
}

// rolloutLearner is the event path's learner on a --role all node: the
// champion's scorer and, while a challenger is in play, the challenger's
// too, so that both learn from the same stream and the guardrails compare
// models, not a learning model with a frozen one.
type rolloutLearner struct {
	champion   atomic.Pointer[engine.ModelScorer]
	challenger atomic.Pointer[engine.ModelScorer]
}

// newRolloutLearner returns the learner of the champion's scorer s.
func newRolloutLearner(s *engine.ModelScorer) *rolloutLearner {
	l := &rolloutLearner{}
	l.champion.Store(s)
	return l
}

// Learn implements learn.Learner: it returns the champion's prediction.
func (l *rolloutLearner) Learn(x *model.Context, it event.Item, lb model.Label) float64 {
	if c := l.challenger.Load(); c != nil {
		c.Learn(x, it, lb)
	}
	return l.champion.Load().Learn(x, it, lb)
}

// Load implements rollout.Target.
func (t *rolloutTarget) Load(_ context.Context, source string) (string, error) {
	m, _, err := model.LoadFile(source, t.n.cfg.Model)
	if err != nil {
		return "", fmt.Errorf("challenger snapshot %s: %w", filepath.Base(source), err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.next, t.scorer = m, engine.NewModelScorer(m)
	return m.Version(), nil
}

// Route implements rollout.Target: a shadow challenger scores the
// champion's decisions without being shown (engine.Shadow) and learns from
// the stream.
func (t *rolloutTarget) Route(_ context.Context, shadow bool, share float64) {
	t.mu.Lock()
	s := t.scorer
	t.mu.Unlock()
	if (share <= 0 && !shadow) || s == nil {
		_ = t.n.engine.SetChallenger(nil) // withdrawing cannot fail
		t.n.learner.challenger.Store(nil)
		return
	}
	t.n.learner.challenger.Store(s)
	if err := t.n.engine.SetChallenger(&engine.Challenger{Base: championVariant, Scorer: s, Share: share, Shadow: shadow}); err != nil {
		t.n.logger.Error("rollout: challenger not routed", slog.Any("err", err))
	}
}

// Promote implements rollout.Target.
func (t *rolloutTarget) Promote(ctx context.Context) error {
	t.mu.Lock()
	m := t.next
	t.mu.Unlock()
	if m == nil {
		return errors.New("no challenger loaded")
	}
	_ = t.n.engine.SetChallenger(nil)
	t.n.learner.challenger.Store(nil)
	t.n.scorer.Swap(m)
	if err := t.n.Snapshot(ctx); err != nil {
		return fmt.Errorf("snapshot the promoted model: %w", err)
	}
	return nil
}

// openRollout builds the rollout controller of a --role all node, resuming
// the rollout its state file records. On a cluster the active trainer
// builds one while it leads (leadRollout).
func (n *Node) openRollout(ctx context.Context) error {
	if n.cfg.Role != RoleAll {
		return nil
	}
	cfg := n.cfg.Rollout
	cfg.Champion, cfg.Challenger = championVariant, challengerVariant
	cfg.StatePath = filepath.Join(n.cfg.DataDir, "rollout.json")
	cfg.Estimator = n.newShadowEstimator()
	cfg.Now = n.cfg.Now
	cfg.Logger = n.logger
	cfg.Registerer = n.reg
	cfg.TracerProvider = n.tel.TracerProvider()
	var err error
	n.rollout, err = rollout.New(ctx, &rolloutTarget{n: n}, cfg)
	return err
}

// Rollout returns the node's rollout controller, nil off --role all.
func (n *Node) Rollout() *rollout.Controller { return n.rollout }

// observeRollout feeds a decision to the rollout's guardrails: a single
// node's own, or, on the active trainer, every API node's from the
// decision stream.
func (n *Node) observeRollout(d *engine.Decision) {
	ctl := n.rolloutController()
	if ctl == nil || !ctl.Live() {
		return
	}
	rd := rollout.Decision{Latency: d.Duration, Fallback: d.Fallback != engine.ReasonNone}
	if d.KnownUser {
		for _, v := range d.Features {
			if v == nil {
				rd.NullFeature = true
				break
			}
		}
	}
	if !rd.Fallback {
		rd.Shown = len(d.Items)
		for _, it := range d.Items {
			rd.Predicted += it.Score
		}
	}
	h := fnv64a(d.UserHash)
	ctl.ObserveDecision(d.Variant, h, rd)
	if sh := d.Shadow; sh != nil {
		// The challenger's would-be decision: the champion's, with its
		// inference replaced by the challenger's.
		sd := rollout.Decision{Latency: d.Duration + sh.Duration, Fallback: sh.Error != "", NullFeature: rd.NullFeature}
		for _, st := range d.Stages {
			if st.Stage == engine.StageInference {
				sd.Latency -= st.Duration
			}
		}
		if !sd.Fallback {
			sd.Shown = len(sh.Items)
			for _, p := range sh.Scores {
				sd.Predicted += p
			}
		}
		ctl.ObserveDecision(challengerVariant, h, sd)
	}
}

// rolloutRoutes are the rollout's HTTP routes.
func (n *Node) rolloutRoutes(mount map[string]http.Handler) {
	mount["GET /v1/rollouts"] = http.HandlerFunc(n.getRollout)
	mount["POST /admin/rollouts"] = n.requireAdmin(n.startRollout)
	mount["POST /admin/rollouts/abort"] = n.requireAdmin(n.abortRollout)
}

// noRollouts answers a request to start or abort a rollout on a node that
// does not run them: on a cluster, the active trainer does.
func (n *Node) noRollouts(w http.ResponseWriter, r *http.Request) (*rollout.Controller, bool) {
	if ctl := n.rolloutController(); ctl != nil {
		return ctl, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	trainer, err := n.registry.Holder(ctx)
	switch {
	case err != nil:
		trainer = "unknown: the registry did not answer"
	case trainer == "":
		trainer = "none holds the lease now"
	}
	writeProblem(w, r, http.StatusConflict, "rollouts-on-trainer", "a cluster's rollouts run on its active trainer (now "+trainer+"); this node is --role "+n.cfg.Role+": send the request to the trainer")
	return nil, true
}

// rolloutState is the rollout the node shows: its own (a single node, the
// active trainer) or the cluster's, from the registry.
func (n *Node) rolloutState(ctx context.Context) (rollout.State, error) {
	if ctl := n.rolloutController(); ctl != nil {
		return ctl.State(), nil
	}
	return n.clusterRolloutState(ctx)
}

func (n *Node) getRollout(w http.ResponseWriter, r *http.Request) {
	st, err := n.rolloutState(r.Context())
	if err != nil {
		writeProblem(w, r, http.StatusServiceUnavailable, "registry-unavailable", "the cluster's rollout state could not be read from the registry: "+err.Error())
		return
	}
	writeJSON(w, st)
}

// rolloutRequest is the body of POST /admin/rollouts.
type rolloutRequest struct {
	// Source is the challenger's model snapshot file, on the node's disk.
	Source string `json:"source"`
	// Steps and StepHold override the node's canary steps and hold.
	Steps    []float64 `json:"steps,omitempty"`
	StepHold string    `json:"step_hold,omitempty"`
}

func (n *Node) startRollout(w http.ResponseWriter, r *http.Request) {
	ctl, no := n.noRollouts(w, r)
	if no {
		return
	}
	var req rolloutRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeProblem(w, r, http.StatusBadRequest, "bad-rollout", "the body must be a JSON object {\"source\": \"<model snapshot file>\", \"steps\": [0.05, 0.25, 0.5], \"step_hold\": \"10m\"}: "+err.Error())
		return
	}
	spec := rollout.Spec{Source: req.Source, Steps: req.Steps}
	if req.StepHold != "" {
		d, err := time.ParseDuration(req.StepHold)
		if err != nil || d <= 0 {
			writeProblem(w, r, http.StatusBadRequest, "bad-rollout", fmt.Sprintf("step_hold %q must be a positive duration such as \"10m\"", req.StepHold))
			return
		}
		spec.StepHold = d
	}
	st, err := ctl.Start(r.Context(), spec)
	switch {
	case errors.Is(err, rollout.ErrBusy):
		writeProblem(w, r, http.StatusConflict, "rollout-under-way", "a rollout is under way: abort it (POST /admin/rollouts/abort) or wait for it to end")
		return
	case errors.Is(err, rollout.ErrInvalid):
		writeProblem(w, r, http.StatusBadRequest, "bad-rollout", err.Error())
		return
	case err != nil:
		writeProblem(w, r, http.StatusUnprocessableEntity, "challenger-not-loaded", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(st) // the client went away; nothing to tell it
}

func (n *Node) abortRollout(w http.ResponseWriter, r *http.Request) {
	ctl, no := n.noRollouts(w, r)
	if no {
		return
	}
	st, err := ctl.Abort(r.Context(), "aborted through the admin API")
	if errors.Is(err, rollout.ErrNone) {
		writeProblem(w, r, http.StatusConflict, "no-rollout", "no rollout is under way")
		return
	}
	writeJSON(w, st)
}

// fnv64a is the FNV-1a hash of s, without allocating.
func fnv64a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// consoleRollouts shows the node's rollout on the console: on a cluster,
// the one the active trainer runs.
type consoleRollouts struct{ n *Node }

// Rollout implements console.Rollouts.
func (c consoleRollouts) Rollout() console.RolloutView {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, err := c.n.rolloutState(ctx)
	if err != nil {
		c.n.warnEvery(ctx, "rollout-console", "the console shows no rollout: the registry did not answer", slog.Any("err", err))
	}
	v := console.RolloutView{
		Stage: string(st.Stage), Version: st.Version, Source: st.Source,
		Steps: st.Steps, Step: st.Step, Share: st.Share,
		StepHold:  time.Duration(st.StepHoldSeconds * float64(time.Second)),
		StartedAt: st.StartedAt, Since: st.Since,
		Champion: armView(st.Arms[rollout.Champion]), Challenger: armView(st.Arms[rollout.Challenger]),
	}
	for _, k := range st.Checks {
		v.Checks = append(v.Checks, console.RolloutCheckView{Name: k.Name, Status: string(k.Status), Challenger: k.Challenger, Champion: k.Champion, Limit: k.Limit, Detail: k.Detail})
	}
	if o := st.Offline; o != nil {
		v.Offline = &console.RolloutOfflineView{At: o.At, Decisions: o.Decisions, Estimator: o.Estimator,
			Challenger: o.Challenger.Value, ChallengerLow: o.Challenger.Low, ChallengerHigh: o.Challenger.High,
			Champion: o.Champion.Value, ChampionLow: o.Champion.Low, ChampionHigh: o.Champion.High,
			Trustworthy: o.Trustworthy, Reasons: o.Reasons, Verdict: o.Verdict()}
	}
	for _, tr := range st.Timeline {
		v.Timeline = append(v.Timeline, console.RolloutTransitionView{At: tr.At, From: string(tr.From), To: string(tr.To), Share: tr.Share, Reason: tr.Reason, Detail: tr.Detail, TraceID: tr.TraceID})
	}
	return v
}

// armView is one arm's totals for the console.
func armView(c rollout.Counts) console.RolloutArmView {
	v := console.RolloutArmView{Decisions: c.Decisions, Fallbacks: c.Fallbacks, Impressions: c.Impressions, Clicks: c.Clicks, Users: c.Users}
	if c.Impressions > 0 {
		v.CTR = float64(c.Clicks) / float64(c.Impressions)
	}
	return v
}
