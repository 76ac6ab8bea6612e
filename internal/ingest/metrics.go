package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds the log's instruments.
type metrics struct {
	appended      prometheus.Counter
	duplicates    prometheus.Counter
	corrupt       prometheus.Counter
	handlerErrors *prometheus.CounterVec
	fsync         prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sightline_ingest_appended_total",
			Help: "Events appended to the event log.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sightline_ingest_duplicates_total",
			Help: "Events skipped by Append because their event_id was already in the log.",
		}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sightline_ingest_corrupt_records_total",
			Help: "Corrupt or torn records found in the event log (skipped or truncated).",
		}),
		handlerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_ingest_handler_errors_total",
			Help: "Failed Handle calls of a consumer; the batch is retried.",
		}, []string{"consumer"}),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sightline_ingest_fsync_duration_seconds",
			Help:    "Duration of fsyncs of the event log.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
	}
}

// register registers the metrics and the lag collector of l with reg. On
// error it unregisters what it registered.
func (m *metrics) register(reg prometheus.Registerer, l *Log) error {
	if reg == nil {
		return nil
	}
	cs := []prometheus.Collector{m.appended, m.duplicates, m.corrupt, m.handlerErrors, m.fsync, &lagCollector{l: l}}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return err
		}
	}
	return nil
}

var (
	queueDepthDesc = prometheus.NewDesc("sightline_ingest_queue_depth",
		"Records in the event log not yet processed by the consumer.", []string{"consumer"}, nil)
	lagSecondsDesc = prometheus.NewDesc("sightline_ingest_lag_seconds",
		"Age of the oldest record not yet processed by the consumer (0 when caught up).", []string{"consumer"}, nil)
)

// lagCollector reports the queue depth and lag of every consumer that ran
// on the log, computed at scrape time.
type lagCollector struct{ l *Log }

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- lagSecondsDesc
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	for _, name := range c.l.consumerNames() {
		n, age := c.l.Lag(name)
		ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(n), name)
		ch <- prometheus.MustNewConstMetric(lagSecondsDesc, prometheus.GaugeValue, age.Seconds(), name)
	}
}
