package telemetry

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// closedPort returns a loopback address nobody listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// hangingListener accepts connections and never reads or answers.
func hangingListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func TestTelemetryOutage(t *testing.T) {
	const spans = 10_000
	for _, protocol := range []string{ProtocolGRPC, ProtocolHTTP} {
		for _, endpoint := range []struct {
			name string
			addr func(*testing.T) string
		}{{"closed port", closedPort}, {"accepts then hangs", hangingListener}} {
			t.Run(protocol+"/"+endpoint.name, func(t *testing.T) {
				t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+endpoint.addr(t))
				t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
				tel, err := Setup(context.Background(), Config{
					SampleRatio: 1, Exporter: ExporterOTLP, Protocol: protocol,
					MaxQueue: 256, ExportTimeout: 300 * time.Millisecond, BatchTimeout: 50 * time.Millisecond,
					LogWriter: &syncBuffer{}, PseudonymKey: []byte("k"),
				})
				if err != nil {
					t.Fatalf("Setup() error = %v", err)
				}
				tr := tel.TracerProvider().Tracer("test")
				start := time.Now()
				for range spans {
					_, s := tr.Start(context.Background(), "GET /v1/recommendations")
					s.End()
				}
				// Generous: ending a span costs microseconds; a blocked
				// export would cost the export timeout per batch.
				if elapsed := time.Since(start); elapsed > 5*time.Second {
					t.Errorf("ending %d spans took %v, want < 5s", spans, elapsed)
				}
				if got := counter(tel.m.droppedSpans); got < spans/2 {
					t.Errorf("dropped spans before shutdown = %v, want >= %v", got, spans/2)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				shutStart := time.Now()
				_ = tel.Shutdown(ctx) // may report the export failure
				if elapsed := time.Since(shutStart); elapsed > 3500*time.Millisecond {
					t.Errorf("Shutdown took %v, want bounded by its context", elapsed)
				}
				if got := counter(tel.m.droppedSpans); got != spans {
					t.Errorf("dropped spans after shutdown = %v, want %v (none can be delivered)", got, spans)
				}
				if got := tel.Flight().Len(); got != spans {
					t.Errorf("Flight().Len() = %d, want %d (the recorder does not depend on the exporter)", got, spans)
				}
			})
		}
	}
}
