package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/features"
	"github.com/sightline/sightline/internal/model"
)

// FeatureSource is what the engine needs of the feature store. It is called
// on the request path with a deadline and must honour ctx; implementations
// must be safe for concurrent use.
type FeatureSource interface {
	// User returns the profile of id and whether the user is known.
	User(ctx context.Context, id string) (event.User, bool, error)
	// Activity returns the user's recent activity.
	Activity(ctx context.Context, userID string) (features.Activity, error)
}

// CombinedSource is implemented by feature sources that return the profile
// and the recent activity in one call, as Redis does in one round trip; the
// engine then makes that one call on the request path instead of two.
type CombinedSource interface {
	Features(ctx context.Context, id string) (event.User, bool, features.Activity, error)
}

// Scorer scores candidate items for one request, writing P(click) (or a
// ranking score in 0..1) for items[i] into out[i]. It is called on the
// request path with the inference deadline in ctx and must be safe for
// concurrent use.
type Scorer interface {
	Score(ctx context.Context, x *model.Context, items []event.Item, out []float64) error
	// Version names the model that scores, for records and metrics.
	Version() string
}

// LogitScorer is implemented by scorers that can write scores on a monotone
// scale (logits) instead of probabilities: the engine ranks the candidates by
// them and converts with Probability only what it records (the confidence,
// the items shown), saving a transcendental function per candidate. Same
// contract as Score; a wrapper that changes Score must change ScoreLogits
// alike.
type LogitScorer interface {
	ScoreLogits(ctx context.Context, x *model.Context, items []event.Item, out []float64) error
	Probability(logit float64) float64
}

// Immediate is implemented by feature sources and scorers that answer from
// memory without waiting on anything (no I/O, no lock held by a writer for
// long) while Immediate returns true. The engine then gives their stage no
// deadline context, which costs a timer and three allocations per stage and
// request, and times the call instead: a call that ran past the stage's
// budget is a timeout all the same. A wrapper that can make calls wait (an
// injected fault) returns false while it may. Called once per stage and
// request; it must be cheap and safe for concurrent use.
type Immediate interface {
	Immediate() bool
}

// Calibrated is implemented by scorers whose scores are probabilities; only
// their decisions are checked against Config.MinConfidence.
type Calibrated interface {
	Calibrated() bool
}

// Errors returned by Recommend.
var (
	// ErrInvalidRequest reports a request the caller should have rejected.
	ErrInvalidRequest = errors.New("invalid recommendation request")
)

