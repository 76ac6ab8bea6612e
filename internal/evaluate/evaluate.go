package evaluate

import (
	"context"
	"fmt"
	"hash/maphash"
	"math"
	"time"

	"github.com/sightline/sightline/internal/decisionlog"
	"github.com/sightline/sightline/internal/model"
)

// Defaults of Config.
const (
	DefaultClip           = 100
	DefaultBootstrap      = 200
	DefaultGroups         = 4_000
	DefaultMaxPerCategory = 3
	DefaultRecentSlots    = 1
	DefaultLevel          = 0.95
)

// DefaultThresholds are the documented limits of trust (docs/evaluation.md):
// an effective sample size of at least 100 slots and 1% of the slots, at
// most 10% of the target's choices unsupported and at most 10% of the
// weight mass clipped.
var DefaultThresholds = Thresholds{MinESS: 100, MinESSShare: 0.01, MaxUnsupported: 0.10, MaxClippedMass: 0.10}

// Config configures Run. The zero value of every field means its default.
type Config struct {
	// Clip is the importance weight above which weights are clipped
	// (default DefaultClip; negative: no clipping).
	Clip float64
	// Bootstrap is the number of bootstrap resamples of the intervals
	// (default DefaultBootstrap; negative: no intervals).
	Bootstrap int
	// Seed seeds the bootstrap.
	Seed uint64
	// Groups is the most groups decisions are resampled in: decision i
	// belongs to group i mod Groups, so below Groups decisions each is
	// its own group (default DefaultGroups).
	Groups int
	// MaxPerCategory is the diversity cap of the target slates; set it to
	// the serving node's (default DefaultMaxPerCategory).
	MaxPerCategory int
	// RecentSlots is the number of the user's recent categories that get a
	// slot in a model target's slate, as serving's Config.RecentSlots
	// (default DefaultRecentSlots; negative: none).
	RecentSlots int
	// Thresholds are the limits of trust; a zero field takes its value
	// from DefaultThresholds.
	Thresholds Thresholds
	// Source names the log in the report (e.g. its directory).
	Source string
	// Progress, when set, is called with the number of decisions read so
	// far, every few thousand decisions and at the end, from Run's
	// goroutine.
	Progress func(decisions int64)
	// Now returns the current time (default time.Now).
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	if c.Clip == 0 {
		c.Clip = DefaultClip
	}
	if c.Bootstrap == 0 {
		c.Bootstrap = DefaultBootstrap
	}
	if c.Groups == 0 {
		c.Groups = DefaultGroups
	}
	if c.MaxPerCategory == 0 {
		c.MaxPerCategory = DefaultMaxPerCategory
	}
	if c.RecentSlots == 0 {
		c.RecentSlots = DefaultRecentSlots
	}
	th, d := &c.Thresholds, DefaultThresholds
	if th.MinESS == 0 {
		th.MinESS = d.MinESS
	}
	if th.MinESSShare == 0 {
		th.MinESSShare = d.MinESSShare
	}
	if th.MaxUnsupported == 0 {
		th.MaxUnsupported = d.MaxUnsupported
	}
	if th.MaxClippedMass == 0 {
		th.MaxClippedMass = d.MaxClippedMass
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case math.IsNaN(c.Clip) || c.Clip > 0 && c.Clip < 1:
		return c, fmt.Errorf("evaluate: clip %v: want at least 1 (negative: none)", c.Clip)
	case c.Groups < 1:
		return c, fmt.Errorf("evaluate: groups %d: want at least 1", c.Groups)
	case c.MaxPerCategory < 1:
		return c, fmt.Errorf("evaluate: max per category %d: want at least 1", c.MaxPerCategory)
	}
	return c, nil
}

// Notes every report carries.
var reportNotes = []string{
	"A recommendation is a slate: each position is estimated on its own, Open Bandit Pipeline's independent-item estimator, and the positions are summed. It assumes a slot's click depends on its item and position, not on the other items shown.",
	"The item-position propensity is the logged one at position 1 (exact). Below it the logged per-slot propensity is conditional on the items above, so the marginal is reconstructed from the decision's exploration settings and serving ranking (its pool); that is exact while the diversity cap does not bind and approximate where it does. Where it cannot be reconstructed (an item below the pool, a slot filled deterministically) the logged per-slot propensity stands in.",
	"Fallback decisions are kept as they were served (weight 1) for every target: a fallback answers the same whatever the model.",
}

