package slo

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sightline/sightline/internal/engine"
)

// The SLO names, the values of the slo label.
const (
	Availability = "availability"
	Latency      = "latency"
)

// Names lists the SLOs in a fixed order.
var Names = []string{Availability, Latency}

// Defaults of [Config].
const (
	DefaultObjective        = 0.999
	DefaultLatencyThreshold = 10 * time.Millisecond
	// Period is the span an objective holds over, unscaled.
	Period = 30 * 24 * time.Hour
)

// ErrInvalidConfig reports a [Config] out of range.
var ErrInvalidConfig = errors.New("invalid slo config")

// MinObjective is the exclusive lower bound of an objective: at or below
// it, the fast page's 14.4× burn would need more than every request to
// fail.
var MinObjective = 1 - 1/fastFactor

// Config configures a [Tracker]. The zero value of every field means its
// default.
type Config struct {
	// Availability is the availability objective, the share of good
	// answers over the period, in (MinObjective, 1) (default 0.999).
	Availability float64
	// Latency is the latency objective, the share of decisions at most
	// LatencyThreshold long, in (MinObjective, 1) (default 0.999).
	Latency float64
	// LatencyThreshold is the longest a good decision takes (default
	// 10ms).
	LatencyThreshold time.Duration
	// WindowScale multiplies the period and every alert window, keeping
	// the workbook's ratios between them, in (0, 1] (default 1). Drills
	// scale them down: with 1/12 the fast page's 1h window is 5 minutes.
	WindowScale float64
	// MinRequests is the fewest events an alert's long window must hold
	// for the alert to fire, so that a node that has served a handful of
	// requests does not page for one of them (default 100).
	MinRequests int64
	// Registerer receives the sightline_slo_* metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now is the clock events are counted on (default time.Now).
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	if c.Availability == 0 {
		c.Availability = DefaultObjective
	}
	if c.Latency == 0 {
		c.Latency = DefaultObjective
	}
	if c.LatencyThreshold == 0 {
		c.LatencyThreshold = DefaultLatencyThreshold
	}
	if c.WindowScale == 0 {
		c.WindowScale = 1
	}
	if c.MinRequests == 0 {
		c.MinRequests = 100
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	for _, o := range []struct {
		name string
		v    float64
	}{{Availability, c.Availability}, {Latency, c.Latency}} {
		if !(o.v > MinObjective && o.v < 1) {
			return c, fmt.Errorf("%w: %s objective %v: want a ratio between %.4f and 1, exclusive (e.g. 0.999)", ErrInvalidConfig, o.name, o.v, MinObjective)
		}
	}
	switch {
	case c.LatencyThreshold < 0:
		return c, fmt.Errorf("%w: negative latency threshold %v", ErrInvalidConfig, c.LatencyThreshold)
	case !(c.WindowScale > 0 && c.WindowScale <= 1):
		return c, fmt.Errorf("%w: window scale %v: want a factor in (0, 1]", ErrInvalidConfig, c.WindowScale)
	case c.MinRequests < 0:
		return c, fmt.Errorf("%w: negative minimum requests %d", ErrInvalidConfig, c.MinRequests)
	}
	return c, nil
}

// Tracker counts the good and bad events of each SLO, exports them, and
// evaluates the burn-rate alerts over them. All methods are safe for
// concurrent use; the Observe methods are on the serving path and take a
// short lock.
type Tracker struct {
	cfg   Config
	start time.Time
	// fineWidth and coarseWidth are the bucket widths of the alert windows
	// and of the period.
	fineWidth, coarseWidth time.Duration

	avail, lat *series

	mu sync.Mutex // guards the rings of avail and lat
}

// series is one SLO's counters.
type series struct {
	name      string
	objective float64
	// fine covers the longest alert window, coarse the period.
	fine, coarse *ring
	good, bad    prometheus.Counter
}

// New returns a tracker of the SLOs of cfg, registering its metrics.
func New(cfg Config) (*Tracker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	t := &Tracker{cfg: cfg, start: cfg.Now()}
	// 15s buckets (one scrape interval) for windows of 5m to 3d, 1h buckets
	// for the period: about 17,000 and 720 buckets per SLO, whatever the
	// scale.
	t.fineWidth = max(t.scale(15*time.Second), time.Microsecond)
	t.coarseWidth = max(t.scale(time.Hour), time.Microsecond)
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sightline_slo_requests_total",
		Help: "Events of each SLO by result: recommendation requests for availability (bad: a 5xx, or a fallback because a dependency failed or was late), decisions for latency (bad: longer than the threshold).",
	}, []string{"slo", "result"})
	objective := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sightline_slo_objective_ratio",
		Help: "Objective of each SLO: the share of good events over 30 days (--slo-availability, --slo-latency-objective).",
	}, []string{"slo"})
	threshold := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sightline_slo_latency_threshold_seconds",
		Help: "Longest a decision may take to count as good for the latency SLO (--slo-latency).",
	})
	newSeries := func(name string, o float64) *series {
		objective.WithLabelValues(name).Set(o)
		return &series{
			name: name, objective: o,
			fine:   newRing(t.fineWidth, t.scale(longestWindow)),
			coarse: newRing(t.coarseWidth, t.scale(Period)),
			good:   requests.WithLabelValues(name, "good"),
			bad:    requests.WithLabelValues(name, "bad"),
		}
	}
	t.avail = newSeries(Availability, cfg.Availability)
	t.lat = newSeries(Latency, cfg.Latency)
	threshold.Set(cfg.LatencyThreshold.Seconds())
	if reg := cfg.Registerer; reg != nil {
		for _, c := range []prometheus.Collector{requests, objective, threshold} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register slo metrics: %w", err)
			}
		}
	}
	return t, nil
}