// Config configures an Engine. The zero value of every field means its
// default.
type Config struct {
	// Split assigns users to variants (default model.DefaultSplit).
	Split model.Split
	// Scorers maps a variant name to its scorer. A variant named
	// "popularity" without a scorer ranks by the index's popularity.
	Scorers map[string]Scorer
	// FeatureBudget is the deadline of the feature fetch (default 5ms).
	FeatureBudget time.Duration
	// ModelBudget is the deadline of model inference (default 5ms).
	ModelBudget time.Duration
	// MinConfidence is the lowest top score of a calibrated model below which
	// the engine falls back with low_confidence (default 0.005; negative
	// disables the check).
	MinConfidence float64
	// RequiredFeatures are the user attributes without which a known user's
	// request falls back with missing_features (default user_age_bucket and
	// user_segment). Set to an empty non-nil slice to require none.
	RequiredFeatures []string
	// MaxPerCategory bounds the items of one category in a response (default 3).
	MaxPerCategory int
	// Explore is the share of slots filled by exploration (default 0.05;
	// negative disables exploration).
	Explore float64
	// ExploreTop restricts exploration to the ExploreTop best eligible
	// candidates of each slot (default 0: all eligible candidates). A
	// small window with a larger Explore logs traffic an offline
	// evaluation can learn from without showing poor items.
	ExploreTop int
	// PoolSize is the number of best eligible candidates, shown or not,
	// recorded in each decision's Pool for offline evaluation, leaving out
	// those of a category no slot can reach (see recordPool; default 0:
	// none; the decision log sets it).
	PoolSize int
	// RecentSlots is the number of the user's most recent categories that
	// get a slot in a model-ranked answer when the ranking does not show them
	// already, so that a click changes the user's next recommendation
	// (default 1; negative disables).
	RecentSlots int
	// DecisionRing is the number of recent decisions kept (default 50,000).
	DecisionRing int
	// RefreshInterval is how often the candidate index publishes (default 200ms).
	RefreshInterval time.Duration
	// DecisionLogRatio is the share of non-fallback decisions logged at INFO
	// (default 0.01; negative logs none). Fallbacks are always logged (WARN).
	DecisionLogRatio float64
	// SlowThreshold marks a slow request; slow requests get exemplars (default 50ms).
	SlowThreshold time.Duration
	// Channels is the bounded set of channel label values; others are folded
	// into "other" (default web, ios, android, email).
	Channels []string
	// Index sizes the candidate index.
	Index IndexConfig
	// Pseudonymize maps a raw user id to the pseudonym used in records, logs
	// and spans. Nil uses an unkeyed hash, which is not safe against
	// dictionary attacks: production wiring passes the keyed telemetry one.
	Pseudonymize func(userID string) string
	// OnDecision, if set, is called synchronously with every decision (stats,
	// quality monitors). It must be cheap and must not retain or modify d.
	OnDecision func(d *Decision)
	// ChallengerVariant, if set, is the variant name of a rollout's
	// challenger's decisions ([Engine.SetChallenger]); it must not be an arm
	// of the split. Empty: no challenger can be set.
	ChallengerVariant string
	// Discover lists the variants whose candidates come from the candidate
	// index's discovery lists of the categories their scorer ranks best
	// ([Index.DiscoverCandidates]); their scorers must implement
	// [CategoryRanker]. The others take the popularity lists.
	Discover []string
	// OnRecord, if set, is called synchronously with the encoded record of
	// every decision (see [RecordVersion]), after it is kept in the
	// engine's ring: an API node publishes it on the decision stream. rec
	// is valid only during the call; OnRecord must not block.
	OnRecord func(requestID string, rec []byte)
	// Logger receives decision and error logs; nil discards.
	Logger *slog.Logger
	// Registerer receives the engine's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// TracerProvider provides the engine's tracer; nil is a no-op.
	TracerProvider trace.TracerProvider
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c *Config) defaults() {
	if len(c.Split) == 0 {
		c.Split = model.DefaultSplit
	}
	if c.FeatureBudget <= 0 {
		c.FeatureBudget = 5 * time.Millisecond
	}
	if c.ModelBudget <= 0 {
		c.ModelBudget = 5 * time.Millisecond
	}
	if c.MinConfidence == 0 {
		c.MinConfidence = 0.005
	}
	if c.RequiredFeatures == nil {
		c.RequiredFeatures = []string{event.AttrAgeBucket, event.AttrSegment}
	}
	if c.MaxPerCategory <= 0 {
		c.MaxPerCategory = 3
	}
	if c.Explore == 0 {
		c.Explore = 0.05
	}
	if c.Explore < 0 {
		c.Explore = 0
	}
	if c.RecentSlots == 0 {
		c.RecentSlots = 1
	}
	if c.DecisionRing <= 0 {
		c.DecisionRing = 50_000
	}
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = 200 * time.Millisecond
	}
	if c.DecisionLogRatio == 0 {
		c.DecisionLogRatio = 0.01
	}
	if c.SlowThreshold <= 0 {
		c.SlowThreshold = 50 * time.Millisecond
	}
	if len(c.Channels) == 0 {
		c.Channels = []string{"web", "ios", "android", "email"}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Pseudonymize == nil {
		seed := maphash.MakeSeed()
		c.Pseudonymize = func(id string) string {
			return "u_" + strconv.FormatUint(maphash.String(seed, id), 16)
		}
	}
}

// Engine makes recommendation decisions. All methods are safe for concurrent use.
type Engine struct {
	cfg      Config
	fs       FeatureSource
	index    *Index
	scorers  map[string]Scorer
	required []string
	channels map[string]string
	ring     *ring
	tracer   trace.Tracer
	met      *metrics
	pool     sync.Pool // *scratch
	blocks   sync.Pool // *decisionBlock, of RecommendFunc
	seq      atomic.Uint64
	idSeed   maphash.Seed
	// wallClock: Config.Now is the default, the wall clock, so one
	// reading serves as both the stage's time and its span's.
	wallClock bool
	// tracing is false when the tracer provider is the no-op one: spans are
	// then not started at all, which saves a context per stage.
	tracing bool
	rootOpt trace.SpanStartOption
	// challenger is the rollout's challenger, nil when none.
	challenger atomic.Pointer[Challenger]
}

