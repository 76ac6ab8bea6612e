package telemetry

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	promBridge "go.opentelemetry.io/contrib/bridges/prometheus"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Errors returned by this package.
var (
	// ErrBadConfig means a [Config] field has an invalid value.
	ErrBadConfig = errors.New("telemetry: invalid config")
	// ErrBadFilter means a trace or log query parameter is invalid.
	ErrBadFilter = errors.New("telemetry: invalid filter")
	// ErrNoPseudonymKey means [NewRedactor] was given an empty key.
	ErrNoPseudonymKey = errors.New("telemetry: empty pseudonym key")
)

// Exporter names for [Config].Exporter.
const (
	ExporterNone   = "none"
	ExporterOTLP   = "otlp"
	ExporterStdout = "stdout"
)

// OTLP protocols for [Config].Protocol.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// Config configures [Setup]. The zero value is valid: every zero field
// means the documented default.
type Config struct {
	// ServiceName is the service.name resource attribute; "" means
	// "sightline". OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override
	// it.
	ServiceName string
	// ServiceVersion is the service.version resource attribute.
	ServiceVersion string
	// SampleRatio is the head sampling ratio in [0, 1]; 0 means the default
	// 0.01 and a negative value means 0 (tail retention only).
	SampleRatio float64
	// DisableTailRetention turns tail retention off: only head-sampled
	// traces are recorded, and traces with errors, fallbacks or slow
	// requests are not kept unless sampled. For measuring what telemetry
	// costs; the zero value keeps tail retention on.
	DisableTailRetention bool
	// SlowThreshold keeps every trace whose local root lasts at least this
	// long; 0 means 50ms and a negative value disables the rule.
	SlowThreshold time.Duration
	// Exporter is where kept spans go besides the flight recorder: "none"
	// (or ""), "otlp" or "stdout".
	Exporter string
	// Protocol is the OTLP protocol, "grpc" or "http/protobuf"; "" means
	// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, then OTEL_EXPORTER_OTLP_PROTOCOL,
	// then grpc. Endpoint, headers, TLS and timeout come from the standard
	// OTEL_EXPORTER_OTLP_* variables.
	Protocol string
	// MaxQueue is the capacity of the export queue in spans; a full queue
	// drops and counts. 0 means 2048.
	MaxQueue int
	// ExportTimeout bounds one export call; 0 means 10s.
	ExportTimeout time.Duration
	// BatchTimeout is the longest a queued span waits for its batch; 0
	// means 5s.
	BatchTimeout time.Duration
	// MaxInflightTraces bounds the traces buffered while their root is
	// open; the oldest is evicted (its spans dropped and counted). 0 means
	// 4096.
	MaxInflightTraces int
	// MaxSpansPerTrace bounds the spans buffered and stored per trace; 0
	// means 512.
	MaxSpansPerTrace int
	// FlightTraces is the number of kept traces held in memory; 0 means
	// 10,000.
	FlightTraces int
	// LogRecords is the number of log lines held in memory; 0 means
	// 100,000.
	LogRecords int
	// LogQueue is the capacity of the queue from the log handler to the
	// log store; a full queue drops and counts. 0 means 4096.
	LogQueue int
	// PseudonymKey is the key of the user id pseudonyms. Empty means a
	// random key per process: pseudonyms are then stable only until
	// restart.
	PseudonymKey []byte
	// LogWriter receives the JSON log lines; nil means os.Stdout.
	LogWriter io.Writer
	// LogLevel is the minimum log level; nil means INFO.
	LogLevel slog.Leveler
	// ContextAttrs, if set, adds top-level attributes to every log record
	// from its context (the app adds request_id).
	ContextAttrs func(ctx context.Context) []slog.Attr
	// Registerer receives this package's counters; nil means they are not
	// registered.
	Registerer prometheus.Registerer
	// Gatherer, if set, is the metric registry pushed over OTLP every
	// MetricsInterval when Exporter is "otlp" and an OTLP endpoint is
	// configured (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT or _ENDPOINT), through
	// the OpenTelemetry Prometheus bridge. /metrics serves it regardless.
	Gatherer prometheus.Gatherer
	// MetricsInterval is the OTLP metrics push period; 0 means 30s.
	MetricsInterval time.Duration
	// ExportFault, if set and returning true, makes every kept span fail to
	// export (dropped and counted, as when the collector is unreachable):
	// the telemetry-outage drill switches it on. The flight recorder still
	// receives the spans.
	ExportFault func() bool
}

