package engine

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/features"
	"github.com/sightline/sightline/internal/model"
)

// Span attribute keys (a contract with dashboards and the console).
var (
	attrRequestID  = attribute.Key("sightline.request.id")
	attrUserHash   = attribute.Key("sightline.user.hash")
	attrVariant    = attribute.Key("sightline.variant")
	attrModel      = attribute.Key("sightline.model.version")
	attrConfidence = attribute.Key("sightline.model.confidence")
	attrCandidates = attribute.Key("sightline.candidates.count")
	attrFallback   = attribute.Key("sightline.fallback.reason")
	attrChannel    = attribute.Key("sightline.channel")
)

// fallbackError carries a fallback reason out of a stage.
type fallbackError struct {
	reason Reason
	detail string
}

func (f *fallbackError) Error() string { return string(f.reason) + ": " + f.detail }

// Recommend decides what to show for req. It returns an error only when req
// is invalid or ctx is done before a decision could be made; every failure of
// the feature store or the model becomes a fallback decision instead.
func (e *Engine) Recommend(ctx context.Context, req Request) (*Decision, error) {
	return e.recommend(ctx, req, new(decisionBlock))
}

// RecommendFunc is Recommend for a caller that is done with the decision
// when fn returns, as the API is once it has written the answer: fn gets
// the decision (not called when there is an error), which is valid only
// until fn returns; its memory (items, features, pool) then serves a later
// request. fn must not keep the decision or anything it points to. The
// decisions the API allocated were half of a node's allocation per request
// (docs/benchmarks.md, issue 16).
func (e *Engine) RecommendFunc(ctx context.Context, req Request, fn func(*Decision)) error {
	blk := e.blocks.Get().(*decisionBlock)
	blk.reset()
	d, err := e.recommend(ctx, req, blk)
	if err == nil {
		fn(d)
	}
	e.blocks.Put(blk)
	return err
}

// recommend is Recommend into the block blk, empty.
func (e *Engine) recommend(ctx context.Context, req Request, blk *decisionBlock) (*Decision, error) {
	if req.UserID == "" || req.Count < 1 || req.Count > 100 {
		return nil, fmt.Errorf("%w: user id required and count must be 1..100", ErrInvalidRequest)
	}
	start := e.cfg.Now()
	if req.RequestID == "" {
		req.RequestID = e.newRequestID()
	}
	// An unsampled trace gets its engine spans after the fact, and only
	// when tail retention will keep it (a fallback or a slow decision):
	// most requests then record no span at all (the server span is
	// deferred too, see telemetry.DeferredServer), not six. Under an
	// unsampled parent the whole engine part is deferred; without a
	// parent, the stages are.
	span := noopSpan
	if parent := trace.SpanContextFromContext(ctx); e.tracing && parent.IsValid() && !parent.IsSampled() {
		blk.deferred, blk.deferredRoot = true, true
		blk.begin = time.Now()
	} else {
		ctx, span = e.startSpan(ctx, "GenerateRecommendations", e.rootOpt)
		blk.deferred = span.IsRecording() && !span.SpanContext().IsSampled()
	}
	defer span.End()

	variant, scorer, shadow := e.route(req.UserID)
	blk.scorer = scorer
	d := &blk.d
	*d = Decision{
		RequestID:    req.RequestID,
		Time:         start,
		UserHash:     e.cfg.Pseudonymize(req.UserID),
		Channel:      req.Channel,
		Variant:      variant,
		ModelVersion: scorer.Version(),
		Stages:       blk.stages[:0],
	}
	sc := span.SpanContext()
	if !e.tracing || blk.deferredRoot {
		sc = trace.SpanContextFromContext(ctx) // the parent's
	}
	if sc.IsValid() {
		d.TraceID, d.SpanID = traceStrings(sc)
		d.TraceSampled = sc.IsSampled()
	}
	sp := e.pool.Get().(*scratch)
	defer e.pool.Put(sp)

	x := &blk.x
	*x = model.Context{Channel: req.Channel, Hour: start.Hour()}
	user, act, fb := e.fetchFeatures(ctx, req.UserID, blk)
	if fb == nil {
		x.User = user
		x.RecentCategories = act.RecentCategories
		fb = e.checkRequired(d, &user)
	}
	if fb == nil {
		e.generateCandidates(ctx, sp, act, blk)
		fb = e.infer(ctx, scorer, x, sp, blk)
	}
	if fb == nil {
		e.applyRules(ctx, sp, req, act, blk)
		if shadow != nil {
			e.shadowScore(ctx, shadow, x, sp, d, req.Count)
		}
	} else {
		d.Fallback, d.FallbackDetail = fb.reason, fb.detail
		e.fallback(ctx, sp, req, act, blk)
	}
	d.Duration = e.cfg.Now().Sub(start)
	if blk.deferred && (d.Fallback != ReasonNone || d.Duration >= e.cfg.SlowThreshold) {
		if blk.deferredRoot {
			end := time.Now()
			gctx, gspan := e.tracer.Start(ctx, "GenerateRecommendations", e.rootOpt, trace.WithTimestamp(blk.begin))
			e.annotate(gspan, d, end)
			e.stageSpans(gctx, blk)
			gspan.End(trace.WithTimestamp(end))
		} else {
			e.stageSpans(ctx, blk)
		}
	}
	if span.IsRecording() {
		e.annotate(span, d, time.Now())
	}
	bp := recordPool.Get().(*[]byte)
	rec := appendRecord((*bp)[:0], d, x)
	e.ring.put(d.RequestID, rec)
	if e.cfg.OnRecord != nil {
		e.cfg.OnRecord(d.RequestID, rec)
	}
	*bp = rec
	recordPool.Put(bp)
	e.record(ctx, d)
	return d, nil
}

