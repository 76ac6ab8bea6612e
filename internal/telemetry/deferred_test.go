package telemetry

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// TestDeferredServer checks when the deferred server span is recorded, and
// that a span made after the fact has the ids its children and logs saw.
func TestDeferredServer(t *testing.T) {
	tests := []struct {
		name        string
		ratio       float64
		noTail      bool
		traceparent string
		status      int
		sleep       time.Duration
		child       bool // the handler records a child span with a fallback
		reason      string
	}{
		{name: "unsampled, healthy: nothing recorded", ratio: -1, status: 200},
		{name: "unsampled, 4xx: nothing recorded", ratio: -1, status: 422},
		{name: "unsampled, fallback under it: kept whole", ratio: -1, status: 200, child: true, reason: ReasonFallback},
		{name: "unsampled, 5xx: kept", ratio: -1, status: 503, reason: ReasonError},
		{name: "unsampled, slow: kept", ratio: -1, status: 200, sleep: 300 * time.Millisecond, reason: ReasonSlow},
		{name: "head-sampled: live span", ratio: 1, status: 200, reason: ReasonSampled},
		{name: "sampled remote parent: live span", ratio: -1, status: 200, reason: ReasonSampled,
			traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{name: "unsampled remote parent, fallback: kept under it", ratio: -1, status: 200, child: true, reason: ReasonFallback,
			traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
		{name: "tail retention off, 5xx: nothing recorded", ratio: -1, noTail: true, status: 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tel := newTest(t, Config{SampleRatio: tt.ratio, DisableTailRetention: tt.noTail, SlowThreshold: 250 * time.Millisecond})
			var seen trace.SpanContext
			var childParent trace.SpanID
			h := tel.DeferredServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = trace.SpanContextFromContext(r.Context())
				if tt.child {
					_, c := tel.TracerProvider().Tracer("test").Start(r.Context(), "GenerateRecommendations",
						trace.WithAttributes(attribute.String(FallbackAttr, "missing_features")))
					childParent = c.(interface{ Parent() trace.SpanContext }).Parent().SpanID()
					c.End()
				}
				time.Sleep(tt.sleep)
				w.WriteHeader(tt.status)
			}))
			mux := http.NewServeMux()
			mux.Handle("POST /v1/recommendations", h)
			req := httptest.NewRequest(http.MethodPost, "/v1/recommendations", strings.NewReader("{}"))
			if tt.traceparent != "" {
				req.Header.Set("traceparent", tt.traceparent)
			}
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d", rec.Code, tt.status)
			}
			if !seen.IsValid() {
				t.Fatal("the handler saw no valid span context: logs would lack trace ids")
			}
			if tt.traceparent != "" && seen.TraceID().String() != tt.traceparent[3:35] {
				t.Errorf("trace id %s, want the remote parent's %s", seen.TraceID(), tt.traceparent[3:35])
			}
			wantDropped := 0.0
			if tt.reason == "" && !tt.noTail {
				wantDropped = 1
			}
			if got := counter(tel.m.dropped); got != wantDropped {
				t.Errorf("traces_dropped_total = %v, want %v", got, wantDropped)
			}
			tv, ok := tel.Flight().Trace(seen.TraceID().String())
			if kept := tt.reason != ""; ok != kept {
				t.Fatalf("trace %s kept = %v, want %v", seen.TraceID(), ok, kept)
			}
			if !ok {
				return
			}
			if tv.Reasons[0] != tt.reason {
				t.Errorf("reasons %v, want first %q", tv.Reasons, tt.reason)
			}
			var server *SpanView
			for i := range tv.Spans {
				if tv.Spans[i].Name == "POST /v1/recommendations" {
					server = &tv.Spans[i]
				}
			}
			if server == nil {
				t.Fatalf("kept trace has no server span: %+v", tv.Spans)
			}
			if server.SpanID != seen.SpanID().String() {
				t.Errorf("server span id %s, want %s, the id the handler's logs carried", server.SpanID, seen.SpanID())
			}
			if tt.child && childParent.String() != server.SpanID {
				t.Errorf("child's parent %s, want the server span %s", childParent, server.SpanID)
			}
			if tt.traceparent != "" && server.ParentSpanID != tt.traceparent[36:52] {
				t.Errorf("server parent %s, want the remote span %s", server.ParentSpanID, tt.traceparent[36:52])
			}
			if got := server.Attributes["http.route"]; got != "/v1/recommendations" {
				t.Errorf("http.route = %v, want /v1/recommendations", got)
			}
			if got := server.Attributes["http.response.status_code"]; got != int64(tt.status) {
				t.Errorf("http.response.status_code = %v (%T), want %d", got, got, tt.status)
			}
			if wantErr := tt.status >= 500; wantErr != (server.Status.Code == "error") {
				t.Errorf("status %+v for a %d", server.Status, tt.status)
			}
			if server.Kind != "server" {
				t.Errorf("kind %q, want server", server.Kind)
			}
		})
	}
}

func TestStatusOf(t *testing.T) {
	rec := httptest.NewRecorder()
	sw := StatusOf(rec)
	if StatusOf(sw) != sw {
		t.Error("StatusOf(a *StatusWriter) wrapped it again")
	}
	if got := sw.Status(); got != http.StatusOK {
		t.Errorf("Status() before any write = %d, want 200", got)
	}
	sw.WriteHeader(http.StatusTeapot)
	sw.WriteHeader(http.StatusInternalServerError) // superfluous, as net/http says
	if got := sw.Status(); got != http.StatusTeapot {
		t.Errorf("Status() = %d, want the first code written, 418", got)
	}
	if http.NewResponseController(sw).Flush() != nil {
		t.Error("ResponseController cannot reach the recorder through Unwrap")
	}
}
