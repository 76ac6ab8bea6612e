package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

func TestFlightRecorderQuery(t *testing.T) {
	tel := newTest(t, Config{SampleRatio: 1})
	tr := tel.TracerProvider().Tracer("test")
	type spec struct {
		route, variant, fallback string
		err                      bool
		dur                      time.Duration
	}
	specs := []spec{
		{route: "/v1/recommendations", variant: "A", dur: time.Millisecond},
		{route: "/v1/recommendations", variant: "B", fallback: "model_timeout", dur: 2 * time.Millisecond},
		{route: "/v1/events", err: true, dur: 3 * time.Millisecond},
		{route: "/v1/recommendations", variant: "B", dur: 80 * time.Millisecond},
		{route: "", dur: time.Millisecond}, // no http.route: the span name is the route
	}
	ids := make([]string, len(specs))
	for i, sp := range specs {
		start := time.Now()
		var attrs []attribute.KeyValue
		if sp.route != "" {
			attrs = append(attrs, attribute.String("http.route", sp.route))
		}
		if sp.variant != "" {
			attrs = append(attrs, attribute.String(VariantAttr, sp.variant))
		}
		ctx, root := tr.Start(context.Background(), "events process", trace.WithTimestamp(start), trace.WithAttributes(attrs...))
		_, child := tr.Start(ctx, "ModelInference")
		if sp.fallback != "" {
			child.SetAttributes(attribute.String(FallbackAttr, sp.fallback))
		}
		if sp.err {
			child.SetStatus(codes.Error, "failed")
		}
		child.End()
		root.End(trace.WithTimestamp(start.Add(sp.dur)))
		ids[i] = root.SpanContext().TraceID().String()
	}
	tests := []struct {
		name string
		f    Filter
		want []int // indexes into specs, newest first
	}{
		{"all newest first", Filter{}, []int{4, 3, 2, 1, 0}},
		{"limit", Filter{Limit: 2}, []int{4, 3}},
		{"error", Filter{Error: true}, []int{2}},
		{"fallback", Filter{Fallback: true}, []int{1}},
		{"slow", Filter{Slow: true}, []int{3}},
		{"route", Filter{Route: "/v1/recommendations"}, []int{3, 1, 0}},
		{"span name as route", Filter{Route: "events process"}, []int{4}},
		{"variant", Filter{Variant: "B"}, []int{3, 1}},
		{"variant and fallback", Filter{Variant: "B", Fallback: true}, []int{1}},
		{"min duration", Filter{MinDuration: 2 * time.Millisecond}, []int{3, 2, 1}},
		{"nothing", Filter{Variant: "C"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, s := range tel.Flight().Query(tt.f) {
				got = append(got, s.TraceID)
			}
			var want []string
			for _, i := range tt.want {
				want = append(want, ids[i])
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Query(%+v) (-want +got):\n%s", tt.f, diff)
			}
		})
	}
}

