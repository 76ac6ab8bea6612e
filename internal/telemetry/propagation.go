package telemetry

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/propagation"
)

// NewPropagator returns the W3C TraceContext + Baggage propagator that
// [Telemetry.Propagator] returns. Unlike the plain
// [propagation.TraceContext], it combines several tracestate header fields
// into one list, as the W3C specification requires, when the carrier can
// return all values of a key ([propagation.ValuesGetter], as
// [propagation.HeaderCarrier] does).
func NewPropagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(traceContext{}, propagation.Baggage{})
}

// traceContext is [propagation.TraceContext] with combined tracestate
// fields.
type traceContext struct{ propagation.TraceContext }

var _ propagation.TextMapPropagator = traceContext{}

// Extract reads traceparent and the combined tracestate from carrier.
func (tc traceContext) Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	if vg, ok := carrier.(propagation.ValuesGetter); ok {
		if vs := vg.Values("tracestate"); len(vs) > 1 {
			carrier = joinedState{TextMapCarrier: carrier, state: strings.Join(vs, ",")}
		}
	}
	return tc.TraceContext.Extract(ctx, carrier)
}

// joinedState answers Get("tracestate") with the combined fields.
type joinedState struct {
	propagation.TextMapCarrier
	state string
}

func (j joinedState) Get(key string) string {
	if strings.EqualFold(key, "tracestate") {
		return j.state
	}
	return j.TextMapCarrier.Get(key)
}
