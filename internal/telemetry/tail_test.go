package telemetry

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// request produces one trace shaped like a recommendation request: a
// server root, GenerateRecommendations and its four stages. mutate may
// change the stage span named by stage. It returns the trace id.
func request(tel *Telemetry, rootDur time.Duration, stage string, mutate func(trace.Span)) string {
	tr := tel.TracerProvider().Tracer("test")
	start := time.Now()
	ctx, root := tr.Start(context.Background(), "GET /v1/recommendations", trace.WithTimestamp(start),
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.route", "/v1/recommendations"), attribute.String(VariantAttr, "B")))
	gctx, gen := tr.Start(ctx, "GenerateRecommendations")
	for _, name := range []string{"FeatureFetch", "CandidateGeneration", "ModelInference", "BusinessRules"} {
		_, s := tr.Start(gctx, name)
		if name == stage && mutate != nil {
			mutate(s)
		}
		s.End()
	}
	gen.End()
	root.End(trace.WithTimestamp(start.Add(rootDur)))
	return root.SpanContext().TraceID().String()
}

func spanNames(tv TraceView) []string {
	var names []string
	for _, s := range tv.Spans {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return names
}

var allSpans = []string{"BusinessRules", "CandidateGeneration", "FeatureFetch", "GET /v1/recommendations", "GenerateRecommendations", "ModelInference"}

func TestTailRetention(t *testing.T) {
	tests := []struct {
		name    string
		ratio   float64
		rootDur time.Duration
		stage   string
		mutate  func(trace.Span)
		reason  string // "" means dropped
		noTail  bool   // Config.DisableTailRetention
	}{
		{name: "plain fast trace is dropped", ratio: -1, rootDur: time.Millisecond},
		{name: "error keeps", ratio: -1, rootDur: time.Millisecond, stage: "ModelInference", reason: ReasonError,
			mutate: func(s trace.Span) { s.RecordError(errors.New("boom")); s.SetStatus(codes.Error, "boom") }},
		{name: "fallback keeps", ratio: -1, rootDur: time.Millisecond, stage: "FeatureFetch", reason: ReasonFallback,
			mutate: func(s trace.Span) { s.SetAttributes(attribute.String(FallbackAttr, "feature_timeout")) }},
		{name: "empty fallback does not keep", ratio: -1, rootDur: time.Millisecond, stage: "FeatureFetch",
			mutate: func(s trace.Span) { s.SetAttributes(attribute.String(FallbackAttr, "")) }},
		{name: "slow root keeps", ratio: -1, rootDur: 50 * time.Millisecond, reason: ReasonSlow},
		{name: "just under slow is dropped", ratio: -1, rootDur: 49 * time.Millisecond},
		{name: "ratio 1 keeps everything", ratio: 1, rootDur: time.Millisecond, reason: ReasonSampled},
		{name: "tail retention off: an error is not recorded", ratio: -1, rootDur: time.Millisecond, stage: "ModelInference", noTail: true,
			mutate: func(s trace.Span) { s.RecordError(errors.New("boom")); s.SetStatus(codes.Error, "boom") }},
		{name: "tail retention off: slow is not recorded", ratio: -1, rootDur: time.Second, noTail: true},
		{name: "tail retention off: sampled is kept", ratio: 1, rootDur: time.Millisecond, noTail: true, reason: ReasonSampled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tel := newTest(t, Config{SampleRatio: tt.ratio, DisableTailRetention: tt.noTail})
			id := request(tel, tt.rootDur, tt.stage, tt.mutate)
			tv, ok := tel.Flight().Trace(id)
			if kept := tt.reason != ""; ok != kept {
				t.Fatalf("Flight().Trace(%s) found = %v, want %v", id, ok, kept)
			}
			for _, r := range []string{ReasonSampled, ReasonError, ReasonFallback, ReasonSlow} {
				want := 0.0
				if r == tt.reason {
					want = 1
				}
				if got := counter(tel.m.keptByReason[r]); got != want {
					t.Errorf("traces_kept_total{reason=%q} = %v, want %v", r, got, want)
				}
			}
			wantDropped := 1.0
			if tt.reason != "" || tt.noTail { // without tail retention nothing unsampled is recorded
				wantDropped = 0
			}
			if got := counter(tel.m.dropped); got != wantDropped {
				t.Errorf("traces_dropped_total = %v, want %v", got, wantDropped)
			}
			if !ok {
				return
			}
			if diff := cmp.Diff(allSpans, spanNames(tv)); diff != "" {
				t.Errorf("kept trace spans (-want +got):\n%s", diff)
			}
			if tv.Reasons[0] != tt.reason {
				t.Errorf("Trace(%s).Reasons = %v, want first %q", id, tv.Reasons, tt.reason)
			}
		})
	}
}

func TestTailRetentionLateSpans(t *testing.T) {
	tel := newTest(t, Config{SampleRatio: -1})
	tr := tel.TracerProvider().Tracer("test")

	// Kept trace: an async child ends after the root.
	ctx, root := tr.Start(context.Background(), "POST /v1/events")
	_, late := tr.Start(ctx, "events publish")
	root.SetStatus(codes.Error, "bad")
	root.End()
	late.End()
	id := root.SpanContext().TraceID().String()
	tv, ok := tel.Flight().Trace(id)
	if !ok {
		t.Fatalf("Flight().Trace(%s) not found", id)
	}
	if diff := cmp.Diff([]string{"POST /v1/events", "events publish"}, spanNames(tv)); diff != "" {
		t.Errorf("late child not added to kept trace (-want +got):\n%s", diff)
	}

	// The consumer side of the same trace is another local root (remote
	// parent) and is kept with it even though it is fast and fine.
	remote := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: root.SpanContext().TraceID(), SpanID: late.SpanContext().SpanID(), Remote: true,
	})
	_, proc := tr.Start(trace.ContextWithRemoteSpanContext(context.Background(), remote), "events process")
	proc.End()
	tv, _ = tel.Flight().Trace(id)
	if len(tv.Spans) != 3 {
		t.Errorf("after consumer root, Trace(%s) has %d spans, want 3", id, len(tv.Spans))
	}

	// Dropped trace: the late child is dropped too and nothing lingers.
	ctx, root2 := tr.Start(context.Background(), "POST /v1/events")
	_, late2 := tr.Start(ctx, "events publish")
	root2.End()
	late2.End()
	if _, ok := tel.Flight().Trace(root2.SpanContext().TraceID().String()); ok {
		t.Errorf("dropped trace with late child was stored")
	}
	if inflight, _ := tel.tail.sizes(); inflight != 0 {
		t.Errorf("in-flight traces after all roots ended = %d, want 0", inflight)
	}
}