// scale returns d times the window scale.
func (t *Tracker) scale(d time.Duration) time.Duration {
	return time.Duration(math.Round(float64(d) * t.cfg.WindowScale))
}

// CountsAgainstAvailability reports whether a decision that fell back for
// reason is a bad event of the availability SLO: a dependency failed or
// was late. The other fallbacks (missing_features, low_confidence) are the
// engine choosing the fallback by design.
func CountsAgainstAvailability(reason engine.Reason) bool {
	switch reason {
	case engine.ReasonFeatureStoreError, engine.ReasonFeatureStoreTimeout, engine.ReasonModelError, engine.ReasonModelTimeout:
		return true
	}
	return false
}

// ObserveDecision counts one answered recommendation: against
// availability when it fell back because a dependency failed or was late,
// against latency when it took longer than the threshold. The engine
// calls it (through the node) for every decision.
func (t *Tracker) ObserveDecision(reason engine.Reason, took time.Duration) {
	availBad := CountsAgainstAvailability(reason)
	latBad := took > t.cfg.LatencyThreshold
	now := t.cfg.Now()
	t.mu.Lock()
	t.avail.observe(now, availBad)
	t.lat.observe(now, latBad)
	t.mu.Unlock()
	t.avail.export(availBad)
	t.lat.export(latBad)
}

// ObserveServerError counts a recommendation request answered with a 5xx:
// no decision, a bad event of the availability SLO only.
func (t *Tracker) ObserveServerError() {
	now := t.cfg.Now()
	t.mu.Lock()
	t.avail.observe(now, true)
	t.mu.Unlock()
	t.avail.export(true)
}

func (s *series) observe(now time.Time, bad bool) {
	c := counts{good: 1}
	if bad {
		c = counts{bad: 1}
	}
	s.fine.add(now, c)
	s.coarse.add(now, c)
}

func (s *series) export(bad bool) {
	if bad {
		s.bad.Inc()
	} else {
		s.good.Inc()
	}
}

// LatencyThreshold returns the latency SLO's threshold.
func (t *Tracker) LatencyThreshold() time.Duration { return t.cfg.LatencyThreshold }

// WindowScale returns the factor every window is scaled by.
func (t *Tracker) WindowScale() float64 { return t.cfg.WindowScale }
