package stacktest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// collectorConfig is the shipped collector configuration, relative to the
// repository root.
const collectorConfig = "deploy/otel-collector/config.yaml"

// otelcolFromEnv returns the collector binary named by
// SIGHTLINE_TEST_OTELCOL, or skips t.
func otelcolFromEnv(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("SIGHTLINE_TEST_OTELCOL")
	if bin == "" {
		t.Skip("SIGHTLINE_TEST_OTELCOL unset (scripts/test builds the collector of deploy/otel-collector/builder.yaml and sets it)")
	}
	return bin
}

// collector is a running collector with the shipped configuration.
type collector struct {
	*proc
	grpc, http string // OTLP receivers, host:port
	prom       string // Prometheus exporter, host:port
}

// startCollector runs the collector binary with the shipped config, every
// address on a free port of 127.0.0.1: traces go to jaegerOTLP and logs to
// logsEndpoint (an OTLP/HTTP base URL; "" means a closed port). It waits
// until the collector reports its own metrics and its gRPC receiver
// accepts connections.
func startCollector(t *testing.T, bin, jaegerOTLP, logsEndpoint string) *collector {
	t.Helper()
	if jaegerOTLP == "" {
		jaegerOTLP = freeAddr(t)
	}
	if logsEndpoint == "" {
		logsEndpoint = "http://" + freeAddr(t)
	}
	c := &collector{grpc: freeAddr(t), http: freeAddr(t), prom: freeAddr(t)}
	metrics := freeAddr(t)
	_, metricsPort, _ := strings.Cut(metrics, ":")
	env := []string{
		"SIGHTLINE_OTLP_GRPC=" + c.grpc,
		"SIGHTLINE_OTLP_HTTP=" + c.http,
		"JAEGER_OTLP_ENDPOINT=" + jaegerOTLP,
		"LOGS_OTLP_ENDPOINT=" + logsEndpoint,
		"SIGHTLINE_PROM_EXPORTER=" + c.prom,
		"SIGHTLINE_OTELCOL_METRICS_PORT=" + metricsPort,
	}
	c.proc = startProc(t, "otelcol", bin, env, "--config", filepath.Join(repoRoot(t), collectorConfig))
	waitUntil(t, c.proc, 60*time.Second, func() (bool, string) { return httpOK("http://" + metrics + "/metrics") })
	waitUntil(t, c.proc, 30*time.Second, func() (bool, string) {
		conn, err := net.DialTimeout("tcp", c.grpc, time.Second)
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	})
	return c
}

// nodeEnv is the environment of a node exporting traces, logs and metrics
// to c over OTLP gRPC as service.
func (c *collector) nodeEnv(service string) []string {
	return []string{
		"OTEL_SERVICE_NAME=" + service,
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + c.grpc,
		"OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_EXPORTER_OTLP_INSECURE=true",
	}
}

// TestCollectorConfigValid validates the shipped config with the built
// collector (`validate`), and shows the check can fail: a copy with a
// mistyped tail-sampling field (percentage for sampling_percentage) is
// refused, naming the field.
func TestCollectorConfigValid(t *testing.T) {
	bin := otelcolFromEnv(t)
	cfg := filepath.Join(repoRoot(t), collectorConfig)
	if out, err := exec.Command(bin, "validate", "--config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("otelcol validate --config %s: %v\n%s", collectorConfig, err, out)
	}

	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(b), "sampling_percentage:", "percentage:", 1)
	if broken == string(b) {
		t.Fatalf("%s has no sampling_percentage to mistype", collectorConfig)
	}
	brokenPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(brokenPath, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "validate", "--config", brokenPath).CombinedOutput()
	if err == nil {
		t.Fatalf("otelcol validate accepted a config with sampling_percentage mistyped:\n%s", out)
	}
	if !strings.Contains(string(out), "invalid keys: percentage") {
		t.Errorf("otelcol validate of the mistyped config: %v, the output does not name the field:\n%s", err, out)
	}
}

// samplingConfig is the part of the shipped tail sampling configuration
// the tests check against.
type samplingConfig struct {
	baselineShare float64       // probabilistic policy, as a ratio
	slow          time.Duration // latency policy threshold
	decisionWait  time.Duration
}

// shippedSampling reads the tail sampling settings of the shipped config.
// It fails t when the config has a hash_salt (the tests predict the
// baseline policy with the default salt) or lacks a setting.
func shippedSampling(t *testing.T) samplingConfig {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), collectorConfig))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if strings.Contains(s, "hash_salt") {
		t.Fatalf("%s sets hash_salt: teach baselineKeeps the salt", collectorConfig)
	}
	find := func(re string) float64 {
		m := regexp.MustCompile(re).FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("%s: no match for %s", collectorConfig, re)
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatalf("%s: %s: %v", collectorConfig, re, err)
		}
		return v
	}
	wait, err := time.ParseDuration(regexp.MustCompile(`(?m)^\s*decision_wait:\s*(\S+)`).FindStringSubmatch(s + "\ndecision_wait: missing")[1])
	if err != nil {
		t.Fatalf("%s: decision_wait: %v", collectorConfig, err)
	}
	return samplingConfig{
		baselineShare: find(`(?m)^\s*sampling_percentage:\s*([0-9.]+)`) / 100,
		slow:          time.Duration(find(`(?m)^\s*threshold_ms:\s*([0-9]+)`)) * time.Millisecond,
		decisionWait:  wait,
	}
}
