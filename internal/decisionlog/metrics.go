package decisionlog

import (
	"errors"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Row kinds, the values of the kind label and the file name prefixes.
const (
	kindDecisions = "decisions"
	kindEvents    = "events"
)

// Drop reasons, the values of the reason label of
// sightline_decisionlog_dropped_total.
const (
	// reasonQueueFull: the queue was full when Record or Event was called.
	reasonQueueFull = "queue_full"
	// reasonError: the record did not decode, or the file it was written
	// to failed (its rows are lost).
	reasonError = "error"
	// reasonClosed: the writer had stopped, or could not write the row
	// within DrainTimeout of stopping.
	reasonClosed = "closed"
)

// Retention reasons, the values of the reason label of the deletion
// counters.
const (
	retainAge  = "age"
	retainSize = "size"
)

// metrics are the writer's Prometheus metrics.
type metrics struct {
	written      *prometheus.CounterVec // kind
	dropped      *prometheus.CounterVec // kind, reason
	sampledOut   *prometheus.CounterVec // kind
	filesClosed  *prometheus.CounterVec // kind
	abandoned    prometheus.Counter
	deletedFiles *prometheus.CounterVec // reason
	deletedBytes *prometheus.CounterVec // reason
	diskBytes    prometheus.Gauge
	diskFiles    prometheus.Gauge
	lastWrite    prometheus.Gauge
	all          []prometheus.Collector
}

func newMetrics(reg prometheus.Registerer, w *Writer) (*metrics, error) {
	m := &metrics{
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_decisionlog_rows_written_total",
			Help: "Rows written to the decision log's Parquet files, by kind (decisions, events).",
		}, []string{"kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_decisionlog_dropped_total",
			Help: "Decisions and events the decision log lost, by kind and reason (queue_full: the writer fell behind; error: undecodable record or failed file; closed: after shutdown).",
		}, []string{"kind", "reason"}),
		sampledOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_decisionlog_sampled_out_total",
			Help: "Decisions and events not stored because of the store ratio, by kind.",
		}, []string{"kind"}),
		filesClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_decisionlog_files_closed_total",
			Help: "Parquet files closed and made visible, by kind.",
		}, []string{"kind"}),
		abandoned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sightline_decisionlog_abandoned_files_total",
			Help: "Temporary files of a previous run (killed before it closed them) removed at start.",
		}),
		deletedFiles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_decisionlog_retention_deleted_files_total",
			Help: "Closed files deleted by retention, by reason (age, size).",
		}, []string{"reason"}),
		deletedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_decisionlog_retention_deleted_bytes_total",
			Help: "Bytes of closed files deleted by retention, by reason (age, size).",
		}, []string{"reason"}),
		diskBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sightline_decisionlog_disk_bytes",
			Help: "Bytes of the closed Parquet files under the decisions directory.",
		}),
		diskFiles: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sightline_decisionlog_disk_files",
			Help: "Closed Parquet files under the decisions directory.",
		}),
		lastWrite: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sightline_decisionlog_last_close_timestamp_seconds",
			Help: "Unix time the writer last closed a file successfully (0: none yet).",
		}),
	}
	for _, k := range []string{kindDecisions, kindEvents} {
		m.written.WithLabelValues(k)
		m.sampledOut.WithLabelValues(k)
		m.filesClosed.WithLabelValues(k)
		for _, r := range []string{reasonQueueFull, reasonError, reasonClosed} {
			m.dropped.WithLabelValues(k, r)
		}
	}
	for _, r := range []string{retainAge, retainSize} {
		m.deletedFiles.WithLabelValues(r)
		m.deletedBytes.WithLabelValues(r)
	}
	fill := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sightline_decisionlog_queue_fill_ratio",
		Help: "Share of the decision log's queue in use (1: full, new records are dropped).",
	}, func() float64 { return float64(len(w.queue)) / float64(cap(w.queue)) })
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sightline_decisionlog_queue_age_seconds",
		Help: "Age of the oldest record waiting in the decision log's queue (0 when it is empty): how far the writer is behind.",
	}, w.queueAge)
	m.all = []prometheus.Collector{
		m.written, m.dropped, m.sampledOut, m.filesClosed, m.abandoned,
		m.deletedFiles, m.deletedBytes, m.diskBytes, m.diskFiles, m.lastWrite, fill, age,
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range m.all {
		errs = append(errs, reg.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

// counts are the running totals [Writer.Stats] reports, kept beside the
// Prometheus counters so that in-process alert rules can read them.
type counts struct {
	written [2]atomic.Int64 // by kind index
	dropped [2]atomic.Int64
}

// kindIndex maps a kind to its index in counts.
func kindIndex(kind string) int {
	if kind == kindEvents {
		return 1
	}
	return 0
}