// scratch is per-request working memory, pooled. Nothing in it outlives the
// request: the decision copies what it keeps.
type scratch struct {
	cs     candidateSet
	scores []float64
	// logits converts scores to probabilities when the scorer wrote logits
	// (nil: scores are what is recorded). It is the interface, not the
	// method value ls.Probability, which allocated a closure per request.
	logits  LogitScorer
	ranked  []rankKey // eligible candidates' keys, ranked by rank
	rank    ranking
	cat     []int32 // per candidate: its entry in cats, -1 if not eligible
	taken   []bool  // per candidate: in the answer
	exclude map[string]struct{}
	// excludeHashes holds the model.IDHash of each id in exclude.
	excludeHashes stampSet[uint64]
	// catHashes and catIdx map a category to its entry in cats:
	// catHashes by the category's hash from the candidates' model keys,
	// catIdx by name for the rare category whose hash collides with
	// another's (scratch.catEntry) and for the fallback's counts.
	catHashes catIndex
	catIdx    map[string]int
	cats      []catState
	poolN     []int32   // per cats entry: candidates recordPool took
	shadow    []float64 // a shadow challenger's scores of the candidates
	top       []int     // the shadow challenger's best candidates
	// shadowRanked, shadowRank and shadowN rank the eligible candidates
	// by the shadow challenger's scores and count its picks per cats
	// entry.
	shadowRanked []rankKey
	shadowRank   ranking
	shadowN      []int32
	pcg          rand.PCG
	rng          *rand.Rand
}

// catState counts, for one category, the items shown and the eligible
// candidates left.
type catState struct {
	name        string
	shown, left int
}

// catIndex maps category hashes to entries of scratch.cats for one
// request: a stampSet with the entry of each key beside it.
type catIndex struct {
	set   stampSet[uint64]
	entry []int32 // per position of set.keys
}

// reset empties the index and makes room for bound categories.
func (c *catIndex) reset(bound int) {
	c.set.reset(bound)
	if len(c.entry) < len(c.set.keys) {
		c.entry = make([]int32, len(c.set.keys))
	}
}

// find returns the position of hash h in the index with its entry and
// true, or the position insert would give it and false.
func (c *catIndex) find(h uint64) (pos uint64, k int, found bool) {
	pos, found = c.set.find(h)
	return pos, int(c.entry[pos]), found
}

// insert maps h, which find placed at pos without finding it, to entry k.
func (c *catIndex) insert(pos, h uint64, k int) {
	c.set.stamp[pos], c.set.keys[pos], c.entry[pos] = c.set.gen, h, int32(k)
}

// resetCats empties the categories of sp for a request of n candidates.
func (sp *scratch) resetCats(n int) {
	sp.catHashes.reset(n)
	if len(sp.catIdx) > 0 {
		clear(sp.catIdx)
	}
	sp.cats = sp.cats[:0]
}

// catEntry returns the entry in sp.cats of category c, whose hash is h,
// adding it when it is new: one probe of the index.
func (sp *scratch) catEntry(c string, h uint64) int {
	pos, k, found := sp.catHashes.find(h)
	if found {
		if k, ok := sp.named(c, k); ok {
			return k
		}
	}
	k = len(sp.cats)
	sp.cats = append(sp.cats, catState{name: c})
	if found {
		sp.catIdx[c] = k // its hash collides with an earlier category's
	} else {
		sp.catHashes.insert(pos, h, k)
	}
	return k
}

// lookupCat returns the entry in sp.cats of category c, whose hash is h.
func (sp *scratch) lookupCat(c string, h uint64) (int, bool) {
	_, k, found := sp.catHashes.find(h)
	if !found {
		return 0, false
	}
	return sp.named(c, k)
}

// named returns the entry of category c, given the entry k its hash found:
// k itself, or c's own when c's hash collides with an earlier category's.
func (sp *scratch) named(c string, k int) (int, bool) {
	if sp.cats[k].name == c {
		return k, true
	}
	k, ok := sp.catIdx[c]
	return k, ok
}

func newScratch() *scratch {
	sp := &scratch{
		exclude: make(map[string]struct{}, 64),
		catIdx:  make(map[string]int, 64),
	}
	sp.rng = rand.New(&sp.pcg)
	return sp
}