// traceStrings returns the hex trace and span ids of sc, both from one
// allocation.
func traceStrings(sc trace.SpanContext) (traceID, spanID string) {
	tid, sid := sc.TraceID(), sc.SpanID()
	var b [2*len(tid) + 2*len(sid)]byte
	hex.Encode(b[:2*len(tid)], tid[:])
	hex.Encode(b[2*len(tid):], sid[:])
	s := string(b[:])
	return s[:2*len(tid)], s[2*len(tid):]
}

// now is the wall clock when the block's spans are deferred, and the zero
// time otherwise (live spans take their own times).
func (blk *decisionBlock) now() time.Time {
	if blk.deferred {
		return time.Now()
	}
	return time.Time{}
}

// stageStart reads the clocks at a stage's start: the configured clock,
// and the wall clock for a deferred span (blk.now). With the default clock
// the one reading serves both (a clock read is tens of nanoseconds, and a
// request made about twenty).
func (e *Engine) stageStart(blk *decisionBlock) (start, wall time.Time) {
	if !blk.lastEnd.IsZero() {
		// A stage starts where the previous one ended (what lies between
		// them takes well under a microsecond): one clock reading fewer.
		return blk.lastEnd, blk.lastWall
	}
	start = e.cfg.Now()
	if e.wallClock && blk.deferred {
		return start, start
	}
	return start, blk.now()
}

// budgetStart is the start of an immediate call's budget for a stage that
// started at start on the configured clock: start itself on the wall
// clock, else zero, for withBudget to read the wall clock if it times the
// call.
func (e *Engine) budgetStart(start time.Time) time.Time {
	if e.wallClock {
		return start
	}
	return time.Time{}
}

// annotate sets the decision's attributes on its GenerateRecommendations span.
func (e *Engine) annotate(span trace.Span, d *Decision, now time.Time) {
	span.SetAttributes(
		attrRequestID.String(d.RequestID),
		attrUserHash.String(d.UserHash),
		attrVariant.String(d.Variant),
		attrModel.String(d.ModelVersion),
		attrConfidence.Float64(d.Confidence),
		attrCandidates.Int(d.Candidates),
		attrChannel.String(e.Channel(d.Channel)),
	)
	if d.Fallback != ReasonNone {
		span.SetAttributes(attrFallback.String(string(d.Fallback)))
		span.AddEvent("fallback", trace.WithAttributes(attrFallback.String(string(d.Fallback)), attribute.String("detail", d.FallbackDetail)),
			trace.WithTimestamp(now))
	}
}

