package engine

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/sightline/sightline/internal/event"
)

// TestStageSpans checks which spans a decision records: all five for a
// head-sampled trace; for a trace recorded only for tail retention, the five
// when it will be kept (a fallback, or slower than the slow threshold) and
// only GenerateRecommendations otherwise, with stage spans made after the
// fact carrying the stages' own times, attributes and errors.
func TestStageSpans(t *testing.T) {
	all := []string{"FeatureFetch", "CandidateGeneration", "ModelInference", "BusinessRules", "GenerateRecommendations"}
	tests := []struct {
		name    string
		sampled bool
		scorer  fakeScorer
		slow    time.Duration
		want    []string
		server  bool // under a server span, as from the HTTP middleware
	}{
		{"sampled", true, fakeScorer{score: func(event.Item) float64 { return 0.1 }}, 0, all, false},
		{"tail only, healthy", false, fakeScorer{score: func(event.Item) float64 { return 0.1 }}, 0, []string{"GenerateRecommendations"}, false},
		{"tail only, fallback", false, fakeScorer{err: errors.New("weights not loaded")}, 0, all, false},
		{"tail only, slow", false, fakeScorer{score: func(event.Item) float64 { return 0.1 }}, time.Nanosecond, all, false},
		{"server, sampled", true, fakeScorer{score: func(event.Item) float64 { return 0.1 }}, 0, append(slices.Clone(all), "server"), true},
		{"server, tail only, healthy", false, fakeScorer{score: func(event.Item) float64 { return 0.1 }}, 0, []string{"server"}, true},
		{"server, tail only, fallback", false, fakeScorer{err: errors.New("weights not loaded")}, 0, append(slices.Clone(all), "server"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			sampler := sdktrace.AlwaysRecord(sdktrace.NeverSample())
			if tc.sampled {
				sampler = sdktrace.AlwaysSample()
			}
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSpanProcessor(rec))
			fs := fakeStore{users: knownUsers()}
			sc := tc.scorer
			e := newTestEngine(t, &fs, &sc, func(c *Config) {
				c.TracerProvider = tp
				if tc.slow > 0 {
					c.SlowThreshold = tc.slow
				}
				// A simulated clock, as drills use: spans made after the
				// fact must still sit on the wall clock, inside their parent.
				c.Now = func() time.Time { return time.Now().Add(-time.Hour) }
			})
			ctx := t.Context()
			var server trace.Span
			if tc.server {
				ctx, server = tp.Tracer("test").Start(ctx, "server")
			}
			d, err := e.Recommend(ctx, Request{UserID: "alice", Count: 10, Channel: "web"})
			if err != nil {
				t.Fatalf("Recommend: %v", err)
			}
			if server != nil {
				server.End()
			}
			spans := rec.Ended()
			var names []string
			byName := map[string]sdktrace.ReadOnlySpan{}
			for _, s := range spans {
				names = append(names, s.Name())
				byName[s.Name()] = s
			}
			if diff := cmp.Diff(tc.want, names); diff != "" {
				t.Fatalf("spans (-want +got):\n%s", diff)
			}
			root, ok := byName["GenerateRecommendations"]
			if !ok {
				return
			}
			if srv, ok := byName["server"]; ok {
				if root.Parent().SpanID() != srv.SpanContext().SpanID() {
					t.Errorf("GenerateRecommendations parent = %v, want the server span", root.Parent().SpanID())
				}
				if root.StartTime().Before(srv.StartTime()) || root.EndTime().After(srv.EndTime()) {
					t.Errorf("GenerateRecommendations [%v, %v] outside the server span [%v, %v]", root.StartTime(), root.EndTime(), srv.StartTime(), srv.EndTime())
				}
				if d.TraceID != srv.SpanContext().TraceID().String() {
					t.Errorf("decision trace id %s, want the server's %s", d.TraceID, srv.SpanContext().TraceID())
				}
			}
			for i, st := range d.Stages {
				s, ok := byName[stageSpanNames[st.Stage]]
				if !ok {
					continue
				}
				if s.Parent().SpanID() != root.SpanContext().SpanID() {
					t.Errorf("%s parent = %v, want GenerateRecommendations", s.Name(), s.Parent().SpanID())
				}
				if s.StartTime().Before(root.StartTime()) || s.EndTime().After(root.EndTime()) {
					t.Errorf("%s [%v, %v] outside its parent [%v, %v]", s.Name(), s.StartTime(), s.EndTime(), root.StartTime(), root.EndTime())
				}
				if i > 0 && s.StartTime().Before(byName[stageSpanNames[d.Stages[i-1].Stage]].EndTime()) {
					t.Errorf("%s starts before the previous stage ends", s.Name())
				}
				if wantErr := st.Error != ""; wantErr != (s.Status().Code == codes.Error) {
					t.Errorf("%s status %v, stage error %q", s.Name(), s.Status(), st.Error)
				}
			}
			if d.Fallback != ReasonNone {
				br := byName["BusinessRules"]
				found := false
				for _, kv := range br.Attributes() {
					if kv.Key == attrFallback && kv.Value.AsString() == string(d.Fallback) {
						found = true
					}
				}
				if !found {
					t.Errorf("BusinessRules attributes %v lack %s=%s", br.Attributes(), attrFallback, d.Fallback)
				}
			}
		})
	}
}
