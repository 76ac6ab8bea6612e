package quality

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sightline/sightline/internal/event"
)

// EngagementConfig configures [Engagement]. The zero value of every field
// means its default.
type EngagementConfig struct {
	// Variants is the bounded set of model variants; others count as "other".
	Variants []string
	// Channels is the bounded set of channels; others, and the empty
	// channel, count as "other".
	Channels []string
	// Window is the span of the windowed CTR (default 5m).
	Window time.Duration
	// Buckets is the number of sub-buckets the window slides by (default 10).
	Buckets int
	// HalfLife is the half-life of the CTR baseline, a slow exponential
	// moving average of the windowed CTR (default 30m).
	HalfLife time.Duration
	// MinImpressions is the number of impressions a variant needs in the
	// window before its CTR is compared with, or teaches, its baseline
	// (default 200). Below it the ratio reads 1.
	MinImpressions int64
	// LearnAbove stops the baseline from learning while the ratio is below
	// it, so that a drop is not absorbed into the baseline (default 0.9, the
	// CTRDropBelowBaseline threshold).
	LearnAbove float64
	// WarmUp is how long after the first event the CTR is neither compared
	// with nor teaches the baseline (default two windows).
	WarmUp time.Duration
	// Registerer receives the engagement metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Engagement counts impressions, clicks and conversions by variant and
// channel, and tracks each variant's windowed CTR against its own slow
// baseline. All methods are safe for concurrent use.
type Engagement struct {
	cfg      EngagementConfig
	ring     ring
	variants []string
	vidx     map[string]int
	channels []string
	cidx     map[string]int
	byType   [4][]prometheus.Counter // [event.Type][variant*channels+channel]; impressions, clicks, conversions
	events   [4][]prometheus.Counter // [event.Type][channel]

	mu      sync.Mutex
	buckets []engBucket
	base    []float64 // per variant; 0 = not learned yet
	learned time.Time // last baseline update
	first   time.Time // first observation, for the warm-up
}

type engBucket struct {
	id          int64
	impressions []int64 // per variant
	clicks      []int64
}

// NewEngagement returns an Engagement with zeroed counters.
func NewEngagement(cfg EngagementConfig) (*Engagement, error) {
	if cfg.Window < 0 || cfg.Buckets < 0 || cfg.HalfLife < 0 || cfg.MinImpressions < 0 || cfg.LearnAbove < 0 {
		return nil, fmt.Errorf("engagement: %w", ErrInvalidConfig)
	}
	if cfg.HalfLife == 0 {
		cfg.HalfLife = defaultHalfLife
	}
	if cfg.MinImpressions == 0 {
		cfg.MinImpressions = 200
	}
	if cfg.LearnAbove == 0 {
		cfg.LearnAbove = 0.9
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Engagement{cfg: cfg, ring: newRing(cfg.Window, cfg.Buckets)}
	if e.cfg.WarmUp == 0 {
		e.cfg.WarmUp = 2 * time.Duration(e.ring.width) * time.Duration(e.ring.n)
	}
	e.variants, e.vidx = index(cfg.Variants)
	e.channels, e.cidx = index(cfg.Channels)
	e.base = make([]float64, len(e.variants))
	e.buckets = make([]engBucket, e.ring.n)
	for i := range e.buckets {
		e.buckets[i] = engBucket{id: -1, impressions: make([]int64, len(e.variants)), clicks: make([]int64, len(e.variants))}
	}
	vecs := map[event.Type]*prometheus.CounterVec{
		event.Impression: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sightline_impressions_total", Help: "Impressions of recommended items, by variant and channel."}, []string{"variant", "channel"}),
		event.Click:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sightline_clicks_total", Help: "Clicks on recommended items, by variant and channel."}, []string{"variant", "channel"}),
		event.Conversion: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sightline_conversions_total", Help: "Conversions of recommended items, by variant and channel."}, []string{"variant", "channel"}),
	}
	evs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sightline_events_total", Help: "Interaction events received, by type and channel."}, []string{"type", "channel"})
	for t, vec := range vecs {
		e.byType[t] = make([]prometheus.Counter, 0, len(e.variants)*len(e.channels))
		for _, v := range e.variants {
			for _, c := range e.channels {
				e.byType[t] = append(e.byType[t], vec.WithLabelValues(v, c))
			}
		}
		e.events[t] = make([]prometheus.Counter, 0, len(e.channels))
		for _, c := range e.channels {
			e.events[t] = append(e.events[t], evs.WithLabelValues(t.String(), c))
		}
	}
	ratio := &ctrCollector{e: e, desc: prometheus.NewDesc("sightline_ctr_ratio_to_baseline",
		"Windowed CTR of the variant divided by its baseline (a slow moving average); 1 until both have enough impressions.", []string{"variant"}, nil)}
	if r := cfg.Registerer; r != nil {
		for _, c := range []prometheus.Collector{vecs[event.Impression], vecs[event.Click], vecs[event.Conversion], evs, ratio} {
			if err := r.Register(c); err != nil {
				return nil, fmt.Errorf("register engagement metrics: %w", err)
			}
		}
	}
	return e, nil
}

// ObserveEvent records one interaction event for the variant that served
// the item on the given channel. Events of an invalid type are ignored. It
// is cheap and safe to call on the event path.
func (e *Engagement) ObserveEvent(variant, channel string, typ event.Type) {
	if typ < event.Impression || typ > event.Conversion {
		return
	}
	v, c := fold(e.vidx, variant), fold(e.cidx, channel)
	e.byType[typ][v*len(e.channels)+c].Inc()
	e.events[typ][c].Inc()
	if typ == event.Conversion {
		return
	}
	id, slot := e.ring.id(e.cfg.Now())
	e.mu.Lock()
	if e.first.IsZero() {
		e.first = e.cfg.Now()
	}
	b := &e.buckets[slot]
	if b.id != id {
		// Once per sub-bucket: let the baseline learn even when nobody reads it.
		e.ctrLocked(e.cfg.Now())
		b.id = id
		clear(b.impressions)
		clear(b.clicks)
	}
	if typ == event.Impression {
		b.impressions[v]++
	} else {
		b.clicks[v]++
	}
	e.mu.Unlock()
}

// VariantEngagement is one variant's engagement over the window and its
// CTR baseline. Ratio is CTR/Baseline, or 1 while either lacks data.
type VariantEngagement struct {
	Variant     string  `json:"variant"`
	Impressions int64   `json:"impressions"`
	Clicks      int64   `json:"clicks"`
	CTR         float64 `json:"ctr"`
	Baseline    float64 `json:"baseline"`
	Ratio       float64 `json:"ratio"`
}

// CTR returns every variant's windowed CTR against its baseline, in
// configuration order with "other" last. Reading advances the baseline.
func (e *Engagement) CTR() []VariantEngagement { return e.ctrAt(e.cfg.Now()) }

func (e *Engagement) ctrAt(now time.Time) []VariantEngagement {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ctrLocked(now)
}

func (e *Engagement) ctrLocked(now time.Time) []VariantEngagement {
	cur, _ := e.ring.id(now)
	out := make([]VariantEngagement, len(e.variants))
	for v, name := range e.variants {
		out[v].Variant = name
	}
	for i := range e.buckets {
		b := &e.buckets[i]
		if !e.ring.live(b.id, cur) {
			continue
		}
		for v := range e.variants {
			out[v].Impressions += b.impressions[v]
			out[v].Clicks += b.clicks[v]
		}
	}
	// Learn at most once per sub-bucket, weighting by the elapsed time.
	dt := now.Sub(e.learned)
	learn := e.learned.IsZero() || dt >= time.Duration(e.ring.width)
	// During warm-up the window still holds the start-up transient (empty
	// popularity lists, an untrained model): nothing is compared or learned.
	warm := !e.first.IsZero() && now.Sub(e.first) >= e.cfg.WarmUp
	for v := range out {
		r := &out[v]
		enough := warm && r.Impressions >= e.cfg.MinImpressions
		if r.Impressions > 0 {
			r.CTR = float64(r.Clicks) / float64(r.Impressions)
		}
		r.Ratio = 1
		if enough && e.base[v] > 0 {
			r.Ratio = r.CTR / e.base[v]
		}
		if learn && enough {
			switch {
			case e.base[v] == 0:
				e.base[v] = r.CTR
			case r.Ratio >= e.cfg.LearnAbove:
				e.base[v] = ema(e.base[v], r.CTR, dt, e.cfg.HalfLife)
			}
		}
		r.Baseline = e.base[v]
	}
	if learn {
		e.learned = now
	}
	return out
}

// SetCTRBaseline sets a variant's baseline CTR, for example from a model
// snapshot; a zero rate makes the variant learn it again.
func (e *Engagement) SetCTRBaseline(variant string, ctr float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.base[fold(e.vidx, variant)] = max(ctr, 0)
}

// Variants returns the bounded variant labels, ending with "other".
func (e *Engagement) Variants() []string { return slices.Clone(e.variants) }

type ctrCollector struct {
	e    *Engagement
	desc *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *ctrCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *ctrCollector) Collect(ch chan<- prometheus.Metric) {
	for _, v := range c.e.CTR() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v.Ratio, v.Variant)
	}
}

var _ prometheus.Collector = (*ctrCollector)(nil)