// decisionBlock holds a decision and what it points to in one allocation:
// the model context kept with it in the ring, the stage timings, the items
// of a default-sized answer and the feature values.
type decisionBlock struct {
	d      Decision
	x      model.Context
	stages [4]StageTiming
	items  [10]Item
	feats  [8]string
	// spans are the stages' start and end times on the wall clock (which
	// spans use; Config.Now may be a simulated clock), kept for spans made
	// after the fact; begin is the decision's, when its span is deferred.
	spans [4][2]time.Time
	begin time.Time
	// lastEnd is the end of the last stage on the configured clock,
	// lastWall on the wall clock when spans are deferred (else zero): the
	// next stage's start (stageStart).
	lastEnd, lastWall time.Time
	// deferred: stage spans are made by stageSpans at the end, if at all;
	// deferredRoot: so is the GenerateRecommendations span.
	deferred, deferredRoot bool
	// scorer scores the decision (its variant's, or a challenger's).
	scorer Scorer
	// features and pool back d.Features and d.Pool; reset keeps them for
	// the block's next decision.
	features map[string]*string
	pool     []PoolItem
}

// reset empties blk for another decision, keeping the memory of its
// features map and pool.
func (blk *decisionBlock) reset() {
	f, p := blk.features, blk.pool[:0]
	clear(f)
	*blk = decisionBlock{features: f, pool: p}
}

// noopSpan is what stages get when tracing is off.
var noopSpan = trace.SpanFromContext(context.Background())

// startSpan starts a span unless the tracer provider is the no-op one.
func (e *Engine) startSpan(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !e.tracing {
		return ctx, noopSpan
	}
	return e.tracer.Start(ctx, name, opts...)
}

// stageSpan starts the span of a stage, unless the block's stage spans are
// deferred to stageSpans.
func (e *Engine) stageSpan(ctx context.Context, blk *decisionBlock, name string) (context.Context, trace.Span) {
	if blk.deferred {
		return ctx, noopSpan
	}
	return e.startSpan(ctx, name)
}

// stage times one stage and records it on the decision and in metrics.
// start is the stage's start on the configured clock, wall its start from
// blk.now (the wall clock of a deferred span).
func (e *Engine) stage(blk *decisionBlock, name string, start, wall time.Time, err error) {
	d := &blk.d
	end := e.cfg.Now()
	dur := end.Sub(start)
	st := StageTiming{Stage: name, Duration: dur}
	if err != nil {
		st.Error = err.Error()
	}
	blk.lastEnd, blk.lastWall = end, time.Time{}
	if blk.deferred {
		if !e.wallClock {
			end = time.Now()
		}
		blk.lastWall = end
		if i := len(d.Stages); i < len(blk.spans) {
			blk.spans[i] = [2]time.Time{wall, end}
		}
	}
	d.Stages = append(d.Stages, st)
	e.met.stage(name, dur)
}

// stageSpanNames maps stages to their span names (DESIGN.md).
var stageSpanNames = map[string]string{
	StageFeatures:   "FeatureFetch",
	StageCandidates: "CandidateGeneration",
	StageInference:  "ModelInference",
	StageRules:      "BusinessRules",
}

// stageSpans records the stage spans of a deferred block after the fact,
// with the stages' real start and end times, attributes and errors, as
// children of the GenerateRecommendations span in ctx.
func (e *Engine) stageSpans(ctx context.Context, blk *decisionBlock) {
	d := &blk.d
	for i, st := range d.Stages {
		if i >= len(blk.spans) {
			break
		}
		start, end := blk.spans[i][0], blk.spans[i][1]
		_, span := e.tracer.Start(ctx, stageSpanNames[st.Stage], trace.WithTimestamp(start))
		switch {
		case st.Stage == StageCandidates:
			span.SetAttributes(attrCandidates.Int(d.Candidates))
		case st.Stage == StageInference && st.Error == "":
			span.SetAttributes(attrConfidence.Float64(d.Confidence))
		case st.Stage == StageRules && d.Fallback != ReasonNone:
			span.SetAttributes(attrFallback.String(string(d.Fallback)))
		}
		if st.Error != "" {
			span.RecordError(errors.New(st.Error), trace.WithTimestamp(end))
			span.SetStatus(codes.Error, st.Error)
		}
		span.End(trace.WithTimestamp(end))
	}
}

