// Package telemetry builds the OpenTelemetry SDK pieces, the structured
// logger and the in-process stores that the serving and event paths report
// into.
//
// Domain packages never import this package: they take a
// [go.opentelemetry.io/otel/trace.TracerProvider], a [*log/slog.Logger] and a
// [github.com/prometheus/client_golang/prometheus.Registerer] in their
// Configs. The application calls [Setup] once, wires
// [Telemetry.TracerProvider], [Telemetry.Propagator] and [Telemetry.Logger]
// into those Configs, and serves [Telemetry.Flight] and [Telemetry.Logs]
// to the console (GET /v1/traces, GET /v1/traces/{trace_id}, GET /v1/logs).
//
// What it owns:
//
//   - Sampling with tail retention. The head sampler is
//     ParentBased(TraceIDRatioBased(ratio)); spans it would drop are still
//     recorded in process, buffered per trace, and when the local root span
//     ends the whole trace is kept if it was head-sampled, any span has an
//     error status or a non-empty sightline.fallback.reason attribute, or
//     the root took at least the slow threshold. Kept traces go to the
//     [FlightRecorder] and to the configured exporter through a bounded,
//     never-blocking queue; every drop is counted in
//     sightline_telemetry_dropped_total{signal}.
//   - Redaction ([Redactor]): user ids are replaced by a keyed pseudonym,
//     PII fields removed by name, and emails, phone numbers and IP addresses
//     scrubbed from string values, in log records and span attributes alike,
//     before anything leaves the process.
//   - A slog JSON handler that adds trace_id, span_id and trace_flags from
//     the span in the context, and tees every line into the [LogStore].
//   - [NewRegistry], the Prometheus registry with Go, process and build
//     info collectors.
//
// What it leaves to others: HTTP routing and problem+json errors (the api
// package calls [ParseFilter], [ParseLogFilter] and the Query methods),
// domain metrics (each component registers its own), and reading flags.
//
// Span names, metric names and log fields are a contract described in
// DESIGN.md.
package telemetry
