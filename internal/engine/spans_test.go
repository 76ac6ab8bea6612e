package engine

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

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
	}{
		{"sampled", true, fakeScorer{score: func(it event.Item) float64 { return 0.1 }}, 0, all},
		{"tail only, healthy", false, fakeScorer{score: func(it event.Item) float64 { return 0.1 }}, 0, []string{"GenerateRecommendations"}},
		{"tail only, fallback", false, fakeScorer{err: errors.New("weights not loaded")}, 0, all},
		{"tail only, slow", false, fakeScorer{score: func(it event.Item) float64 { return 0.1 }}, time.Nanosecond, all},
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
			})
			d, err := e.Recommend(t.Context(), Request{UserID: "alice", Count: 10, Channel: "web"})
			if err != nil {
				t.Fatalf("Recommend: %v", err)
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
			root := byName["GenerateRecommendations"]
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
				// A span made after the fact has the stage's own times.
				if got := s.EndTime().Sub(s.StartTime()); !tc.sampled && got != st.Duration {
					t.Errorf("%s lasted %v, stage %v", s.Name(), got, st.Duration)
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
