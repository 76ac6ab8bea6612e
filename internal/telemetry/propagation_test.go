package telemetry

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

const (
	validTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	validSpanID  = "00f067aa0ba902b7"
)

// TestPropagatorTraceparent follows the traceparent cases of the W3C
// trace-context test suite: a malformed header must be ignored (the
// service starts a new trace), a valid one continued.
func TestPropagatorTraceparent(t *testing.T) {
	tel := newTest(t, Config{})
	tests := []struct {
		name        string
		traceparent []string
		valid       bool
		sampled     bool
		flagsOut    string // "" means 01 or 00 from sampled
	}{
		{"valid sampled", []string{"00-" + validTraceID + "-" + validSpanID + "-01"}, true, true, ""},
		{"valid not sampled", []string{"00-" + validTraceID + "-" + validSpanID + "-00"}, true, false, ""},
		{"random flag (level 2) with sampled", []string{"00-" + validTraceID + "-" + validSpanID + "-03"}, true, true, "03"},
		{"random flag (level 2) alone", []string{"00-" + validTraceID + "-" + validSpanID + "-02"}, true, false, "02"},
		{"future version with extra fields", []string{"cc-" + validTraceID + "-" + validSpanID + "-01-what-the-future-will-be-like"}, true, true, ""},
		{"version ff is invalid", []string{"ff-" + validTraceID + "-" + validSpanID + "-01"}, false, false, ""},
		{"version 00 with extra field", []string{"00-" + validTraceID + "-" + validSpanID + "-01-extra"}, false, false, ""},
		{"version not hex", []string{"0x-" + validTraceID + "-" + validSpanID + "-01"}, false, false, ""},
		{"short version", []string{"0-" + validTraceID + "-" + validSpanID + "-01"}, false, false, ""},
		{"trace id too short", []string{"00-" + validTraceID[:31] + "-" + validSpanID + "-01"}, false, false, ""},
		{"trace id too long", []string{"00-" + validTraceID + "0-" + validSpanID + "-01"}, false, false, ""},
		{"span id too short", []string{"00-" + validTraceID + "-" + validSpanID[:15] + "-01"}, false, false, ""},
		{"span id too long", []string{"00-" + validTraceID + "-" + validSpanID + "0-01"}, false, false, ""},
		{"flags too long", []string{"00-" + validTraceID + "-" + validSpanID + "-011"}, false, false, ""},
		{"flags not hex", []string{"00-" + validTraceID + "-" + validSpanID + "-0g"}, false, false, ""},
		{"all-zero trace id", []string{"00-00000000000000000000000000000000-" + validSpanID + "-01"}, false, false, ""},
		{"all-zero span id", []string{"00-" + validTraceID + "-0000000000000000-01"}, false, false, ""},
		{"upper-case trace id", []string{"00-" + strings.ToUpper(validTraceID) + "-" + validSpanID + "-01"}, false, false, ""},
		{"upper-case span id", []string{"00-" + validTraceID + "-" + strings.ToUpper(validSpanID) + "-01"}, false, false, ""},
		{"upper-case version", []string{"0A-" + validTraceID + "-" + validSpanID + "-01"}, false, false, ""},
		{"wrong delimiter", []string{"00_" + validTraceID + "_" + validSpanID + "_01"}, false, false, ""},
		{"leading whitespace inside", []string{"00- " + validTraceID[1:] + "-" + validSpanID + "-01"}, false, false, ""},
		{"empty", []string{""}, false, false, ""},
		{"garbage", []string{"hello"}, false, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.traceparent {
				h.Add("Traceparent", v)
			}
			ctx := tel.Propagator().Extract(context.Background(), propagation.HeaderCarrier(h))
			sc := trace.SpanContextFromContext(ctx)
			if sc.IsValid() != tt.valid {
				t.Fatalf("Extract(traceparent=%q) valid = %v, want %v", tt.traceparent, sc.IsValid(), tt.valid)
			}
			if !tt.valid {
				return
			}
			if sc.TraceID().String() != validTraceID || sc.SpanID().String() != validSpanID || !sc.IsRemote() {
				t.Errorf("Extract(%q) = %v/%v remote=%v, want %s/%s remote", tt.traceparent, sc.TraceID(), sc.SpanID(), sc.IsRemote(), validTraceID, validSpanID)
			}
			if sc.IsSampled() != tt.sampled {
				t.Errorf("Extract(%q) sampled = %v, want %v", tt.traceparent, sc.IsSampled(), tt.sampled)
			}
			// The service continues the trace and propagates it in
			// version 00, lower case, with a new parent id.
			ctx, span := tel.TracerProvider().Tracer("test").Start(ctx, "GET /x")
			defer span.End()
			out := http.Header{}
			tel.Propagator().Inject(ctx, propagation.HeaderCarrier(out))
			got := out.Get("Traceparent")
			flags := tt.flagsOut
			switch {
			case flags != "":
			case tt.sampled:
				flags = "01"
			default:
				flags = "00"
			}
			want := "00-" + validTraceID + "-" + span.SpanContext().SpanID().String() + "-" + flags
			if got != want {
				t.Errorf("Inject() traceparent = %q, want %q", got, want)
			}
		})
	}
}