// resolved returns cfg with defaults applied, or an error.
func (c Config) resolved() (Config, error) {
	if c.ServiceName == "" {
		c.ServiceName = "sightline"
	}
	switch {
	case c.SampleRatio == 0:
		c.SampleRatio = 0.01
	case c.SampleRatio < 0:
		c.SampleRatio = 0
	case c.SampleRatio > 1:
		return c, fmt.Errorf("%w: sample ratio %v above 1", ErrBadConfig, c.SampleRatio)
	}
	if c.SlowThreshold == 0 {
		c.SlowThreshold = 50 * time.Millisecond
	}
	switch c.Exporter {
	case "":
		c.Exporter = ExporterNone
	case ExporterNone, ExporterOTLP, ExporterStdout:
	default:
		return c, fmt.Errorf("%w: exporter %q", ErrBadConfig, c.Exporter)
	}
	if c.Protocol == "" {
		c.Protocol = firstEnv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch c.Protocol {
	case "":
		c.Protocol = ProtocolGRPC
	case ProtocolGRPC, ProtocolHTTP:
	default:
		return c, fmt.Errorf("%w: otlp protocol %q", ErrBadConfig, c.Protocol)
	}
	for _, p := range []struct {
		v   *int
		def int
	}{{&c.MaxQueue, 2048}, {&c.MaxInflightTraces, 4096}, {&c.MaxSpansPerTrace, 512},
		{&c.FlightTraces, 10_000}, {&c.LogRecords, 100_000}, {&c.LogQueue, 4096}} {
		if *p.v < 0 {
			return c, fmt.Errorf("%w: negative limit", ErrBadConfig)
		}
		if *p.v == 0 {
			*p.v = p.def
		}
	}
	if c.ExportTimeout <= 0 {
		c.ExportTimeout = 10 * time.Second
	}
	if c.BatchTimeout <= 0 {
		c.BatchTimeout = 5 * time.Second
	}
	if c.LogWriter == nil {
		c.LogWriter = os.Stdout
	}
	return c, nil
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(os.Getenv(n)); v != "" {
			return v
		}
	}
	return ""
}

// Telemetry holds the tracer provider, logger and in-process stores built
// by [Setup]. All methods are safe for concurrent use.
type Telemetry struct {
	cfg      Config
	m        *metrics
	redactor *Redactor
	tp       *sdktrace.TracerProvider
	tail     *tailProcessor
	batcher  *batcher // nil when Exporter is "none"
	flight   *FlightRecorder
	logs     *LogStore
	logger   *slog.Logger
	prop     propagation.TextMapPropagator
	lp       *sdklog.LoggerProvider   // nil unless logs go to OTLP
	mp       *sdkmetric.MeterProvider // nil unless metrics go to OTLP

	logQ    chan logItem
	logStop chan struct{}
	logDone chan struct{}

	once        sync.Once
	shutdownErr error
}

// logItem is a line for the log store, or a barrier when sync is set.
type logItem struct {
	line []byte
	sync chan struct{}
}

