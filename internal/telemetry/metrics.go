package telemetry

import (
	"errors"
	"regexp"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Keep reasons, the values of the reason label of
// sightline_traces_kept_total. A trace kept for several reasons is counted
// once, under the first of error, fallback, slow, sampled, linked.
const (
	ReasonSampled = "sampled"
	// ReasonLinked keeps a trace that links to a sampled or kept span, such
	// as the processing of a click on a kept recommendation.
	ReasonLinked   = "linked"
	ReasonError    = "error"
	ReasonFallback = "fallback"
	ReasonSlow     = "slow"
)

// Signals, the values of the signal label of
// sightline_telemetry_dropped_total.
const (
	SignalSpans   = "spans"
	SignalLogs    = "logs"
	SignalMetrics = "metrics"
)

// FallbackAttr is the span attribute that marks a fallback; a trace with a
// span carrying a non-empty value is always kept.
const FallbackAttr = "sightline.fallback.reason"

// VariantAttr is the span attribute holding the model variant; the flight
// recorder indexes a trace by it, from whichever span carries it.
const VariantAttr = "sightline.variant"

// metrics is the one metrics struct of this package.
type metrics struct {
	kept      *prometheus.CounterVec
	dropped   prometheus.Counter
	telemetry *prometheus.CounterVec
	sdkErrors prometheus.Counter

	keptByReason   map[string]prometheus.Counter
	droppedSpans   prometheus.Counter
	droppedLogs    prometheus.Counter
	droppedMetrics prometheus.Counter
}

// newMetrics builds the counters and registers them with reg; a nil reg
// means the counters work but are not exported.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		kept: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_traces_kept_total",
			Help: "Traces kept by tail retention, by the first matching reason (error, fallback, slow, sampled).",
		}, []string{"reason"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sightline_traces_dropped_total",
			Help: "Traces tail retention discarded (including unsampled hot-route requests it never had to record).",
		}),
		telemetry: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_telemetry_dropped_total",
			Help: "Telemetry items dropped because a bounded buffer was full or an export failed, by signal.",
		}, []string{"signal"}),
		sdkErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sightline_telemetry_errors_total",
			Help: "Errors the OpenTelemetry SDK reported (failed exports, dropped data); logged at most once per 10s.",
		}),
	}
	m.keptByReason = map[string]prometheus.Counter{}
	for _, r := range []string{ReasonSampled, ReasonError, ReasonFallback, ReasonSlow, ReasonLinked} {
		m.keptByReason[r] = m.kept.WithLabelValues(r)
	}
	m.droppedSpans = m.telemetry.WithLabelValues(SignalSpans)
	m.droppedLogs = m.telemetry.WithLabelValues(SignalLogs)
	m.droppedMetrics = m.telemetry.WithLabelValues(SignalMetrics)
	if reg == nil {
		return m, nil
	}
	var err error
	for _, c := range []prometheus.Collector{m.kept, m.dropped, m.telemetry, m.sdkErrors} {
		err = errors.Join(err, reg.Register(c))
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// NewRegistry returns a Prometheus registry holding the Go runtime and
// process collectors and sightline_build_info{version,goversion} set to 1.
// The application registers its components' metrics with it and serves it
// at /metrics (promhttp with OpenMetrics enabled, for exemplars).
func NewRegistry(version string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "sightline_build_info",
		Help:        "Build information; the value is always 1.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	info.Set(1)
	reg.MustRegister(
		// Besides the defaults, the scheduler's latency (how long a
		// runnable goroutine waited for a thread) and the stop-the-world
		// pauses of the GC: what tells a stall of the runtime from one of
		// the node's own work.
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
			collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/sched/(latencies|pauses/total/gc):seconds$`)},
		)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		info,
	)
	return reg
}
