package telemetry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

func TestSetupRejectsBadConfig(t *testing.T) {
	tests := []Config{
		{SampleRatio: 1.5},
		{Exporter: "zipkin"},
		{Exporter: ExporterOTLP, Protocol: "http/json"},
		{MaxQueue: -1},
	}
	for _, cfg := range tests {
		if _, err := Setup(context.Background(), cfg); !errors.Is(err, ErrBadConfig) {
			t.Errorf("Setup(%+v) error = %v, want ErrBadConfig", cfg, err)
		}
	}
}

func TestSetupRegistersCounters(t *testing.T) {
	reg := prometheus.NewRegistry()
	newTest(t, Config{Registerer: reg})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, mf := range mfs {
		got[mf.GetName()] = len(mf.GetMetric())
	}
	want := map[string]int{"sightline_traces_kept_total": 5, "sightline_traces_dropped_total": 1, "sightline_telemetry_dropped_total": 3}
	for name, n := range want {
		if got[name] != n {
			t.Errorf("gathered %s with %d series, want %d", name, got[name], n)
		}
	}
	// A second Setup on the same registry reports the conflict.
	if _, err := Setup(context.Background(), Config{Registerer: reg, LogWriter: io.Discard}); err == nil {
		t.Errorf("second Setup on one registry error = nil, want AlreadyRegistered")
	}
}

func TestShutdownIdempotent(t *testing.T) {
	tel, err := Setup(context.Background(), Config{Exporter: ExporterStdout, LogWriter: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := tel.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown() #%d = %v, want nil", i+1, err)
		}
	}
	// Spans and logs after shutdown are harmless.
	_, s := tel.TracerProvider().Tracer("t").Start(context.Background(), "late")
	s.End()
	tel.Logger().Info("late")
}

func TestNewRegistry(t *testing.T) {
	mfs, err := NewRegistry("1.2.3").Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		if mf.GetName() != "sightline_build_info" {
			continue
		}
		labels := map[string]string{}
		for _, l := range mf.GetMetric()[0].GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["version"] != "1.2.3" || labels["goversion"] != runtime.Version() {
			t.Errorf("sightline_build_info labels = %v, want version 1.2.3 and goversion %s", labels, runtime.Version())
		}
		if v := mf.GetMetric()[0].GetGauge().GetValue(); v != 1 {
			t.Errorf("sightline_build_info = %v, want 1", v)
		}
	}
	for _, n := range []string{"sightline_build_info", "go_goroutines", "process_cpu_seconds_total", "go_sched_latencies_seconds", "go_sched_pauses_total_gc_seconds"} {
		if !names[n] {
			t.Errorf("NewRegistry().Gather() lacks %s", n)
		}
	}
}

// benchRequest ends a root with two children.
func benchRequest(tr trace.Tracer, fail bool) {
	ctx, root := tr.Start(context.Background(), "GET /v1/recommendations")
	for _, n := range []string{"FeatureFetch", "ModelInference"} {
		_, s := tr.Start(ctx, n)
		s.End()
	}
	if fail {
		root.SetAttributes(fallbackAttrKV)
	}
	root.End()
}

var fallbackAttrKV = attributeFallback()

func BenchmarkSpan(b *testing.B) {
	for _, bc := range []struct {
		name  string
		ratio float64
		fail  bool
		off   bool
	}{
		{"off", 0, false, true},
		{"dropped", -1, false, false},
		{"kept-sampled", 1, false, false},
		{"kept-fallback", -1, true, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tr := trace.Tracer(noop.NewTracerProvider().Tracer("bench"))
			if !bc.off {
				tr = newTest(b, Config{SampleRatio: bc.ratio, FlightTraces: 1000}).TracerProvider().Tracer("bench")
			}
			b.ReportAllocs()
			for b.Loop() {
				benchRequest(tr, bc.fail)
			}
		})
	}
}

func BenchmarkLogLine(b *testing.B) {
	ctx := context.Background()
	b.Run("plain-json", func(b *testing.B) {
		// The baseline is JSON encoding itself, which slog.DiscardHandler
		// would skip.
		log := slog.New(slog.NewJSONHandler(io.Discard, nil)) //nolint:sloglint // see above
		b.ReportAllocs()
		for b.Loop() {
			log.LogAttrs(ctx, slog.LevelInfo, "recommendation served", slog.String("variant", "B"), slog.Int("items", 10), slog.Duration("took", time.Millisecond))
		}
	})
	b.Run("telemetry", func(b *testing.B) {
		tel := newTest(b, Config{SampleRatio: 1, LogWriter: io.Discard, LogQueue: 1 << 16})
		ctx, span := tel.TracerProvider().Tracer("b").Start(ctx, "x")
		defer span.End()
		log := tel.Logger()
		b.ReportAllocs()
		for b.Loop() {
			log.LogAttrs(ctx, slog.LevelInfo, "recommendation served", slog.String("variant", "B"), slog.Int("items", 10), slog.Duration("took", time.Millisecond))
		}
	})
}