// Setup builds the telemetry of one process from cfg. It starts the export
// and log store goroutines; call [Telemetry.Shutdown] to stop them. It
// does not connect to anything: an unreachable OTLP endpoint only shows as
// dropped spans.
func Setup(ctx context.Context, cfg Config) (*Telemetry, error) {
	cfg, err := cfg.resolved()
	if err != nil {
		return nil, err
	}
	t := &Telemetry{cfg: cfg}
	if t.m, err = newMetrics(cfg.Registerer); err != nil {
		return nil, fmt.Errorf("register telemetry metrics: %w", err)
	}
	key := cfg.PseudonymKey
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key) // never fails on supported platforms
	}
	if t.redactor, err = NewRedactor(key); err != nil {
		return nil, err
	}
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(
			attribute.String("service.name", cfg.ServiceName),
			attribute.String("service.version", cfg.ServiceVersion),
		),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("build resource: %w", err)
	}

	exp, err := newSpanExporter(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if exp != nil {
		t.batcher = newBatcher(exp, cfg.MaxQueue, 512, cfg.BatchTimeout, cfg.ExportTimeout, t.m.droppedSpans)
	}
	t.flight = NewFlightRecorder(cfg.FlightTraces, cfg.MaxSpansPerTrace)
	t.tail = newTailProcessor(tailConfig{
		slow:        cfg.SlowThreshold,
		maxInflight: cfg.MaxInflightTraces,
		maxSpans:    cfg.MaxSpansPerTrace,
		maxDecided:  4 * cfg.MaxInflightTraces,
	}, t.redactor, t, t.m)
	t.tp = sdktrace.NewTracerProvider(
		sdktrace.WithSampler(newSampler(cfg.SampleRatio, !cfg.DisableTailRetention)),
		sdktrace.WithIDGenerator(idGenerator{}),
		sdktrace.WithResource(res),
		sdktrace.WithSpanProcessor(t.tail),
	)
	t.prop = NewPropagator()

	var extra slog.Handler
	if cfg.Exporter == ExporterOTLP && firstEnv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT") != "" {
		// Logs follow the logs protocol variable, then the general one, as
		// traces do: a gRPC-only collector must not receive HTTP.
		var lexp sdklog.Exporter
		var err error
		switch firstEnv("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL") {
		case ProtocolHTTP:
			lexp, err = otlploghttp.New(ctx)
		default:
			lexp, err = otlploggrpc.New(ctx)
		}
		if err == nil {
			t.lp = sdklog.NewLoggerProvider(
				sdklog.WithResource(res),
				sdklog.WithProcessor(sdklog.NewBatchProcessor(lexp, sdklog.WithExportTimeout(cfg.ExportTimeout))),
			)
			extra = otelslog.NewHandler("github.com/sightline/sightline", otelslog.WithLoggerProvider(t.lp))
		}
		// Best effort: without the exporter logs still go to LogWriter.
	}

	if cfg.Exporter == ExporterOTLP && cfg.Gatherer != nil && firstEnv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT") != "" {
		var mexp sdkmetric.Exporter
		var err error
		switch firstEnv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL") {
		case ProtocolHTTP:
			mexp, err = otlpmetrichttp.New(ctx)
		default:
			mexp, err = otlpmetricgrpc.New(ctx)
		}
		if err == nil {
			interval := cfg.MetricsInterval
			if interval <= 0 {
				interval = 30 * time.Second
			}
			reader := sdkmetric.NewPeriodicReader(mexp,
				sdkmetric.WithInterval(interval),
				sdkmetric.WithTimeout(cfg.ExportTimeout),
				sdkmetric.WithProducer(promBridge.NewMetricProducer(promBridge.WithGatherer(cfg.Gatherer))))
			t.mp = sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(reader))
		}
		// Best effort: /metrics still serves every metric.
	}

	t.logs = NewLogStore(cfg.LogRecords)
	t.logQ = make(chan logItem, cfg.LogQueue)
	t.logStop = make(chan struct{})
	t.logDone = make(chan struct{})
	go t.runLogStore()
	t.logger = slog.New(NewHandler(cfg.LogWriter, HandlerOptions{
		Level:        cfg.LogLevel,
		ContextAttrs: cfg.ContextAttrs,
		Redactor:     t.redactor,
		Tee:          t.teeLine,
		Extra:        extra,
	}))
	return t, nil
}