func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// fetchFeatures is the FeatureFetch stage: profile and recent activity under
// the feature budget.
func (e *Engine) fetchFeatures(ctx context.Context, userID string, blk *decisionBlock) (event.User, features.Activity, *fallbackError) {
	d := &blk.d
	start, wall := e.stageStart(blk)
	ctx, span := e.stageSpan(ctx, blk, "FeatureFetch")
	ctx, budget := withBudget(ctx, e.fs, e.cfg.FeatureBudget, e.budgetStart(start))
	var (
		user  event.User
		known bool
		act   features.Activity
		err   error
	)
	if c, ok := e.fs.(CombinedSource); ok {
		user, known, act, err = c.Features(ctx, userID)
	} else if user, known, err = e.fs.User(ctx, userID); err == nil {
		act, err = e.fs.Activity(ctx, userID)
	}
	err = budget.end(ctx, err)
	e.stage(blk, StageFeatures, start, wall, err)
	endSpan(span, err)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return user, act, &fallbackError{ReasonFeatureStoreTimeout, fmt.Sprintf("feature fetch exceeded its %v budget", e.cfg.FeatureBudget)}
		}
		return user, act, &fallbackError{ReasonFeatureStoreError, "feature store: " + err.Error()}
	}
	d.KnownUser = known
	d.Segment = user.Segment
	if blk.features == nil {
		blk.features = make(map[string]*string, len(event.UserAttributes))
	}
	d.Features = blk.features
	vals := blk.feats[:0]
	for _, name := range event.UserAttributes {
		if v := user.Attr(name); v != "" {
			if len(vals) == cap(vals) {
				vals = make([]string, 0, len(event.UserAttributes))
			}
			vals = append(vals, v)
			d.Features[name] = &vals[len(vals)-1]
		} else {
			d.Features[name] = nil
		}
	}
	return user, act, nil
}

// checkRequired routes a known user with a null critical attribute to the
// fallback: the model is unsure without it.
func (e *Engine) checkRequired(d *Decision, u *event.User) *fallbackError {
	if !d.KnownUser {
		return nil // cold start: scored on context alone
	}
	var missing []string
	for _, name := range e.required {
		if u.Attr(name) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return &fallbackError{ReasonMissingFeatures, fmt.Sprintf("required features are null: %v", missing)}
}

// generateCandidates is the CandidateGeneration stage.
func (e *Engine) generateCandidates(ctx context.Context, sp *scratch, act features.Activity, blk *decisionBlock) {
	d := &blk.d
	start, wall := e.stageStart(blk)
	_, span := e.stageSpan(ctx, blk, "CandidateGeneration")
	if r, ok := blk.scorer.(CategoryRanker); ok && e.discovers(d.Variant) {
		e.index.DiscoverCandidates(ctx, &sp.cs, act.RecentItems, r, &blk.x)
	} else {
		e.index.Candidates(&sp.cs, act.RecentItems, act.RecentCategories)
	}
	d.Candidates = len(sp.cs.items)
	if span.IsRecording() {
		span.SetAttributes(attrCandidates.Int(d.Candidates))
	}
	e.stage(blk, StageCandidates, start, wall, nil)
	span.End()
}

// infer is the ModelInference stage: score every candidate under the model
// budget; a panic, error, timeout or low confidence becomes a fallback.
func (e *Engine) infer(ctx context.Context, s Scorer, x *model.Context, sp *scratch, blk *decisionBlock) (fb *fallbackError) {
	d := &blk.d
	start, wall := e.stageStart(blk)
	ctx, span := e.stageSpan(ctx, blk, "ModelInference")
	ctx, budget := withBudget(ctx, s, e.cfg.ModelBudget, e.budgetStart(start))
	n := len(sp.cs.items)
	sp.scores = slices.Grow(sp.scores[:0], n)[:n]
	ls, _ := s.(LogitScorer)
	sp.logits = nil
	err := budget.end(ctx, safeScore(ctx, s, ls, x, &sp.cs, sp.scores))
	sp.logits = ls
	e.stage(blk, StageInference, start, wall, err)
	if err == nil && n > 0 {
		d.Confidence = sp.probability(maxScore(sp.scores))
		if span.IsRecording() { // the attribute list costs an allocation
			span.SetAttributes(attrConfidence.Float64(d.Confidence))
		}
		if c, ok := s.(Calibrated); ok && c.Calibrated() && e.cfg.MinConfidence > 0 && d.Confidence < e.cfg.MinConfidence {
			fb = &fallbackError{ReasonLowConfidence, fmt.Sprintf("top score %.4f below the %.4f minimum", d.Confidence, e.cfg.MinConfidence)}
		}
	}
	endSpan(span, err)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return &fallbackError{ReasonModelTimeout, fmt.Sprintf("inference exceeded its %v budget", e.cfg.ModelBudget)}
		}
		return &fallbackError{ReasonModelError, "model: " + err.Error()}
	}
	return fb
}