// New returns an engine reading features from fs.
func New(fs FeatureSource, cfg Config) (*Engine, error) {
	if fs == nil {
		return nil, errors.New("engine: nil feature source")
	}
	// The default, or time.Now passed through by a caller that defaults
	// it itself (the same function, so the same code pointer).
	wallClock := cfg.Now == nil || reflect.ValueOf(cfg.Now).Pointer() == reflect.ValueOf(time.Now).Pointer()
	cfg.defaults()
	if cfg.Explore >= 1 {
		return nil, fmt.Errorf("engine: explore share %v must be below 1", cfg.Explore)
	}
	if cfg.ExploreTop < 0 || cfg.PoolSize < 0 {
		return nil, fmt.Errorf("engine: explore top %d and pool size %d must not be negative", cfg.ExploreTop, cfg.PoolSize)
	}
	e := &Engine{
		cfg:      cfg,
		fs:       fs,
		index:    NewIndex(cfg.indexConfig()),
		scorers:  make(map[string]Scorer, len(cfg.Split)),
		required: cfg.RequiredFeatures,
		channels: make(map[string]string, len(cfg.Channels)),
		ring:     newRing(cfg.DecisionRing, cfg.PoolSize),
		tracer:   cfg.TracerProvider.Tracer("github.com/sightline/sightline/internal/engine"),
		idSeed:   maphash.MakeSeed(),

		wallClock: wallClock,
	}
	for _, c := range cfg.Channels {
		e.channels[c] = c
	}
	for _, arm := range cfg.Split {
		s, ok := cfg.Scorers[arm.Name]
		if !ok {
			if arm.Name != "popularity" {
				return nil, fmt.Errorf("engine: variant %q has no scorer", arm.Name)
			}
			s = popularityScorer{e.index}
		}
		e.scorers[arm.Name] = s
	}
	if err := e.setupDiscover(); err != nil {
		return nil, err
	}
	var variants []string
	for name := range e.scorers {
		variants = append(variants, name)
	}
	if v := cfg.ChallengerVariant; v != "" {
		_, dup := e.scorers[v]
		if _, err := model.ParseSplit(v + "=1"); dup || err != nil {
			return nil, fmt.Errorf("engine: challenger variant %q must be a valid name outside the split", v)
		}
		variants = append(variants, v)
	}
	slices.Sort(variants)
	met, err := newMetrics(cfg.Registerer, variants, cfg.Channels)
	if err != nil {
		return nil, err
	}
	e.met = met
	e.pool.New = func() any { return newScratch() }
	e.blocks.New = func() any { return new(decisionBlock) }
	_, isNoop := cfg.TracerProvider.(noop.TracerProvider)
	e.tracing = !isNoop
	e.rootOpt = trace.WithSpanKind(trace.SpanKindInternal)
	return e, nil
}

// Index returns the engine's candidate index, for wiring catalog changes.
func (e *Engine) Index() *Index { return e.index }

// Run refreshes the candidate index every RefreshInterval until ctx is done.
func (e *Engine) Run(ctx context.Context) error {
	t := time.NewTicker(e.cfg.RefreshInterval)
	defer t.Stop()
	for {
		e.index.Refresh()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Observe feeds an interaction event to the candidate index. The event
// consumer calls it for every event in log order, before the feature store
// records the event in the user's activity.
func (e *Engine) Observe(ctx context.Context, ev *event.Event) {
	var segment string
	var recent []string
	if ev.Type != event.Impression {
		if u, ok, err := e.fs.User(ctx, ev.UserID); err == nil && ok {
			segment = u.Segment
		}
		if a, err := e.fs.Activity(ctx, ev.UserID); err == nil {
			recent = a.RecentItems
		}
	}
	e.index.Observe(ev, segment, recent)
}

// Decision returns a recent decision by request id.
func (e *Engine) Decision(requestID string) (*Decision, bool) {
	d, _, ok := e.ring.get(requestID)
	return d, ok
}

// DecisionTrace is the trace of a recent decision: what the event path
// needs to link an event to the recommendation it answers.
type DecisionTrace struct {
	TraceID trace.TraceID
	SpanID  trace.SpanID
	// Sampled reports a head-sampled trace.
	Sampled bool
	// Fallback is the decision's fallback reason, if any.
	Fallback Reason
}

// Ring returns the engine's ring of recent decision records: on a node
// that learns, the event path joins events to decisions through it.
func (e *Engine) Ring() *Ring { return &Ring{r: e.ring} }

// Join is what the model saw when it made a decision, for training.
type Join struct {
	Context model.Context
	Item    event.Item
	Variant string
}

// Variant returns the variant a user's next decision is served by: the
// split's, or the challenger's for a user in its canary share.
func (e *Engine) Variant(userID string) string {
	v, _, _ := e.route(userID)
	return v
}

// Channel folds a channel into the bounded label set.
func (e *Engine) Channel(c string) string {
	if v, ok := e.channels[c]; ok {
		return v
	}
	if c == "" {
		return "none"
	}
	return "other"
}

func (e *Engine) newRequestID() string {
	n := e.seq.Add(1)
	return strconv.FormatUint(maphash.Comparable(e.idSeed, n), 16)
}

// VariantInfo names a variant and the version of its scorer.
type VariantInfo struct {
	Name    string
	Version string
}

// Variants lists the engine's variants with their current scorer versions.
func (e *Engine) Variants() []VariantInfo {
	out := make([]VariantInfo, 0, len(e.cfg.Split))
	for _, arm := range e.cfg.Split {
		out = append(out, VariantInfo{Name: arm.Name, Version: e.scorers[arm.Name].Version()})
	}
	return out
}