// newSpanExporter returns the exporter for cfg, or nil for "none".
func newSpanExporter(ctx context.Context, cfg Config) (sdktrace.SpanExporter, error) {
	var exp sdktrace.SpanExporter
	var err error
	switch cfg.Exporter {
	case ExporterNone:
		return nil, nil
	case ExporterStdout:
		exp, err = stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
	case ExporterOTLP:
		if cfg.Protocol == ProtocolHTTP {
			exp, err = otlptracehttp.New(ctx, otlptracehttp.WithTimeout(cfg.ExportTimeout))
		} else {
			exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithTimeout(cfg.ExportTimeout))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create %s span exporter: %w", cfg.Exporter, err)
	}
	return exp, nil
}

// keep receives the redacted spans of kept traces from the tail processor.
func (t *Telemetry) keep(spans []sdktrace.ReadOnlySpan, reasons []string) {
	t.flight.Record(spans, reasons)
	if t.cfg.ExportFault != nil && t.cfg.ExportFault() {
		t.m.droppedSpans.Add(float64(len(spans)))
		return
	}
	if t.batcher != nil {
		t.batcher.enqueue(spans)
	}
}

// teeLine copies a written log line to the log store queue without
// blocking.
func (t *Telemetry) teeLine(p []byte) {
	select {
	case t.logQ <- logItem{line: append([]byte(nil), p...)}:
	default:
		t.m.droppedLogs.Inc()
	}
}

func (t *Telemetry) runLogStore() {
	defer close(t.logDone)
	add := func(it logItem) {
		if it.sync != nil {
			close(it.sync)
			return
		}
		_ = t.logs.Add(it.line) // lines come from our JSON handler
	}
	for {
		select {
		case it := <-t.logQ:
			add(it)
		case <-t.logStop:
			for {
				select {
				case it := <-t.logQ:
					add(it)
				default:
					return
				}
			}
		}
	}
}

// syncLogs waits until every line teed before the call is in the log
// store, or ctx is done.
func (t *Telemetry) syncLogs(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case t.logQ <- logItem{sync: done}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TracerProvider returns the tracer provider to pass to every component.
func (t *Telemetry) TracerProvider() trace.TracerProvider { return t.tp }

// Propagator returns the W3C TraceContext + Baggage propagator (see
// [NewPropagator]).
func (t *Telemetry) Propagator() propagation.TextMapPropagator { return t.prop }

// Logger returns the redacting JSON logger whose lines carry trace_id,
// span_id and trace_flags and are kept in [Telemetry.Logs].
func (t *Telemetry) Logger() *slog.Logger { return t.logger }

// Flight returns the flight recorder of kept traces.
func (t *Telemetry) Flight() *FlightRecorder { return t.flight }

// Logs returns the store of recent log lines.
func (t *Telemetry) Logs() *LogStore { return t.logs }

// Redactor returns the redactor used for logs and spans.
func (t *Telemetry) Redactor() *Redactor { return t.redactor }

// Pseudonymize returns the keyed pseudonym of a user id (see
// [Redactor.Pseudonymize]); use it for sightline.user.hash.
func (t *Telemetry) Pseudonymize(userID string) string { return t.redactor.Pseudonymize(userID) }

// Shutdown ends the tracer provider (dropping traces whose root is still
// open), exports what is queued, stops the goroutines and closes the
// exporters, giving up when ctx is done. It is idempotent: later calls
// return the first call's error.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	t.once.Do(func() {
		err := t.tp.Shutdown(ctx)
		if t.batcher != nil {
			err = errors.Join(err, t.batcher.shutdown(ctx))
		}
		if t.lp != nil {
			err = errors.Join(err, t.lp.Shutdown(ctx))
		}
		if t.mp != nil {
			err = errors.Join(err, t.mp.Shutdown(ctx))
		}
		close(t.logStop)
		select {
		case <-t.logDone:
		case <-ctx.Done():
			err = errors.Join(err, ctx.Err())
		}
		t.shutdownErr = err
	})
	return t.shutdownErr
}
