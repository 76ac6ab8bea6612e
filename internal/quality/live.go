package quality

import (
	"github.com/sightline/sightline/internal/event"
	"math"
	"slices"
	"sync"
	"time"
)

// Outcome is how a request ended.
type Outcome uint8

// Request outcomes.
const (
	OutcomeOK Outcome = iota
	OutcomeFallback
	OutcomeError
)

// Request is one observed recommendation request.
type Request struct {
	Variant  string
	Outcome  Outcome
	Reason   string // fallback reason, when Outcome is OutcomeFallback
	Duration time.Duration
}

// LiveConfig configures Live. The zero value means the defaults.
type LiveConfig struct {
	// Window is the span of the statistics (default 60s), kept in one-second buckets.
	Window time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Live keeps request and engagement statistics over a sliding window.
type Live struct {
	mu      sync.Mutex
	now     func() time.Time
	buckets []liveBucket
	width   time.Duration
}

// latency histogram: log buckets from 1µs growing by 10% (about 220 buckets up to 10 s).
const (
	histMin    = 1e-6
	histGrowth = 1.1
	histN      = 220
)

type liveBucket struct {
	start       int64 // unix second
	requests    int64
	errors      int64
	fallbacks   map[string]int64
	events      int64
	impressions map[string]int64
	clicks      map[string]int64
	hist        [histN]uint32
}

// NewLive returns an empty Live.
func NewLive(cfg LiveConfig) *Live {
	if cfg.Window <= 0 {
		cfg.Window = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	n := int(cfg.Window / time.Second)
	if n < 1 {
		n = 1
	}
	return &Live{now: cfg.Now, buckets: make([]liveBucket, n), width: time.Duration(n) * time.Second}
}

func (l *Live) bucket() *liveBucket {
	sec := l.now().Unix()
	b := &l.buckets[int(sec%int64(len(l.buckets)))]
	if b.start != sec {
		*b = liveBucket{start: sec}
	}
	return b
}

func histIndex(seconds float64) int {
	if seconds <= histMin {
		return 0
	}
	i := int(math.Log(seconds/histMin) / math.Log(histGrowth))
	return min(i, histN-1)
}

// ObserveRequest records a request.
func (l *Live) ObserveRequest(r Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket()
	b.requests++
	switch r.Outcome {
	case OutcomeError:
		b.errors++
	case OutcomeFallback:
		if b.fallbacks == nil {
			b.fallbacks = make(map[string]int64)
		}
		b.fallbacks[r.Reason]++
	}
	b.hist[histIndex(r.Duration.Seconds())]++
}

// ObserveEvent records an event of type t for a variant, as
// ObserveEngagement does; the channel is not broken down here.
func (l *Live) ObserveEvent(variant, _ string, t event.Type) {
	l.ObserveEngagement(variant, t == event.Impression, t == event.Click)
}

// ObserveEngagement records an interaction for a variant: impression or
// click (conversions count as events only).
func (l *Live) ObserveEngagement(variant string, impression, click bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket()
	b.events++
	if impression {
		if b.impressions == nil {
			b.impressions = make(map[string]int64)
		}
		b.impressions[variant]++
	}
	if click {
		if b.clicks == nil {
			b.clicks = make(map[string]int64)
		}
		b.clicks[variant]++
	}
}

// VariantCTR is engagement of one variant over the window.
type VariantCTR struct {
	Impressions int64   `json:"impressions"`
	Clicks      int64   `json:"clicks"`
	CTR         float64 `json:"ctr"`
}

// Latency holds latency percentiles in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
}

// Snapshot is the window's figures, the body of GET /v1/stats.
type Snapshot struct {
	Time                 time.Time             `json:"time"`
	WindowSeconds        float64               `json:"window_seconds"`
	Requests             int64                 `json:"requests"`
	RequestsPerSecond    float64               `json:"requests_per_second"`
	Latency              Latency               `json:"latency_ms"`
	ErrorRate            float64               `json:"error_rate"`
	FallbackRate         float64               `json:"fallback_rate"`
	FallbackRateByReason map[string]float64    `json:"fallback_rate_by_reason"`
	CTRByVariant         map[string]VariantCTR `json:"ctr_by_variant"`
	EventsPerSecond      float64               `json:"events_per_second"`
}

// Snapshot returns the statistics of the last window. The current, partial
// second is included; rates divide by the covered time.
func (l *Live) Snapshot() Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	sec := now.Unix()
	oldest := sec - int64(len(l.buckets)) + 1
	s := Snapshot{Time: now, FallbackRateByReason: map[string]float64{}, CTRByVariant: map[string]VariantCTR{}}
	var hist [histN]uint64
	var errs, fbs, events int64
	first := sec
	for i := range l.buckets {
		b := &l.buckets[i]
		if b.start < oldest || b.start > sec || (b.requests == 0 && b.events == 0) {
			continue
		}
		first = min(first, b.start)
		s.Requests += b.requests
		errs += b.errors
		events += b.events
		for r, n := range b.fallbacks {
			s.FallbackRateByReason[r] += float64(n)
			fbs += n
		}
		for v, n := range b.impressions {
			c := s.CTRByVariant[v]
			c.Impressions += n
			s.CTRByVariant[v] = c
		}
		for v, n := range b.clicks {
			c := s.CTRByVariant[v]
			c.Clicks += n
			s.CTRByVariant[v] = c
		}
		for j, n := range b.hist {
			hist[j] += uint64(n)
		}
	}
	covered := float64(sec-first) + float64(now.Nanosecond())/1e9
	covered = max(covered, 1)
	s.WindowSeconds = covered
	s.RequestsPerSecond = float64(s.Requests) / covered
	s.EventsPerSecond = float64(events) / covered
	if s.Requests > 0 {
		s.ErrorRate = float64(errs) / float64(s.Requests)
		s.FallbackRate = float64(fbs) / float64(s.Requests)
		for r, n := range s.FallbackRateByReason {
			s.FallbackRateByReason[r] = n / float64(s.Requests)
		}
		s.Latency = Latency{P50: quantile(&hist, s.Requests, 0.5), P95: quantile(&hist, s.Requests, 0.95), P99: quantile(&hist, s.Requests, 0.99)}
	}
	for v, c := range s.CTRByVariant {
		if c.Impressions > 0 {
			c.CTR = float64(c.Clicks) / float64(c.Impressions)
		}
		s.CTRByVariant[v] = c
	}
	return s
}

// quantile returns the q-quantile in milliseconds (the upper bound of the
// bucket holding it, so it never understates).
func quantile(h *[histN]uint64, total int64, q float64) float64 {
	rank := uint64(math.Ceil(q * float64(total)))
	var cum uint64
	for i, n := range h {
		cum += n
		if cum >= rank && n > 0 {
			return histMin * math.Pow(histGrowth, float64(i+1)) * 1e3
		}
	}
	return 0
}

// Variants returns the variant names seen in the window, sorted.
func (s *Snapshot) Variants() []string {
	out := make([]string, 0, len(s.CTRByVariant))
	for v := range s.CTRByVariant {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}
