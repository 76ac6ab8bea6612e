package quality

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// StageDuration is how long one stage of a decision took.
type StageDuration struct {
	Stage    string
	Duration time.Duration
}

// DecisionObs is what the app reports about one recommendation decision.
type DecisionObs struct {
	Variant string
	Channel string
	// Segment is the user's segment; it is folded into the bounded set.
	Segment string
	// Fallback is the fallback reason, "" when the model answered.
	Fallback   string
	Confidence float64
	Duration   time.Duration
	Stages     []StageDuration
	// TraceID is the hex trace id of the request, kept as an example of
	// the causes the decision shows.
	TraceID string
	// Error reports a failed request.
	Error bool
	// Features holds the user attributes the model saw (nil pointer or ""
	// for null). Leave the map nil when the profile could not be fetched:
	// the decision then says nothing about the data.
	Features map[string]*string
}

// DecisionsConfig configures [Decisions]. The zero value of every field
// means its default.
type DecisionsConfig struct {
	// Reasons is the bounded set of fallback reasons; others count as "other".
	Reasons []string
	// Stages is the bounded set of stage names; others count as "other".
	Stages []string
	// Segments is the bounded segment set, used when no Monitor is given
	// (the Monitor's set wins otherwise).
	Segments []string
	// Window is the span of the windowed figures (default 5m).
	Window time.Duration
	// Buckets is the number of sub-buckets the window slides by (default 10).
	Buckets int
	// HalfLife is the half-life of the baselines of fallback rates and stage
	// p99 latencies (default 30m).
	HalfLife time.Duration
	// MinSamples is the number of decisions the window needs before its
	// rates and percentiles teach the baselines (default 100).
	MinSamples int64
	// Examples bounds the recent trace ids kept per cause (default 8).
	Examples int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Decisions keeps windowed counts of decisions: errors, fallbacks by reason,
// latency and per-stage latency distributions, slow baselines of each, and
// recent example trace ids per cause (a null feature in a segment, a
// fallback reason, a slow stage). It feeds the Monitor when it has one, so
// the app calls ObserveDecision once per decision. All methods are safe for
// concurrent use.
type Decisions struct {
	cfg     DecisionsConfig
	ring    ring
	mon     *Monitor
	reasons []string
	ridx    map[string]int
	stages  []string
	stidx   map[string]int
	segs    []string
	sidx    map[string]int
	feats   []string

	mu       sync.Mutex
	buckets  []decBucket
	nullEx   []examples // [feature*len(segs)+segment]
	reasonEx []examples // [reason]
	stageEx  []examples // [stage]
	slow     []time.Duration
	// baselines, learned in advanceLocked
	learned    time.Time
	baseReason []float64 // fallback rate per reason, -1 = not learned
	baseStage  []float64 // p99 seconds per stage, -1 = not learned
	baseP99    float64
}

type decBucket struct {
	id        int64
	requests  int64
	errors    int64
	fallbacks []int64 // per reason
	hist      [histN]uint32
	stages    [][histN]uint32
	stageN    []int64
}

type examples struct {
	ids  []string
	at   []int64
	next int
}

// add keeps a copy of id: the caller's string stays its own, so a
// [DecisionObs] passed to ObserveDecision does not escape to the heap (an
// example is kept only for a fallback or a slow stage; the copy is 32 bytes).
func (x *examples) add(id string, at int64) {
	x.ids[x.next], x.at[x.next] = strings.Clone(id), at
	x.next = (x.next + 1) % len(x.ids)
}

// NewDecisions returns a Decisions. mon may be nil.
func NewDecisions(mon *Monitor, cfg DecisionsConfig) (*Decisions, error) {
	if cfg.Window < 0 || cfg.Buckets < 0 || cfg.HalfLife < 0 || cfg.MinSamples < 0 || cfg.Examples < 0 {
		return nil, fmt.Errorf("decisions: %w", ErrInvalidConfig)
	}
	if cfg.HalfLife == 0 {
		cfg.HalfLife = defaultHalfLife
	}
	if cfg.MinSamples == 0 {
		cfg.MinSamples = 100
	}
	if cfg.Examples == 0 {
		cfg.Examples = 8
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := &Decisions{cfg: cfg, ring: newRing(cfg.Window, cfg.Buckets), mon: mon}
	d.reasons, d.ridx = index(cfg.Reasons)
	d.stages, d.stidx = index(cfg.Stages)
	if mon != nil {
		d.segs, d.sidx, d.feats = mon.segs, mon.sidx, mon.feats
	} else {
		d.segs, d.sidx = index(cfg.Segments)
	}
	d.buckets = make([]decBucket, d.ring.n)
	for i := range d.buckets {
		d.buckets[i] = decBucket{id: -1, fallbacks: make([]int64, len(d.reasons)), stages: make([][histN]uint32, len(d.stages)), stageN: make([]int64, len(d.stages))}
	}
	mk := func(n int) []examples {
		xs := make([]examples, n)
		for i := range xs {
			xs[i] = examples{ids: make([]string, cfg.Examples), at: make([]int64, cfg.Examples)}
		}
		return xs
	}
	d.nullEx = mk(len(d.feats) * len(d.segs))
	d.reasonEx = mk(len(d.reasons))
	d.stageEx = mk(len(d.stages))
	d.slow = make([]time.Duration, len(d.stages))
	d.baseReason = make([]float64, len(d.reasons))
	d.baseStage = make([]float64, len(d.stages))
	for i := range d.baseReason {
		d.baseReason[i] = -1
	}
	for i := range d.baseStage {
		d.baseStage[i] = -1
	}
	d.baseP99 = -1
	return d, nil
}

// Monitor returns the feature monitor the decisions feed, or nil.
func (d *Decisions) Monitor() *Monitor { return d.mon }

// ObserveDecision records one decision, and its features in the Monitor.
// It is on the request path: it takes two short locks and allocates only
// once per sub-bucket, when the window slides.
func (d *Decisions) ObserveDecision(o DecisionObs) {
	now := d.cfg.Now()
	seg := fold(d.sidx, o.Segment)
	if d.mon != nil && o.Features != nil {
		d.mon.observe(now, seg, o.Features)
	}
	id, slot := d.ring.id(now)
	at := now.UnixNano()
	// Folding and binning happen before the lock, which every request
	// takes: it is held only for the counts.
	var stArr [8]int32
	stIdx := stArr[:0]
	for _, s := range o.Stages {
		stIdx = append(stIdx, int32(fold(d.stidx, s.Stage)))
	}
	var nullArr [16]bool
	nulls := nullArr[:0]
	if o.TraceID != "" && o.Features != nil {
		for _, f := range d.feats {
			v := o.Features[f]
			nulls = append(nulls, v == nil || *v == "")
		}
	}
	hist := histIndex(o.Duration.Seconds())
	d.mu.Lock()
	defer d.mu.Unlock()
	b := &d.buckets[slot]
	if b.id != id {
		// Once per sub-bucket: teach the baselines the window so far, so they
		// learn whether or not anyone reads them.
		st := d.windowLocked(now)
		d.advanceLocked(now, &st)
		b.id, b.requests, b.errors, b.hist = id, 0, 0, [histN]uint32{}
		clear(b.fallbacks)
		clear(b.stages)
		clear(b.stageN)
	}
	b.requests++
	if o.Error {
		b.errors++
	}
	b.hist[hist]++
	for si, s := range o.Stages {
		i := stIdx[si]
		b.stages[i][histIndex(s.Duration.Seconds())]++
		b.stageN[i]++
		if o.TraceID != "" && d.slow[i] > 0 && s.Duration >= d.slow[i] {
			d.stageEx[i].add(o.TraceID, at)
		}
	}
	if o.Fallback != "" {
		r := fold(d.ridx, o.Fallback)
		b.fallbacks[r]++
		if o.TraceID != "" {
			d.reasonEx[r].add(o.TraceID, at)
		}
	}
	for fi, null := range nulls {
		if null {
			d.nullEx[fi*len(d.segs)+seg].add(o.TraceID, at)
		}
	}
}

// ReasonStats is one fallback reason over the window.
type ReasonStats struct {
	Reason       string  `json:"reason"`
	Count        int64   `json:"count"`
	Rate         float64 `json:"rate"`
	BaselineRate float64 `json:"baseline_rate"`
}

// StageStats is one stage's latency over the window.
type StageStats struct {
	Stage              string  `json:"stage"`
	Samples            int64   `json:"samples"`
	P99Seconds         float64 `json:"p99_seconds"`
	BaselineP99Seconds float64 `json:"baseline_p99_seconds"`
}

// DecisionStats is the window's decision figures. Baselines read 0 until
// learned.
type DecisionStats struct {
	Requests           int64         `json:"requests"`
	ErrorRate          float64       `json:"error_rate"`
	FallbackRate       float64       `json:"fallback_rate"`
	P99Seconds         float64       `json:"p99_seconds"`
	BaselineP99Seconds float64       `json:"baseline_p99_seconds"`
	Fallbacks          []ReasonStats `json:"fallbacks"`
	Stages             []StageStats  `json:"stages"`
}

// Stats returns the decision figures over the window. Reading advances
// the baselines.
func (d *Decisions) Stats() DecisionStats { return d.statsAt(d.cfg.Now()) }

func (d *Decisions) statsAt(now time.Time) DecisionStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.windowLocked(now)
	d.advanceLocked(now, &st)
	for r := range st.Fallbacks {
		st.Fallbacks[r].BaselineRate = max(d.baseReason[r], 0)
	}
	for s := range st.Stages {
		st.Stages[s].BaselineP99Seconds = max(d.baseStage[s], 0)
	}
	st.BaselineP99Seconds = max(d.baseP99, 0)
	return st
}

// windowLocked aggregates the live buckets, without baselines.
func (d *Decisions) windowLocked(now time.Time) DecisionStats {
	cur, _ := d.ring.id(now)
	var hist [histN]uint64
	stageHist := make([][histN]uint64, len(d.stages))
	st := DecisionStats{Fallbacks: make([]ReasonStats, len(d.reasons)), Stages: make([]StageStats, len(d.stages))}
	var errs, fbs int64
	for i := range d.buckets {
		b := &d.buckets[i]
		if !d.ring.live(b.id, cur) {
			continue
		}
		st.Requests += b.requests
		errs += b.errors
		for r, n := range b.fallbacks {
			st.Fallbacks[r].Count += n
			fbs += n
		}
		for j, n := range b.hist {
			hist[j] += uint64(n)
		}
		for s := range d.stages {
			st.Stages[s].Samples += b.stageN[s]
			for j, n := range b.stages[s] {
				stageHist[s][j] += uint64(n)
			}
		}
	}
	if st.Requests > 0 {
		st.ErrorRate = float64(errs) / float64(st.Requests)
		st.FallbackRate = float64(fbs) / float64(st.Requests)
		st.P99Seconds = quantile(&hist, st.Requests, 0.99) / 1e3
	}
	for r, name := range d.reasons {
		st.Fallbacks[r].Reason = name
		if st.Requests > 0 {
			st.Fallbacks[r].Rate = float64(st.Fallbacks[r].Count) / float64(st.Requests)
		}
	}
	for s, name := range d.stages {
		st.Stages[s].Stage = name
		if n := st.Stages[s].Samples; n > 0 {
			st.Stages[s].P99Seconds = quantile(&stageHist[s], n, 0.99) / 1e3
		}
	}
	return st
}

// advanceLocked teaches the baselines the window's figures, at most once
// per sub-bucket. A figure far above its baseline (a fallback rate above
// twice its baseline plus one point, a p99 above 1.5 times its baseline)
// does not teach it, so that an incident is not learned as normal.
func (d *Decisions) advanceLocked(now time.Time, st *DecisionStats) {
	dt := now.Sub(d.learned)
	if !d.learned.IsZero() && dt < time.Duration(d.ring.width) {
		return
	}
	d.learned = now
	// Slow-stage examples: a stage at or above its current p99.
	for s := range d.stages {
		d.slow[s] = time.Duration(st.Stages[s].P99Seconds * 1e9)
	}
	if st.Requests < d.cfg.MinSamples {
		return
	}
	learn := func(base *float64, x float64, normal bool) {
		switch {
		case *base < 0:
			*base = x
		case normal:
			*base = ema(*base, x, dt, d.cfg.HalfLife)
		}
	}
	for r := range d.reasons {
		x := st.Fallbacks[r].Rate
		learn(&d.baseReason[r], x, x <= 2*max(d.baseReason[r], 0)+0.01)
	}
	for s := range d.stages {
		if st.Stages[s].Samples >= d.cfg.MinSamples {
			x := st.Stages[s].P99Seconds
			learn(&d.baseStage[s], x, x <= 1.5*d.baseStage[s])
		}
	}
	learn(&d.baseP99, st.P99Seconds, st.P99Seconds <= 1.5*d.baseP99)
}

// examplesFrom returns up to n distinct trace ids from xs recorded at or
// after since, newest first.
func examplesFrom(xs []*examples, since int64, n int) []string {
	type ex struct {
		id string
		at int64
	}
	var all []ex
	for _, x := range xs {
		for i, id := range x.ids {
			if id != "" && x.at[i] >= since {
				all = append(all, ex{id, x.at[i]})
			}
		}
	}
	slices.SortStableFunc(all, func(a, b ex) int { return int(min(max(b.at-a.at, -1), 1)) })
	out := make([]string, 0, n)
	for _, e := range all {
		if len(out) == n {
			break
		}
		if !slices.Contains(out, e.id) {
			out = append(out, e.id)
		}
	}
	return out
}

// Examples returns up to n recent trace ids (within the window) of
// decisions that showed the cause: a null feature (in segment, or in any
// segment when segment is ""), a fallback reason, or a slow stage. Exactly
// one of feature, reason and stage should be set.
func (d *Decisions) Examples(c Cause, n int) []string {
	return d.examplesAt(d.cfg.Now(), c, n)
}

func (d *Decisions) examplesAt(now time.Time, c Cause, n int) []string {
	since := now.Add(-d.ring.window()).UnixNano()
	d.mu.Lock()
	defer d.mu.Unlock()
	var xs []*examples
	switch c.Kind {
	case CauseFeature:
		fi := slices.Index(d.feats, c.Feature)
		if fi < 0 {
			return nil
		}
		for s, seg := range d.segs {
			if c.Segment == "" || c.Segment == seg {
				xs = append(xs, &d.nullEx[fi*len(d.segs)+s])
			}
		}
	case CauseFallback:
		xs = append(xs, &d.reasonEx[fold(d.ridx, c.Reason)])
	case CauseStage:
		xs = append(xs, &d.stageEx[fold(d.stidx, c.Stage)])
	}
	return examplesFrom(xs, since, n)
}
