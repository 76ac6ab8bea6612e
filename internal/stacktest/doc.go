// Package stacktest is the integration test of the standard stack that
// ships in deploy/ (issue 13): the OpenTelemetry Collector with its tail
// sampling, a real log store receiving the node's logs over OTLP, and the
// container image. It has no production code.
//
// Its tests build the sightline binary and run it as a process beside real
// servers. scripts/test provides them through environment variables; each
// test skips only when its variables are unset:
//
//   - SIGHTLINE_TEST_OTELCOL: the collector binary built from
//     deploy/otel-collector/builder.yaml. The tests start it themselves
//     with deploy/otel-collector/config.yaml, on ports of their own.
//   - SIGHTLINE_TEST_JAEGER_OTLP and SIGHTLINE_TEST_JAEGER_QUERY: a running
//     Jaeger (OTLP gRPC host:port, query API base URL), the collector's
//     trace backend.
//   - SIGHTLINE_TEST_VICTORIALOGS: the base URL of a running VictoriaLogs,
//     the log store (a stand-in for Loki, which cannot run here).
//   - SIGHTLINE_TEST_IMAGE: the image built from the Containerfile, saved
//     as a docker-archive (podman save); containers cannot run here, so
//     the test unpacks its layers and runs the binary from them.
//   - SIGHTLINE_TEST_PROMTOOL: promtool, for the compose example's
//     Prometheus configuration.
//
// The compose example (deploy/compose) cannot run here either; it is
// checked statically, against the flags the built binary has and the files
// of the repository.
//
// Every test uses a service name of its own, so servers shared by the
// whole run (Jaeger, VictoriaLogs) show it only its own data.
package stacktest