// TestPropagatorTracestate follows the tracestate cases of the W3C suite:
// a valid list is propagated, an invalid one is dropped while traceparent
// still applies.
func TestPropagatorTracestate(t *testing.T) {
	tel := newTest(t, Config{})
	tooMany := make([]string, 33)
	for i := range tooMany {
		tooMany[i] = "key" + strings.Repeat("a", i) + "=v"
	}
	tests := []struct {
		name       string
		tracestate []string
		want       string // "" means dropped
	}{
		{"single", []string{"foo=1"}, "foo=1"},
		{"list", []string{"foo=1,bar=2"}, "foo=1,bar=2"},
		{"multi-tenant key", []string{"tenant@vendor=1"}, "tenant@vendor=1"},
		{"ows around members", []string{"foo=1 , bar=2"}, "foo=1,bar=2"},
		{"empty members skipped", []string{"foo=1,,bar=2"}, "foo=1,bar=2"},
		{"multiple headers combined", []string{"foo=1", "bar=2"}, "foo=1,bar=2"},
		{"duplicate keys", []string{"foo=1,foo=2"}, ""},
		{"duplicate keys across headers", []string{"foo=1", "foo=2"}, ""},
		{"upper-case key", []string{"FOO=1"}, ""},
		{"key too long", []string{strings.Repeat("a", 257) + "=1"}, ""},
		{"value with =", []string{"foo=a=b"}, ""},
		{"value too long", []string{"foo=" + strings.Repeat("v", 257)}, ""},
		{"32 members is the maximum", []string{strings.Join(tooMany[:32], ",")}, strings.Join(tooMany[:32], ",")},
		{"33 members is too many", []string{strings.Join(tooMany, ",")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			h.Set("Traceparent", "00-"+validTraceID+"-"+validSpanID+"-01")
			for _, v := range tt.tracestate {
				h.Add("Tracestate", v)
			}
			ctx := tel.Propagator().Extract(context.Background(), propagation.HeaderCarrier(h))
			sc := trace.SpanContextFromContext(ctx)
			if !sc.IsValid() {
				t.Fatalf("Extract(tracestate=%q) dropped the traceparent", tt.tracestate)
			}
			if got := sc.TraceState().String(); got != tt.want {
				t.Errorf("Extract(tracestate=%q) = %q, want %q", tt.tracestate, got, tt.want)
			}
			ctx, span := tel.TracerProvider().Tracer("test").Start(ctx, "GET /x")
			defer span.End()
			out := http.Header{}
			tel.Propagator().Inject(ctx, propagation.HeaderCarrier(out))
			if got := out.Get("Tracestate"); got != tt.want {
				t.Errorf("Inject() tracestate = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPropagatorBaggage(t *testing.T) {
	tel := newTest(t, Config{})
	h := http.Header{}
	h.Set("Traceparent", "00-"+validTraceID+"-"+validSpanID+"-01")
	h.Set("Baggage", "sim.user=u1,channel=web;ttl=3")
	ctx := tel.Propagator().Extract(context.Background(), propagation.HeaderCarrier(h))
	b := baggage.FromContext(ctx)
	if got := b.Member("channel").Value(); got != "web" {
		t.Errorf("baggage channel = %q, want web", got)
	}
	out := http.Header{}
	tel.Propagator().Inject(ctx, propagation.HeaderCarrier(out))
	back := tel.Propagator().Extract(context.Background(), propagation.HeaderCarrier(out))
	if got := baggage.FromContext(back).Member("sim.user").Value(); got != "u1" {
		t.Errorf("round-tripped baggage sim.user = %q, want u1", got)
	}
}