// stageBudget is the deadline of one stage's call to a feature source or
// scorer: a context deadline, or for an [Immediate] one the wall-clock
// time the call started (deadlines are wall time; e.cfg.Now may run
// faster, in drills).
type stageBudget struct {
	d      time.Duration
	start  time.Time          // set when the call is timed instead
	cancel context.CancelFunc // set when ctx carries the deadline
}

// withBudget returns the context for a call to src under budget d and the
// budget, which the caller ends with end after the call; now is the wall
// clock at the call's start, or zero to read it when the call is timed.
func withBudget(ctx context.Context, src any, d time.Duration, now time.Time) (context.Context, stageBudget) {
	if im, ok := src.(Immediate); ok && im.Immediate() {
		if now.IsZero() {
			now = time.Now()
		}
		return ctx, stageBudget{d: d, start: now}
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	return ctx, stageBudget{d: d, cancel: cancel}
}

// end releases the budget and returns the call's error err or, when the
// call returned none past its deadline, the deadline's: a source that
// ignored the deadline, or an immediate one that ran past it, missed it
// all the same.
func (b stageBudget) end(ctx context.Context, err error) error {
	if err == nil {
		if err = ctx.Err(); err == nil && b.cancel == nil && time.Since(b.start) > b.d {
			err = context.DeadlineExceeded
		}
	}
	if b.cancel != nil {
		b.cancel()
	}
	return err
}

// safeScore calls the scorer (for logits when ls is not nil), turning a
// panic into an error.
func safeScore(ctx context.Context, s Scorer, ls LogitScorer, x *model.Context, cs *candidateSet, out []float64) (err error) {
	// The candidates' keys, computed when the index took them in, spare a
	// model hashing every id and category again (model.Context.ItemKeys);
	// they go with these items only.
	x.ItemKeys = cs.keys
	defer func() {
		x.ItemKeys = nil
		if r := recover(); r != nil {
			err = fmt.Errorf("scorer panicked: %v", r)
		}
	}()
	if ls != nil {
		return ls.ScoreLogits(ctx, x, cs.items, out)
	}
	return s.Score(ctx, x, cs.items, out)
}

// maxScore is slices.Max(s) for a non-empty s, NaN if any score is NaN,
// without slices.Max's ordering of zeros, which costs 2% of a handler's CPU
// over 200 candidates (a signed zero cannot change a probability).
func maxScore(s []float64) float64 {
	m := s[0]
	for _, v := range s[1:] {
		if v > m || v != v {
			m = v
		}
	}
	return m
}

// probability turns a score of sp.scores into what the decision records:
// the scorer's probability when it scored logits.
func (sp *scratch) probability(v float64) float64 {
	if sp.logits == nil {
		return v
	}
	return sp.logits.Probability(v)
}

// record emits the decision's metrics and log line and notifies observers.
func (e *Engine) record(ctx context.Context, d *Decision) {
	ch := e.Channel(d.Channel)
	e.met.observe(ctx, d, ch, e.cfg.SlowThreshold)
	e.logDecision(ctx, d)
	if e.cfg.OnDecision != nil {
		e.cfg.OnDecision(d)
	}
}
