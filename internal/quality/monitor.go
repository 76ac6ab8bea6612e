package quality

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Configuration errors, returned by the constructors.
var (
	// ErrNoFeatures reports a MonitorConfig without features.
	ErrNoFeatures = errors.New("quality: no features to monitor")
	// ErrInvalidConfig reports a configuration value out of range.
	ErrInvalidConfig = errors.New("quality: invalid configuration")
)

// MonitorConfig configures a [Monitor]. The zero value of every field but
// Features means its default.
type MonitorConfig struct {
	// Features names the model's user attributes to watch, for example
	// event.UserAttributes. Required.
	Features []string
	// Segments is the bounded set of user segments to break the figures
	// down by (for example new, casual, regular, power). Any other segment,
	// including the empty one, is counted as "other".
	Segments []string
	// Window is the span of the sliding window (default 5m).
	Window time.Duration
	// Buckets is the number of sub-buckets the window slides by (default 10).
	Buckets int
	// MinSamples is the number of samples a scope (overall or one segment)
	// needs in the window, and in the baseline, before its PSI is computed
	// (default 100). Below it PSI reads 0.
	MinSamples int64
	// TopK bounds the distinct categories tracked per feature (default 20).
	// Later categories are folded into [OtherValue].
	TopK int
	// Epsilon is the share given to empty bins in PSI (default DefaultEpsilon).
	Epsilon float64
	// Registerer receives the feature gauges; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Monitor tracks, for every model feature, its null ratio and its drift
// (PSI) against a baseline distribution over a sliding window, overall and
// by segment. All methods are safe for concurrent use.
type Monitor struct {
	cfg    MonitorConfig
	ring   ring
	feats  []string
	fidx   map[string]int
	segs   []string // the configured segments, then Other
	sidx   map[string]int
	bins   int // TopK + 2: [0] null, [1] other, then the dictionary
	mu     sync.Mutex
	dict   []map[string]int // per feature: category → bin
	names  [][]string       // per feature: bin → category
	bucket []monBucket
	base   Baseline
}

type monBucket struct {
	id      int64
	samples []int64 // per segment
	counts  []int64 // [segment][feature][bin], flattened
}

// NewMonitor returns a Monitor with an empty window and no baseline.
func NewMonitor(cfg MonitorConfig) (*Monitor, error) {
	if len(cfg.Features) == 0 {
		return nil, ErrNoFeatures
	}
	if cfg.Window < 0 || cfg.Buckets < 0 || cfg.MinSamples < 0 || cfg.TopK < 0 || cfg.Epsilon < 0 || cfg.Epsilon >= 1 {
		return nil, fmt.Errorf("monitor: %w", ErrInvalidConfig)
	}
	if cfg.MinSamples == 0 {
		cfg.MinSamples = 100
	}
	if cfg.TopK == 0 {
		cfg.TopK = 20
	}
	if cfg.Epsilon == 0 {
		cfg.Epsilon = DefaultEpsilon
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Monitor{cfg: cfg, ring: newRing(cfg.Window, cfg.Buckets), fidx: map[string]int{}, bins: cfg.TopK + 2}
	for _, f := range cfg.Features {
		if _, dup := m.fidx[f]; dup || f == "" {
			continue
		}
		m.fidx[f] = len(m.feats)
		m.feats = append(m.feats, f)
	}
	m.segs, m.sidx = index(cfg.Segments)
	m.dict = make([]map[string]int, len(m.feats))
	m.names = make([][]string, len(m.feats))
	for i := range m.feats {
		m.dict[i] = map[string]int{}
		m.names[i] = []string{NullValue, OtherValue}
	}
	m.bucket = make([]monBucket, m.ring.n)
	for i := range m.bucket {
		m.bucket[i] = monBucket{id: -1, samples: make([]int64, len(m.segs)), counts: make([]int64, len(m.segs)*len(m.feats)*m.bins)}
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(&monitorCollector{m: m}); err != nil {
			return nil, fmt.Errorf("register feature metrics: %w", err)
		}
	}
	return m, nil
}

// FeatureNames returns the monitored feature names in configuration order.
func (m *Monitor) FeatureNames() []string { return slices.Clone(m.feats) }

// Segments returns the bounded segment labels, ending with "other".
func (m *Monitor) Segments() []string { return slices.Clone(m.segs) }

// Segment returns the bounded label segment is counted under.
func (m *Monitor) Segment(segment string) string { return m.segs[fold(m.sidx, segment)] }

// ObserveFeatures records the feature values one decision saw, for a user
// of the given segment. A nil pointer, an empty string or a missing key
// counts as null. Call it only when the profile was fetched: a decision
// whose feature fetch failed says nothing about the data. It is cheap and
// safe to call on the request path.
func (m *Monitor) ObserveFeatures(segment string, values map[string]*string) {
	m.observe(m.cfg.Now(), fold(m.sidx, segment), values)
}

func (m *Monitor) observe(now time.Time, s int, values map[string]*string) {
	// The values are looked up before the lock, which every request takes:
	// it is held only for the dictionary and the counts.
	var arr [16]*string
	vals := arr[:0]
	for _, name := range m.feats {
		vals = append(vals, values[name])
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.bucketAt(now)
	b.samples[s]++
	base := s * len(m.feats) * m.bins
	for fi, v := range vals {
		bin := 0
		if v != nil && *v != "" {
			bin = m.binLocked(fi, *v)
		}
		b.counts[base+fi*m.bins+bin]++
	}
}

func (m *Monitor) bucketAt(now time.Time) *monBucket {
	id, slot := m.ring.id(now)
	b := &m.bucket[slot]
	if b.id != id {
		b.id = id
		clear(b.samples)
		clear(b.counts)
	}
	return b
}

// binLocked returns the bin of value v of feature fi, adding it to the
// dictionary while there is room.
func (m *Monitor) binLocked(fi int, v string) int {
	if bin, ok := m.dict[fi][v]; ok {
		return bin
	}
	if len(m.names[fi]) >= m.bins {
		return 1
	}
	bin := len(m.names[fi])
	m.dict[fi][v] = bin
	m.names[fi] = append(m.names[fi], v)
	return bin
}

// window is the aggregate of the live buckets: distributions per segment
// and feature, and their overall sums.
type window struct {
	segSamples []int64
	seg        [][]Distribution // [segment][feature]
	all        []Distribution   // [feature]
	samples    int64
}

func (m *Monitor) windowLocked(now time.Time) window {
	cur, _ := m.ring.id(now)
	nf := len(m.feats)
	sums := make([]int64, len(m.segs)*nf*m.bins)
	w := window{segSamples: make([]int64, len(m.segs))}
	for i := range m.bucket {
		b := &m.bucket[i]
		if !m.ring.live(b.id, cur) {
			continue
		}
		for s, n := range b.samples {
			w.segSamples[s] += n
		}
		for j, n := range b.counts {
			sums[j] += n
		}
	}
	w.seg = make([][]Distribution, len(m.segs))
	w.all = make([]Distribution, nf)
	for fi := range m.feats {
		w.all[fi] = Distribution{Counts: map[string]int64{}}
	}
	for s := range m.segs {
		w.samples += w.segSamples[s]
		w.seg[s] = make([]Distribution, nf)
		for fi := range m.feats {
			d := Distribution{Samples: w.segSamples[s], Counts: map[string]int64{}}
			off := (s*nf + fi) * m.bins
			for bin, name := range m.names[fi] {
				if n := sums[off+bin]; n > 0 {
					d.Counts[name] = n
					w.all[fi].Counts[name] += n
				}
			}
			w.seg[s][fi] = d
		}
	}
	for fi := range m.feats {
		w.all[fi].Samples = w.samples
	}
	return w
}

// SetBaseline replaces the baseline the window is compared with. The app
// calls it with the baseline stored in a model snapshot.
func (m *Monitor) SetBaseline(b Baseline) {
	b = b.clone()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.base = b
	// Give the baseline's categories a bin while the dictionary has room,
	// most frequent first, so that the comparison is bin by bin.
	for fi, f := range m.feats {
		d := b.Features[f]
		cats := make([]string, 0, len(d.Counts))
		for c := range d.Counts {
			if c != NullValue && c != OtherValue {
				cats = append(cats, c)
			}
		}
		slices.SortFunc(cats, func(x, y string) int {
			if c := cmp.Compare(d.Counts[y], d.Counts[x]); c != 0 {
				return c
			}
			return cmp.Compare(x, y)
		})
		for _, c := range cats {
			m.binLocked(fi, c)
		}
	}
}

// Baseline returns a copy of the current baseline (the zero Baseline when
// none was set or captured).
func (m *Monitor) Baseline() Baseline {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.base.clone()
}

// HasBaseline reports whether a baseline is set.
func (m *Monitor) HasBaseline() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.base.IsZero()
}

// CaptureBaseline freezes the current window as the baseline and returns
// it. The app calls it after warm-up when no snapshot carried a baseline.
// Segments without samples are left out.
func (m *Monitor) CaptureBaseline() Baseline {
	now := m.cfg.Now()
	m.mu.Lock()
	w := m.windowLocked(now)
	m.mu.Unlock()
	b := Baseline{CapturedAt: now, Features: map[string]Distribution{}, Segments: map[string]map[string]Distribution{}}
	for fi, f := range m.feats {
		b.Features[f] = w.all[fi]
	}
	for s, seg := range m.segs {
		if w.segSamples[s] == 0 {
			continue
		}
		b.Segments[seg] = map[string]Distribution{}
		for fi, f := range m.feats {
			b.Segments[seg][f] = w.seg[s][fi]
		}
	}
	m.SetBaseline(b)
	return b.clone()
}

// SegmentStats is the state of one feature within one segment.
type SegmentStats struct {
	Segment           string  `json:"segment"`
	NullRatio         float64 `json:"null_ratio"`
	BaselineNullRatio float64 `json:"baseline_null_ratio"`
	PSI               float64 `json:"psi"`
	Samples           int64   `json:"samples"`
	BaselineSamples   int64   `json:"baseline_samples"`
}

// FeatureStats is the state of one feature over the window: overall, then
// by segment in the configured order.
type FeatureStats struct {
	Name              string         `json:"name"`
	NullRatio         float64        `json:"null_ratio"`
	BaselineNullRatio float64        `json:"baseline_null_ratio"`
	PSI               float64        `json:"psi"`
	Samples           int64          `json:"samples"`
	BaselineSamples   int64          `json:"baseline_samples"`
	BySegment         []SegmentStats `json:"by_segment"`
}

// Features returns the statistics of every feature over the window.
func (m *Monitor) Features() []FeatureStats { return m.featuresAt(m.cfg.Now()) }

func (m *Monitor) featuresAt(now time.Time) []FeatureStats {
	m.mu.Lock()
	w := m.windowLocked(now)
	base := m.base // read-only after SetBaseline: it is replaced, never mutated
	known := make([]map[string]bool, len(m.feats))
	for fi := range m.feats {
		known[fi] = make(map[string]bool, len(m.names[fi]))
		for _, n := range m.names[fi] {
			known[fi][n] = true
		}
	}
	m.mu.Unlock()

	out := make([]FeatureStats, len(m.feats))
	for fi, f := range m.feats {
		bd := base.Features[f]
		fs := FeatureStats{
			Name:              f,
			NullRatio:         w.all[fi].NullRatio(),
			BaselineNullRatio: bd.NullRatio(),
			PSI:               m.psi(bd, w.all[fi], known[fi]),
			Samples:           w.samples,
			BaselineSamples:   bd.Samples,
			BySegment:         make([]SegmentStats, len(m.segs)),
		}
		for s, seg := range m.segs {
			sd := base.Segments[seg][f]
			fs.BySegment[s] = SegmentStats{
				Segment:           seg,
				NullRatio:         w.seg[s][fi].NullRatio(),
				BaselineNullRatio: sd.NullRatio(),
				PSI:               m.psi(sd, w.seg[s][fi], known[fi]),
				Samples:           w.segSamples[s],
				BaselineSamples:   sd.Samples,
			}
		}
		out[fi] = fs
	}
	return out
}

// psi compares a window distribution with its baseline after folding the
// baseline's categories that have no bin into OtherValue, as the window does.
func (m *Monitor) psi(base, cur Distribution, known map[string]bool) float64 {
	if base.Samples < m.cfg.MinSamples || cur.Samples < m.cfg.MinSamples {
		return 0
	}
	folded := Distribution{Samples: base.Samples, Counts: make(map[string]int64, len(base.Counts))}
	for k, n := range base.Counts {
		if !known[k] {
			k = OtherValue
		}
		folded.Counts[k] += n
	}
	return PSI(folded, cur, m.cfg.Epsilon)
}

// monitorCollector computes the feature gauges at scrape time.
type monitorCollector struct{ m *Monitor }

var (
	descNull        = prometheus.NewDesc("sightline_feature_null_ratio", "Share of decisions whose feature was null over the quality window.", []string{"feature"}, nil)
	descBaseNull    = prometheus.NewDesc("sightline_feature_baseline_null_ratio", "Null ratio of the feature in the baseline distribution.", []string{"feature"}, nil)
	descPSI         = prometheus.NewDesc("sightline_feature_drift_psi", "Population stability index of the feature over the quality window against its baseline (0 below the minimum samples).", []string{"feature"}, nil)
	descSegNull     = prometheus.NewDesc("sightline_feature_null_ratio_by_segment", "Null ratio of the feature over the quality window, by user segment.", []string{"feature", "segment"}, nil)
	descSegBaseNull = prometheus.NewDesc("sightline_feature_baseline_null_ratio_by_segment", "Null ratio of the feature in the baseline, by user segment.", []string{"feature", "segment"}, nil)
	descSegPSI      = prometheus.NewDesc("sightline_feature_drift_psi_by_segment", "Population stability index of the feature against its baseline, by user segment (0 below the minimum samples).", []string{"feature", "segment"}, nil)
	descSamples     = prometheus.NewDesc("sightline_feature_window_samples", "Decisions observed by the feature monitor over the quality window, by user segment.", []string{"segment"}, nil)
)

// Describe implements prometheus.Collector.
func (c *monitorCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNull, descBaseNull, descPSI, descSegNull, descSegBaseNull, descSegPSI, descSamples} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *monitorCollector) Collect(ch chan<- prometheus.Metric) {
	g := prometheus.GaugeValue
	stats := c.m.Features()
	for _, f := range stats {
		ch <- prometheus.MustNewConstMetric(descNull, g, f.NullRatio, f.Name)
		ch <- prometheus.MustNewConstMetric(descBaseNull, g, f.BaselineNullRatio, f.Name)
		ch <- prometheus.MustNewConstMetric(descPSI, g, f.PSI, f.Name)
		for _, s := range f.BySegment {
			ch <- prometheus.MustNewConstMetric(descSegNull, g, s.NullRatio, f.Name, s.Segment)
			ch <- prometheus.MustNewConstMetric(descSegBaseNull, g, s.BaselineNullRatio, f.Name, s.Segment)
			ch <- prometheus.MustNewConstMetric(descSegPSI, g, s.PSI, f.Name, s.Segment)
		}
	}
	if len(stats) > 0 {
		for _, s := range stats[0].BySegment {
			ch <- prometheus.MustNewConstMetric(descSamples, g, float64(s.Samples), s.Segment)
		}
	}
}

var _ prometheus.Collector = (*monitorCollector)(nil)