// Run evaluates the targets of specs on the log of src and returns the
// report. It reads the events first (to join clicks to decisions), then
// the decisions once, scoring every target on each decision and training
// ftrl targets after they scored it. Each pass reads src on a goroutine of
// its own while Run's goroutine evaluates; both have ended when Run
// returns. It returns early with ctx's error.
func Run(ctx context.Context, src Source, specs []Spec, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	start := cfg.Now()
	ev := &evaluator{cfg: cfg, join: newJoinIndex(), seen: map[uint64]struct{}{}, seed: maphash.MakeSeed(),
		logged: sums{groups: cfg.Groups, nf: loggedFields}, decPerGroup: make([]float64, cfg.Groups), variants: map[string]*variantSums{}}
	for _, sp := range specs {
		t, err := newTarget(sp, cfg.Groups)
		if err != nil {
			return nil, err
		}
		if t.m != nil && ev.hasher == nil {
			ev.hasher = t.m
		}
		ev.targets = append(ev.targets, t)
	}
	ratio := 1.0
	if sr, ok := src.(storeRatioer); ok {
		if ratio, err = sr.StoreRatio(); err != nil {
			return nil, fmt.Errorf("read store ratio: %w", err)
		}
	}
	if err := pipe(ctx, src.Events, func(e *decisionlog.Event) error {
		ev.join.add(e)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	if err := pipe(ctx, src.Decisions, ev.decision); err != nil {
		return nil, fmt.Errorf("read decisions: %w", err)
	}
	if cfg.Progress != nil {
		cfg.Progress(ev.read)
	}
	r := ev.report()
	r.StoreRatio = ratio
	r.Created = cfg.Now()
	r.ElapsedSeconds = r.Created.Sub(start).Seconds()
	return r, nil
}

// evaluator holds the state of one Run.
type evaluator struct {
	cfg     Config
	join    *joinIndex
	targets []*target
	hasher  *model.Model
	v       view

	seen map[uint64]struct{}
	seed maphash.Seed

	logged      sums
	decPerGroup []float64
	variants    map[string]*variantSums

	read, decisions, slots, fallbacks, duplicates, invalid int64
	// shortPools counts the decisions whose candidates (pool and shown
	// items) are fewer than their eligible candidates.
	shortPools int64
	from, to   time.Time
}

// variantSums are the logged totals of one serving variant.
type variantSums struct {
	decisions, slots, clicks, conversions float64
}

// decision evaluates one decision row.
func (ev *evaluator) decision(d *decisionlog.Decision) error {
	ev.read++
	if ev.cfg.Progress != nil && ev.read%8192 == 0 {
		ev.cfg.Progress(ev.read)
	}
	if d.RequestID == "" {
		ev.invalid++
		return nil
	}
	h := maphash.String(ev.seed, d.RequestID)
	if _, dup := ev.seen[h]; dup {
		ev.duplicates++
		return nil
	}
	ev.seen[h] = struct{}{}
	outs := ev.join.take(d.RequestID)
	v := &ev.v
	v.maxPer = ev.cfg.MaxPerCategory
	v.recentSlots = max(ev.cfg.RecentSlots, 0)
	if !v.load(d, ev.join, outs, ev.hasher) {
		ev.invalid++
		return nil
	}
	g := int(ev.decisions % int64(ev.cfg.Groups))
	ev.decisions++
	ev.decPerGroup[g]++
	if ev.from.IsZero() || d.Time.Before(ev.from) {
		ev.from = d.Time
	}
	if d.Time.After(ev.to) {
		ev.to = d.Time
	}
	if v.fallback {
		ev.fallbacks++
	} else if len(v.cands) < int(d.Eligible) {
		ev.shortPools++
	}
	vs := ev.variants[d.Variant]
	if vs == nil {
		vs = &variantSums{}
		ev.variants[d.Variant] = vs
	}
	vs.decisions++
	for k := range v.shown {
		ev.slots++
		row := ev.logged.at(k, g)
		row[lN]++
		vs.slots++
		if v.bits[k]&bitClick != 0 {
			row[lR]++
			vs.clicks++
		}
		if v.bits[k]&bitConversion != 0 {
			row[lV]++
			vs.conversions++
		}
	}
	for _, t := range ev.targets {
		ev.evalTarget(t, v, g)
	}
	for _, t := range ev.targets {
		if t.learns {
			t.learn(v)
		}
	}
	return nil
}

// evalTarget adds target t's terms for decision v (group g).
func (ev *evaluator) evalTarget(t *target, v *view, g int) {
	asLogged := t.spec.Kind == KindLogged || v.fallback
	switch {
	case asLogged:
	case t.spec.Kind == KindShadow:
		t.recordedSlate(v)
	default:
		t.score(v)
		t.buildSlate(v, ev.cfg.MaxPerCategory, max(ev.cfg.RecentSlots, 0))
	}
	clip := ev.cfg.Clip
	for k := range v.shown {
		var (
			res slotResult
			w   float64
		)
		if asLogged {
			w = 1 // the target is the logging policy: w = 1, DR = r
		} else if res = t.slot(v, k, ev.cfg.MaxPerCategory); res.pi > 0 {
			w = res.pi / v.propensity(k)
		}
		wc := w
		if clip > 0 && wc > clip {
			wc = clip
		}
		var r, cv float64
		if v.bits[k]&bitClick != 0 {
			r = 1
		}
		if v.bits[k]&bitConversion != 0 {
			cv = 1
		}
		row := t.sums.at(k, g)
		row[tWR] += wc * r
		row[tW] += wc
		if asLogged {
			row[tDM] += r // DR is the logged reward itself
		} else {
			row[tDM] += res.dm
			row[tCorr] += wc * (r - res.qa)
		}
		row[tWV] += wc * cv
		for k >= len(t.diags) {
			t.diags = append(t.diags, diag{})
		}
		t.diags[k].add(w, clip, res.unsup)
	}
}
