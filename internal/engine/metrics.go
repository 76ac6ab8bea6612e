package engine

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// latencyBuckets suit a sub-10 ms service.
var latencyBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005,
	0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
}

// metrics is the engine's metric set. Label values come from bounded sets:
// variants of the split, folded channels, outcomes, reasons and stages.
type metrics struct {
	duration    *prometheus.HistogramVec
	stages      *prometheus.HistogramVec
	stageObs    map[string]prometheus.Observer
	requests    *prometheus.CounterVec
	fallbacks   *prometheus.CounterVec
	fallbackBy  map[Reason]prometheus.Counter
	confidence  *prometheus.HistogramVec
	confidenceV map[string]prometheus.Observer
}

func newMetrics(reg prometheus.Registerer, variants, channels []string) (*metrics, error) {
	m := &metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "sightline_recommendation_duration_seconds",
			Help:                            "Time to decide a recommendation, by variant and outcome (ok, fallback).",
			Buckets:                         latencyBuckets,
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  160,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"variant", "outcome"}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "sightline_stage_duration_seconds",
			Help:                            "Time spent in each decision stage.",
			Buckets:                         latencyBuckets,
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  160,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"stage"}),
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
		stageObs:    map[string]prometheus.Observer{},
		fallbackBy:  map[Reason]prometheus.Counter{},
		confidenceV: map[string]prometheus.Observer{},
	}
	for _, s := range []string{StageFeatures, StageCandidates, StageInference, StageRules} {
		m.stageObs[s] = m.stages.WithLabelValues(s)
	}
	for _, r := range Reasons {
		m.fallbackBy[r] = m.fallbacks.WithLabelValues(string(r))
	}
	// Initialise the bounded series so rates exist from the first scrape.
	for _, v := range variants {
		m.confidenceV[v] = m.confidence.WithLabelValues(v)
		for _, o := range []string{"ok", "fallback"} {
			m.duration.WithLabelValues(v, o)
			for _, c := range append(append([]string{}, channels...), "other", "none") {
				m.requests.WithLabelValues(v, c, o)
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
			}
		}
	}
	return m, nil
}

func (m *metrics) stage(name string, d time.Duration) {
	if o, ok := m.stageObs[name]; ok {
		o.Observe(d.Seconds())
	}
}

func (m *metrics) observe(ctx context.Context, d *Decision, channel string, slow time.Duration) {
	outcome := "ok"
	if d.Fallback != ReasonNone {
		outcome = "fallback"
		if c, ok := m.fallbackBy[d.Fallback]; ok {
			c.Inc()
		}
	}
	m.requests.WithLabelValues(d.Variant, channel, outcome).Inc()
	obs := m.duration.WithLabelValues(d.Variant, outcome)
	sc := trace.SpanContextFromContext(ctx)
	// Exemplars point only at traces that tail retention keeps.
	if eo, ok := obs.(prometheus.ExemplarObserver); ok && sc.IsValid() && (sc.IsSampled() || outcome == "fallback" || d.Duration >= slow) {
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