func TestTailRetentionBoundedMemory(t *testing.T) {
	const n = 100_000
	tel := newTest(t, Config{SampleRatio: 1, MaxInflightTraces: 500, FlightTraces: 1000, MaxSpansPerTrace: 2})
	tr := tel.TracerProvider().Tracer("test")

	// Traces whose root never ends (a leak) must not grow the buffer.
	for range n {
		ctx, _ := tr.Start(context.Background(), "leaked root")
		_, c := tr.Start(ctx, "child")
		c.End()
	}
	inflight, _ := tel.tail.sizes()
	if inflight > 500 {
		t.Errorf("in-flight traces = %d, want <= 500", inflight)
	}
	if got, want := counter(tel.m.droppedSpans), float64(n-500); got != want {
		t.Errorf("telemetry_dropped_total{signal=spans} = %v, want %v", got, want)
	}

	// Kept traces are bounded by the flight recorder, spans per trace too.
	for range n {
		ctx, root := tr.Start(context.Background(), "root")
		for range 3 {
			_, c := tr.Start(ctx, "child")
			c.End()
		}
		root.End()
	}
	if got := tel.Flight().Len(); got != 1000 {
		t.Errorf("Flight().Len() = %d, want 1000", got)
	}
	if _, decided := tel.tail.sizes(); decided > 4*500 {
		t.Errorf("cached decisions = %d, want <= %d", decided, 4*500)
	}
	for _, s := range tel.Flight().Query(Filter{Limit: 1000}) {
		if s.SpanCount > 2 {
			t.Fatalf("trace %s has %d spans, want <= 2", s.TraceID, s.SpanCount)
		}
	}
	// The root is kept even when the per-trace span limit is hit.
	for _, s := range tel.Flight().Query(Filter{Limit: 3}) {
		if s.Route != "root" {
			t.Errorf("trace %s route = %q, want root (the root span was lost)", s.TraceID, s.Route)
		}
	}
}

