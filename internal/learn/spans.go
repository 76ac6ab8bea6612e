package learn

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/sightline/sightline/internal/ingest"
)

// Tracing is how the consumers trace: each record's span is a new root
// linked to the producer's trace (the W3C context carried in the record)
// and to the recommendation the event answers.
type Tracing struct {
	// TracerProvider provides the tracer; nil traces nothing.
	TracerProvider trace.TracerProvider
	// Propagator extracts the producer's context from the record; nil
	// means W3C trace context.
	Propagator propagation.TextMapPropagator
}

type spans struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	joiner Joiner
}

func newSpans(t Tracing, j Joiner) spans {
	tp := t.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	prop := t.Propagator
	if prop == nil {
		prop = propagation.TraceContext{}
	}
	return spans{tracer: tp.Tracer("github.com/sightline/sightline/internal/learn"), prop: prop, joiner: j}
}

var (
	linkProducer       = attribute.String("sightline.link", "producer")
	linkRecommendation = attribute.String("sightline.link", "recommendation")
)

// start starts a consumer span for one record. To keep the event path
// cheap, it records a span only when one of the linked traces is kept: the
// producer was sampled, or the joiner says the recommendation's trace is
// kept for this kind of event. Otherwise it returns a non-recording span.
func (s spans) start(ctx context.Context, name string, r *ingest.Record) (context.Context, trace.Span) {
	// Most events are in no kept trace: decide that before parsing anything
	// (the event path handles every event; most carry a traceparent).
	var rec trace.SpanContext
	var hasRec bool
	if r.Event.RequestID != "" && s.joiner != nil {
		rec, hasRec = s.joiner.TraceOf(r.Event.RequestID, r.Event.Type)
	}
	if !hasRec || !rec.IsSampled() {
		if !traceparentSampled(r.Event.TraceParent) {
			return ctx, trace.SpanFromContext(context.Background())
		}
	}
	var links []trace.Link
	keep := false
	if r.Event.TraceParent != "" {
		carrier := propagation.MapCarrier{"traceparent": r.Event.TraceParent, "tracestate": r.Event.TraceState}
		if sc := trace.SpanContextFromContext(s.prop.Extract(context.Background(), carrier)); sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{linkProducer}})
			keep = sc.IsSampled()
		}
	}
	if hasRec {
		links = append(links, trace.Link{SpanContext: rec, Attributes: []attribute.KeyValue{linkRecommendation}})
		keep = keep || rec.IsSampled()
	}
	if !keep {
		return ctx, trace.SpanFromContext(context.Background())
	}
	return s.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithNewRoot(), trace.WithLinks(links...),
		trace.WithAttributes(
			attribute.String("messaging.system", "sightline"),
			attribute.String("messaging.operation.type", "process"),
			attribute.Int64("messaging.message.offset", int64(r.Offset)),
			attribute.String("sightline.request.id", r.Event.RequestID),
			attribute.String("sightline.event.type", r.Event.Type.String()),
		))
}

// traceparentSampled reports whether a W3C traceparent
// ("00-<trace id>-<span id>-<flags>") may carry the sampled flag: false
// only for a well-formed one whose flags say not sampled, so that anything
// else is left to the propagator.
func traceparentSampled(tp string) bool {
	if tp == "" {
		return false
	}
	if len(tp) != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return true
	}
	f := tp[54]
	switch {
	case f >= '0' && f <= '9':
		return (f-'0')&1 == 1
	case f >= 'a' && f <= 'f':
		return (f-'a'+10)&1 == 1
	}
	return true
}
