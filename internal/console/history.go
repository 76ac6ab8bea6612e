package console

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"
)

// point is one sample of the overview figures.
type point struct {
	t            time.Time
	rps          float64
	p50          float64
	p95          float64
	p99          float64
	errorRate    float64
	fallbackRate float64
	eventsPS     float64
	ingestLag    float64 // seconds
	ctr          map[string]VariantView
}

// history is a bounded ring of samples, oldest evicted first.
type history struct {
	mu   sync.Mutex
	ring []point
	next int
	n    int
}

func newHistory(capacity int) *history {
	return &history{ring: make([]point, max(capacity, 1))}
}

func (h *history) add(p point) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ring[h.next] = p
	h.next = (h.next + 1) % len(h.ring)
	h.n = min(h.n+1, len(h.ring))
}

// last returns the time of the newest sample (zero when empty).
func (h *history) last() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return time.Time{}
	}
	return h.ring[(h.next-1+len(h.ring))%len(h.ring)].t
}

// points returns the samples, oldest first.
func (h *history) points() []point {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]point, 0, h.n)
	for i := h.n; i > 0; i-- {
		out = append(out, h.ring[(h.next-i+len(h.ring))%len(h.ring)])
	}
	return out
}

// Run samples the overview figures every [Config.SampleInterval] into the
// bounded history behind the Overview charts, until ctx is done. It takes
// one sample at once. It returns nil when ctx is done.
func (c *Console) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.SampleInterval)
	defer t.Stop()
	for {
		c.Sample(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sample takes one sample of the overview figures now (by [Config.Now]).
// [Console.Run] calls it on its ticker; drills on an accelerated clock may
// call it directly.
func (c *Console) Sample(ctx context.Context) {
	p := point{t: c.cfg.Now()}
	if c.cfg.Stats != nil {
		o := c.cfg.Stats.Overview(ctx)
		s := o.Stats
		p.rps, p.eventsPS = s.RequestsPerSecond, s.EventsPerSecond
		p.p50, p.p95, p.p99 = s.Latency.P50, s.Latency.P95, s.Latency.P99
		p.errorRate, p.fallbackRate = s.ErrorRate, s.FallbackRate
		p.ingestLag = o.IngestLag.Seconds()
		if c.cfg.Quality == nil {
			p.ctr = make(map[string]VariantView, len(s.CTRByVariant))
			for v, x := range s.CTRByVariant {
				p.ctr[v] = VariantView{Variant: v, Impressions: x.Impressions, Clicks: x.Clicks, CTR: x.CTR}
			}
		}
	}
	if c.cfg.Quality != nil {
		vs := configuredVariants(c.cfg.Quality.CTR())
		p.ctr = make(map[string]VariantView, len(vs))
		for _, v := range vs {
			p.ctr[v.Variant] = v
		}
	}
	c.hist.add(p)
}

// seriesJSON is the body of GET /console/api/series: columns of the
// history, oldest first, for the Overview charts. Missing values are null.
type seriesJSON struct {
	IntervalSeconds float64                  `json:"interval_seconds"`
	WindowSeconds   float64                  `json:"window_seconds"`
	T               []int64                  `json:"t"` // unix milliseconds
	Series          map[string][]*float64    `json:"series"`
	CTR             map[string]ctrSeriesJSON `json:"ctr"`
	Latest          map[string]float64       `json:"latest"`
	Variants        []string                 `json:"variants"`
	// Annotations mark the rollout transitions within the window.
	Annotations []annotation `json:"annotations"`
}

// ctrSeriesJSON is the CTR of one variant over time and its baseline.
type ctrSeriesJSON struct {
	CTR      []*float64 `json:"ctr"`
	Baseline []*float64 `json:"baseline"`
}

// series names in the JSON, in display order.
var seriesNames = []string{
	"requests_per_second", "events_per_second",
	"latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
	"error_rate", "fallback_rate", "ingest_lag_seconds",
}

func (p *point) value(name string) float64 {
	switch name {
	case "requests_per_second":
		return p.rps
	case "events_per_second":
		return p.eventsPS
	case "latency_p50_ms":
		return p.p50
	case "latency_p95_ms":
		return p.p95
	case "latency_p99_ms":
		return p.p99
	case "error_rate":
		return p.errorRate
	case "fallback_rate":
		return p.fallbackRate
	case "ingest_lag_seconds":
		return p.ingestLag
	}
	return math.NaN()
}

func num(f float64) *float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return &f
}

func (c *Console) seriesData() seriesJSON {
	pts := c.hist.points()
	out := seriesJSON{
		IntervalSeconds: c.cfg.SampleInterval.Seconds(),
		WindowSeconds:   c.cfg.History.Seconds(),
		T:               make([]int64, len(pts)),
		Series:          make(map[string][]*float64, len(seriesNames)),
		CTR:             map[string]ctrSeriesJSON{},
		Latest:          map[string]float64{},
		Variants:        []string{},
	}
	for _, name := range seriesNames {
		col := make([]*float64, len(pts))
		for i := range pts {
			col[i] = num(pts[i].value(name))
		}
		out.Series[name] = col
		if len(pts) > 0 {
			if v := num(pts[len(pts)-1].value(name)); v != nil {
				out.Latest[name] = *v
			}
		}
	}
	out.Annotations = c.annotations(c.cfg.Now().Add(-c.cfg.History))
	for i := range pts {
		out.T[i] = pts[i].t.UnixMilli()
		for v := range pts[i].ctr {
			if !slices.Contains(out.Variants, v) {
				out.Variants = append(out.Variants, v)
			}
		}
	}
	slices.Sort(out.Variants)
	for _, v := range out.Variants {
		s := ctrSeriesJSON{CTR: make([]*float64, len(pts)), Baseline: make([]*float64, len(pts))}
		for i := range pts {
			if x, ok := pts[i].ctr[v]; ok {
				s.CTR[i] = num(x.CTR)
				if x.Baseline > 0 {
					s.Baseline[i] = num(x.Baseline)
				}
			}
		}
		out.CTR[v] = s
	}
	return out
}

// series serves the overview history as JSON. When no sampler runs (the
// newest sample is older than two intervals) it samples on the request, so
// the charts still move.
func (c *Console) series(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Now().Sub(c.hist.last()) > 2*c.cfg.SampleInterval {
		c.Sample(r.Context())
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(c.seriesData())
}