func TestSpanRedaction(t *testing.T) {
	tel := newTest(t, Config{SampleRatio: 1})
	tr := tel.TracerProvider().Tracer("test")
	ctx, root := tr.Start(context.Background(), "GET /v1/recommendations", trace.WithAttributes(
		attribute.String("user_id", "alice-42"),
		attribute.String("email", "alice@example.com"),
		attribute.String("client.address", "203.0.113.9"),
		attribute.String("note", "call +1 415 555 0100 or mail bob@example.org"),
		attribute.StringSlice("tags", []string{"ok", "10.0.0.1"}),
	))
	_, child := tr.Start(ctx, "FeatureFetch", trace.WithLinks(trace.Link{
		SpanContext: root.SpanContext(), Attributes: []attribute.KeyValue{attribute.String("uid", "alice-42")},
	}))
	child.RecordError(errors.New("profile of alice@example.com not found"))
	child.SetStatus(codes.Error, "lookup for 2001:db8::1 failed")
	child.End()
	root.End()

	tv, ok := tel.Flight().Trace(root.SpanContext().TraceID().String())
	if !ok {
		t.Fatal("trace not kept")
	}
	byName := map[string]SpanView{}
	for _, s := range tv.Spans {
		byName[s.Name] = s
	}
	gotRoot := byName["GET /v1/recommendations"].Attributes
	wantRoot := map[string]any{
		"user_id":        tel.Pseudonymize("alice-42"),
		"email":          Redacted,
		"client.address": Redacted,
		"note":           "call [phone] or mail [email]",
		"tags":           []string{"ok", "[ip]"},
	}
	if diff := cmp.Diff(wantRoot, gotRoot); diff != "" {
		t.Errorf("root attributes (-want +got):\n%s", diff)
	}
	fetch := byName["FeatureFetch"]
	if got, want := fetch.Status.Description, "lookup for [ip] failed"; got != want {
		t.Errorf("status description = %q, want %q", got, want)
	}
	if got := fetch.Events[0].Attributes["exception.message"]; got != "profile of [email] not found" {
		t.Errorf("exception.message = %q, want redacted", got)
	}
	if got := fetch.Links[0].Attributes["uid"]; got != tel.Pseudonymize("alice-42") {
		t.Errorf("link uid = %q, want pseudonym", got)
	}
}

func attributeFallback() attribute.KeyValue { return attribute.String(FallbackAttr, "model_timeout") }

func TestTailRetentionLinkedRoots(t *testing.T) {
	tel := newTest(t, Config{SampleRatio: -1})
	tr := tel.TracerProvider().Tracer("test")

	// A fallback recommendation is kept; the processing of a click on it is
	// a new root that links to it, and is kept too.
	kept := request(tel, time.Millisecond, "BusinessRules", func(s trace.Span) {
		s.SetAttributes(attribute.String(FallbackAttr, "missing_features"))
	})
	keptID, _ := trace.TraceIDFromHex(kept)
	link := trace.NewSpanContext(trace.SpanContextConfig{TraceID: keptID, SpanID: trace.SpanID{1}})
	_, proc := tr.Start(context.Background(), "events process", trace.WithNewRoot(), trace.WithLinks(trace.Link{SpanContext: link}))
	proc.End()
	if _, ok := tel.Flight().Trace(proc.SpanContext().TraceID().String()); !ok {
		t.Errorf("events process linked to a kept trace was dropped")
	}

	// Linked to a sampled span context: kept.
	sampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{9}, SpanID: trace.SpanID{9}, TraceFlags: trace.FlagsSampled})
	_, proc2 := tr.Start(context.Background(), "events process", trace.WithNewRoot(), trace.WithLinks(trace.Link{SpanContext: sampled}))
	proc2.End()
	if _, ok := tel.Flight().Trace(proc2.SpanContext().TraceID().String()); !ok {
		t.Errorf("events process linked to a sampled span was dropped")
	}

	// Linked to a trace that was dropped and not sampled: dropped.
	dropped := request(tel, time.Millisecond, "", nil)
	droppedID, _ := trace.TraceIDFromHex(dropped)
	_, proc3 := tr.Start(context.Background(), "events process", trace.WithNewRoot(),
		trace.WithLinks(trace.Link{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: droppedID, SpanID: trace.SpanID{2}})}))
	proc3.End()
	if _, ok := tel.Flight().Trace(proc3.SpanContext().TraceID().String()); ok {
		t.Errorf("events process linked only to a dropped trace was kept")
	}
}
