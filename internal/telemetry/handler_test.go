package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/trace"
)

type requestIDKey struct{}

func requestIDAttrs(ctx context.Context) []slog.Attr {
	if id, ok := ctx.Value(requestIDKey{}).(string); ok {
		return []slog.Attr{slog.String("request_id", id)}
	}
	return nil
}

// lines parses the JSON lines written to buf.
func lines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var res []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		delete(m, "time")
		res = append(res, m)
	}
	return res
}

func TestHandlerAddsTraceAndRequestIDs(t *testing.T) {
	buf := &syncBuffer{}
	tel := newTest(t, Config{SampleRatio: 1, LogWriter: buf, ContextAttrs: requestIDAttrs})
	ctx := context.WithValue(context.Background(), requestIDKey{}, "req-1")
	ctx, span := tel.TracerProvider().Tracer("test").Start(ctx, "GET /v1/recommendations")
	defer span.End()
	sc := span.SpanContext()

	log := tel.Logger()
	log.InfoContext(ctx, "served", "variant", "B")
	log.WithGroup("decision").With("user_id", "alice").WarnContext(ctx, "fallback", "reason", "model_timeout")
	log.Info("no context")

	want := []map[string]any{
		{"level": "INFO", "msg": "served", "variant": "B", "request_id": "req-1",
			"trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String(), "trace_flags": "01"},
		{"level": "WARN", "msg": "fallback", "request_id": "req-1",
			"trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String(), "trace_flags": "01",
			"decision": map[string]any{"user_id": tel.Pseudonymize("alice"), "reason": "model_timeout"}},
		{"level": "INFO", "msg": "no context"},
	}
	if diff := cmp.Diff(want, lines(t, buf.String())); diff != "" {
		t.Errorf("log lines (-want +got):\n%s", diff)
	}
}

func TestHandlerUnsampledTraceFlags(t *testing.T) {
	buf := &syncBuffer{}
	tel := newTest(t, Config{SampleRatio: -1, LogWriter: buf})
	ctx, span := tel.TracerProvider().Tracer("test").Start(context.Background(), "x")
	defer span.End()
	tel.Logger().InfoContext(ctx, "m")
	got := lines(t, buf.String())[0]
	if got["trace_flags"] != "00" || got["trace_id"] != span.SpanContext().TraceID().String() {
		t.Errorf("unsampled line = %v, want trace_flags 00 and the trace id", got)
	}
}

func TestHandlerRedacts(t *testing.T) {
	buf := &syncBuffer{}
	tel := newTest(t, Config{LogWriter: buf})
	log := tel.Logger().With("email", "alice@example.com", slog.Group("client", "ip", "10.0.0.1"))
	log.Error("lookup failed for bob@example.com",
		"user_id", "alice",
		"err", errors.New("dial 192.168.0.7:6379: refused"),
		slog.Group("profile", "phone", "+1 415 555 0100", "note", "call +1 415 555 0100"))
	out := buf.String()
	for _, raw := range []string{"alice@example.com", "bob@example.com", "10.0.0.1", "192.168.0.7", "555 0100", `"alice"`} {
		if strings.Contains(out, raw) {
			t.Errorf("log output contains %q:\n%s", raw, out)
		}
	}
	want := []map[string]any{{
		"level": "ERROR", "msg": "lookup failed for [email]",
		"email": Redacted, "client": map[string]any{"ip": Redacted},
		"user_id": tel.Pseudonymize("alice"), "err": "dial [ip]:6379: refused",
		"profile": map[string]any{"phone": Redacted, "note": "call [phone]"},
	}}
	if diff := cmp.Diff(want, lines(t, out)); diff != "" {
		t.Errorf("redacted line (-want +got):\n%s", diff)
	}
}

func TestHandlerTeesIntoLogStore(t *testing.T) {
	tel := newTest(t, Config{SampleRatio: 1, ContextAttrs: requestIDAttrs, LogLevel: slog.LevelDebug})
	tr := tel.TracerProvider().Tracer("test")
	ctx1, s1 := tr.Start(context.WithValue(context.Background(), requestIDKey{}, "req-1"), "a")
	ctx2, s2 := tr.Start(context.WithValue(context.Background(), requestIDKey{}, "req-2"), "b")
	log := tel.Logger()
	log.DebugContext(ctx1, "one")
	log.WarnContext(ctx2, "two")
	log.ErrorContext(ctx1, "three", "email", "x@y.z")
	s1.End()
	s2.End()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tel.syncLogs(ctx); err != nil {
		t.Fatal(err)
	}
	got := tel.Logs().Query(LogFilter{TraceID: s1.SpanContext().TraceID().String()})
	var msgs []string
	for _, l := range got {
		msgs = append(msgs, l.Msg)
		if l.RequestID != "req-1" || l.SpanID != s1.SpanContext().SpanID().String() {
			t.Errorf("line %q indexed as request %q span %q, want req-1 and span of s1", l.Msg, l.RequestID, l.SpanID)
		}
	}
	if diff := cmp.Diff([]string{"three", "one"}, msgs); diff != "" {
		t.Errorf("Logs().Query(trace of s1) (-want +got):\n%s", diff)
	}
	if strings.Contains(string(got[0].Record), "x@y.z") {
		t.Errorf("stored line not redacted: %s", got[0].Record)
	}
}

func TestHandlerLogDropsCounted(t *testing.T) {
	tel := newTest(t, Config{LogQueue: 4})
	// After Shutdown nothing drains the queue: the fifth line onwards must
	// be dropped, not block.
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		tel.Logger().Info("x")
	}
	if got := counter(tel.m.droppedLogs); got != 6 {
		t.Errorf("telemetry_dropped_total{signal=logs} = %v, want 6", got)
	}
}

func TestHandlerSpanContextFromRemoteParent(t *testing.T) {
	buf := &syncBuffer{}
	tel := newTest(t, Config{LogWriter: buf})
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0xab}, SpanID: trace.SpanID{0xcd}, Remote: true})
	tel.Logger().InfoContext(trace.ContextWithRemoteSpanContext(context.Background(), sc), "m")
	got := lines(t, buf.String())[0]
	if got["trace_id"] != sc.TraceID().String() || got["span_id"] != sc.SpanID().String() {
		t.Errorf("line = %v, want ids of the remote span context", got)
	}
}
