package telemetry

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsOverOTLP: with an OTLP endpoint configured, the registry's
// metrics are pushed through the Prometheus bridge.
func TestMetricsOverOTLP(t *testing.T) {
	got := make(chan []byte, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/metrics" {
			select {
			case got <- b:
			default:
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(srv.Close) // after the telemetry shutdown, which flushes
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	reg := NewRegistry("test")
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "sightline_test_pushed_total", Help: "A counter to find in the push."})
	reg.MustRegister(c)
	c.Add(3)
	newTest(t, Config{Exporter: ExporterOTLP, Registerer: prometheus.NewRegistry(), Gatherer: reg, MetricsInterval: 50 * time.Millisecond})
	deadline := time.After(10 * time.Second)
	for {
		select {
		case b := <-got:
			if bytes.Contains(b, []byte("sightline_test_pushed_total")) {
				return
			}
		case <-deadline:
			t.Fatal("no OTLP metrics push carrying sightline_test_pushed_total within 10s")
		}
	}
}
