package engine

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// latencyBuckets suit a sub-10 ms service.
var latencyBuckets = [...]float64{
	0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005,
	0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
}

// metrics is the engine's metric set. Label values come from bounded sets:
// variants of the split, folded channels, outcomes, reasons and stages.
type metrics struct {
	duration    *prometheus.HistogramVec
	stages      *stageHistograms
	requests    *prometheus.CounterVec
	fallbacks   *prometheus.CounterVec
	fallbackBy  map[Reason]prometheus.Counter
	confidence  *prometheus.HistogramVec
	confidenceV map[string]prometheus.Observer
	// byVariant holds the children of the known variants' series, so
	// observing a decision looks two short strings up instead of hashing
	// label values into the vectors on every request.
	byVariant map[string]*variantMetrics
}

// Outcomes of a decision, the index of a variantMetrics array.
const (
	outcomeOK = iota
	outcomeFallback
)

var outcomes = [...]string{outcomeOK: "ok", outcomeFallback: "fallback"}

// variantMetrics is one variant's precomputed children: duration by
// outcome, requests by folded channel and outcome.
type variantMetrics struct {
	duration [len(outcomes)]prometheus.Observer
	requests map[string]*[len(outcomes)]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, variants, channels []string) (*metrics, error) {
	m := &metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "sightline_recommendation_duration_seconds",
			Help:                            "Time to decide a recommendation, by variant and outcome (ok, fallback).",
			Buckets:                         latencyBuckets[:],
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  160,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"variant", "outcome"}),
		// Classic buckets only: four observations a request, and a native
		// histogram's sparse buckets (a concurrent map lookup each) cost
		// about 1.5% of a saturated node's CPU. The decision's own
		// duration above keeps its native histogram.
		stages: newStageHistograms(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_recommendations_total",
			Help: "Recommendation decisions, by variant, channel and outcome.",
		}, []string{"variant", "channel", "outcome"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_fallbacks_total",
			Help: "Decisions answered by the fallback, by reason.",
		}, []string{"reason"}),
		confidence: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sightline_model_confidence",
			Help:    "Model confidence (top predicted click probability) of decisions, by variant.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1},
		}, []string{"variant"}),
		fallbackBy:  map[Reason]prometheus.Counter{},
		confidenceV: map[string]prometheus.Observer{},
	}
	for _, r := range Reasons {
		m.fallbackBy[r] = m.fallbacks.WithLabelValues(string(r))
	}
	// Initialise the bounded series so rates exist from the first scrape.
	m.byVariant = make(map[string]*variantMetrics, len(variants))
	for _, v := range variants {
		m.confidenceV[v] = m.confidence.WithLabelValues(v)
		vm := &variantMetrics{requests: map[string]*[len(outcomes)]prometheus.Counter{}}
		m.byVariant[v] = vm
		for o, outcome := range outcomes {
			vm.duration[o] = m.duration.WithLabelValues(v, outcome)
			for _, c := range append(append([]string{}, channels...), "other", "none") {
				cs := vm.requests[c]
				if cs == nil {
					cs = new([len(outcomes)]prometheus.Counter)
					vm.requests[c] = cs
				}
				cs[o] = m.requests.WithLabelValues(v, c, outcome)
			}
		}
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.duration, m.stages, m.requests, m.fallbacks, m.confidence} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return nil, err
				}
				if h, ok := are.ExistingCollector.(*stageHistograms); ok {
					m.stages = h // a second engine on the registry observes into the first's
				}
			}
		}
	}
	return m, nil
}

func (m *metrics) stage(name string, d time.Duration) {
	if i := stageIndex(name); i >= 0 {
		m.stages.observe(i, d)
	}
}

func (m *metrics) observe(ctx context.Context, d *Decision, channel string, slow time.Duration) {
	o := outcomeOK
	if d.Fallback != ReasonNone {
		o = outcomeFallback
		if c, ok := m.fallbackBy[d.Fallback]; ok {
			c.Inc()
		}
	}
	var obs prometheus.Observer
	if vm, ok := m.byVariant[d.Variant]; ok {
		if cs, ok := vm.requests[channel]; ok {
			cs[o].Inc()
		} else {
			m.requests.WithLabelValues(d.Variant, channel, outcomes[o]).Inc()
		}
		obs = vm.duration[o]
	} else {
		m.requests.WithLabelValues(d.Variant, channel, outcomes[o]).Inc()
		obs = m.duration.WithLabelValues(d.Variant, outcomes[o])
	}
	sc := trace.SpanContextFromContext(ctx)
	// Exemplars point only at traces that tail retention keeps.
	if eo, ok := obs.(prometheus.ExemplarObserver); ok && sc.IsValid() && (sc.IsSampled() || o == outcomeFallback || d.Duration >= slow) {
		eo.ObserveWithExemplar(d.Duration.Seconds(), prometheus.Labels{"trace_id": sc.TraceID().String()})
	} else {
		obs.Observe(d.Duration.Seconds())
	}
	if d.Fallback == ReasonNone || d.Confidence > 0 {
		if o, ok := m.confidenceV[d.Variant]; ok {
			o.Observe(d.Confidence)
		}
	}
}