// TestFlightRecorderVariantFromChild checks that a trace's variant is
// found on whichever span carries it: the engine sets sightline.variant on
// the GenerateRecommendations child, not on the server span. The root's
// own variant wins when it has one.
func TestFlightRecorderVariantFromChild(t *testing.T) {
	tel := newTest(t, Config{SampleRatio: 1})
	tr := tel.TracerProvider().Tracer("test")
	record := func(rootVariant, childVariant string) string {
		var attrs []attribute.KeyValue
		attrs = append(attrs, attribute.String("http.route", "/v1/recommendations"))
		if rootVariant != "" {
			attrs = append(attrs, attribute.String(VariantAttr, rootVariant))
		}
		ctx, root := tr.Start(context.Background(), "POST /v1/recommendations", trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
		_, child := tr.Start(ctx, "GenerateRecommendations", trace.WithAttributes(attribute.String(VariantAttr, childVariant)))
		child.End()
		root.End()
		return root.SpanContext().TraceID().String()
	}
	fromChild := record("", "ftrl")
	fromRoot := record("popularity", "ftrl")
	got := map[string]string{}
	for _, s := range tel.Flight().Query(Filter{}) {
		got[s.TraceID] = s.Variant
	}
	want := map[string]string{fromChild: "ftrl", fromRoot: "popularity"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Query() variants by trace (-want +got):\n%s", diff)
	}
	if q := tel.Flight().Query(Filter{Variant: "ftrl"}); len(q) != 1 || q[0].TraceID != fromChild {
		t.Errorf("Query(variant=ftrl) = %+v, want only the trace whose child carries ftrl", q)
	}
}

func TestFlightRecorderTraceView(t *testing.T) {
	tel := newTest(t, Config{SampleRatio: -1})
	tr := tel.TracerProvider().Tracer("test")
	producer := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled,
	})
	start := time.Unix(1700000000, 0)
	ctx, root := tr.Start(context.Background(), "events process", trace.WithTimestamp(start),
		trace.WithLinks(trace.Link{SpanContext: producer, Attributes: []attribute.KeyValue{attribute.String("messaging.system", "kafka")}}))
	_, child := tr.Start(ctx, "ModelUpdate", trace.WithTimestamp(start.Add(time.Millisecond)))
	child.AddEvent("retry", trace.WithTimestamp(start.Add(2*time.Millisecond)), trace.WithAttributes(attribute.Int("attempt", 2)))
	child.SetStatus(codes.Error, "apply failed")
	child.End(trace.WithTimestamp(start.Add(3 * time.Millisecond)))
	root.End(trace.WithTimestamp(start.Add(4 * time.Millisecond)))

	id := root.SpanContext().TraceID().String()
	tv, ok := tel.Flight().Trace(id)
	if !ok {
		t.Fatalf("Trace(%s) not found", id)
	}
	want := TraceView{
		TraceSummary: TraceSummary{
			TraceID: id, Route: "events process", Error: true, Reasons: []string{ReasonError},
			Start: start, Duration: 4 * time.Millisecond, DurationMS: 4, SpanCount: 2,
		},
		Spans: []SpanView{{
			Name: "events process", SpanID: root.SpanContext().SpanID().String(), Kind: "internal",
			Start: start, End: start.Add(4 * time.Millisecond), Duration: 4 * time.Millisecond, DurationMS: 4,
			Status: StatusView{Code: "unset"}, Attributes: map[string]any{}, Events: []EventView{},
			Links: []LinkView{{TraceID: producer.TraceID().String(), SpanID: producer.SpanID().String(),
				Attributes: map[string]any{"messaging.system": "kafka"}}},
		}, {
			Name: "ModelUpdate", SpanID: child.SpanContext().SpanID().String(), ParentSpanID: root.SpanContext().SpanID().String(),
			Kind: "internal", Start: start.Add(time.Millisecond), End: start.Add(3 * time.Millisecond),
			Duration: 2 * time.Millisecond, DurationMS: 2, Status: StatusView{Code: "error", Description: "apply failed"},
			Attributes: map[string]any{},
			Events:     []EventView{{Name: "retry", Time: start.Add(2 * time.Millisecond), Attributes: map[string]any{"attempt": int64(2)}}},
			Links:      []LinkView{},
		}},
	}
	if diff := cmp.Diff(want, tv); diff != "" {
		t.Errorf("Trace(%s) (-want +got):\n%s", id, diff)
	}
	if _, err := json.Marshal(tv); err != nil {
		t.Errorf("json.Marshal(TraceView) error = %v", err)
	}
	if _, ok := tel.Flight().Trace("00000000000000000000000000000000"); ok {
		t.Errorf("Trace(unknown) found = true, want false")
	}
}

func TestFlightRecorderEvicts(t *testing.T) {
	tel := newTest(t, Config{SampleRatio: 1, FlightTraces: 3})
	tr := tel.TracerProvider().Tracer("test")
	var ids []string
	for range 5 {
		_, s := tr.Start(context.Background(), "root")
		s.End()
		ids = append(ids, s.SpanContext().TraceID().String())
	}
	for i, id := range ids {
		_, ok := tel.Flight().Trace(id)
		if want := i >= 2; ok != want {
			t.Errorf("Trace(ids[%d]) found = %v, want %v", i, ok, want)
		}
	}
	if got := len(tel.Flight().Query(Filter{})); got != 3 {
		t.Errorf("len(Query()) = %d, want 3", got)
	}
}

func TestParseFilter(t *testing.T) {
	tests := []struct {
		q       string
		want    Filter
		wantErr bool
	}{
		{"", Filter{}, false},
		{"error=true&fallback=1&slow=false&route=%2Fv1%2Fx&variant=B&min_duration=50ms&limit=7",
			Filter{Error: true, Fallback: true, Route: "/v1/x", Variant: "B", MinDuration: 50 * time.Millisecond, Limit: 7}, false},
		{"limit=100000", Filter{Limit: maxLimit}, false},
		{"error=maybe", Filter{}, true},
		{"min_duration=fast", Filter{}, true},
		{"min_duration=-1s", Filter{}, true},
		{"limit=-1", Filter{}, true},
	}
	for _, tt := range tests {
		q, err := url.ParseQuery(tt.q)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseFilter(q)
		if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrBadFilter)) {
			t.Errorf("ParseFilter(%q) error = %v, want error %v", tt.q, err, tt.wantErr)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseFilter(%q) (-want +got):\n%s", tt.q, diff)
		}
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"", "error=true&limit=5", "min_duration=1h&route=x", "limit=%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		flt, err := ParseFilter(q)
		if err != nil {
			return
		}
		if flt.Limit < 0 || flt.Limit > maxLimit || flt.MinDuration < 0 {
			t.Errorf("ParseFilter(%q) = %+v, out of range", raw, flt)
		}
	})
}
