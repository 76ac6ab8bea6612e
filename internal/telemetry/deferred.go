package telemetry

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Deferred recording. With tail retention on, every span of an unsampled
// trace used to be recorded so the tail processor could decide at the root
// whether to keep it; almost all such traces were then dropped, and
// recording them was most of what telemetry cost per request. On a hot
// route, [Telemetry.DeferredServer] starts the server span without recording
// it (it still has its ids, so logs and the response carry them) and makes it
// after the fact, with the request's own ids and times, only when tail
// retention will keep the trace. Code under it does the same with its own
// spans (the engine: only on a fallback or a slow decision), so a kept trace
// is still whole.

type ctxKey int

const (
	// deferKey marks the start of a deferred server span: the sampler does
	// not turn its drop decision into RecordOnly.
	deferKey ctxKey = iota
	// forcedKey carries the ids a span made after the fact must have.
	forcedKey
)

type forcedIDs struct {
	trace trace.TraceID
	span  trace.SpanID
}

// tailSampler is the head sampler with tail retention: the drop decisions of
// head (ParentBased(TraceIDRatioBased)) become RecordOnly, so the tail
// processor sees the spans, except for the start of a deferred server span.
type tailSampler struct{ head sdktrace.Sampler }

var _ sdktrace.Sampler = tailSampler{}

func (s tailSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	r := s.head.ShouldSample(p)
	if r.Decision == sdktrace.Drop && p.ParentContext.Value(deferKey) == nil {
		r.Decision = sdktrace.RecordOnly
	}
	return r
}

func (s tailSampler) Description() string { return "TailRetention{" + s.head.Description() + "}" }

// idGenerator makes random ids, except for a span made after the fact,
// which gets the ids carried in its context. Safe for concurrent use.
type idGenerator struct{}

var _ sdktrace.IDGenerator = idGenerator{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if f, ok := ctx.Value(forcedKey).(forcedIDs); ok {
		return f.trace, f.span
	}
	var tid trace.TraceID
	for !tid.IsValid() {
		putUint64(tid[:8], rand.Uint64())
		putUint64(tid[8:], rand.Uint64())
	}
	return tid, newSpanID()
}

func (idGenerator) NewSpanID(ctx context.Context, tid trace.TraceID) trace.SpanID {
	if f, ok := ctx.Value(forcedKey).(forcedIDs); ok && f.trace == tid {
		return f.span
	}
	return newSpanID()
}

func newSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		putUint64(sid[:], rand.Uint64())
	}
	return sid
}

func putUint64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
}

// DeferredServer wraps h, the handler of a hot route, in a server span named
// "{METHOD} {route}" (r.Pattern), with W3C trace context extracted from the
// request. A head-sampled request gets a live span. Otherwise, with tail
// retention on, the span is made after the fact, with the ids its logs and
// children already carry, when tail retention will keep the trace: a 5xx, a
// request slower than the slow threshold, or spans recorded under it (the
// engine records its spans only for a fallback or a slow decision). With tail
// retention off it is never recorded. Its attributes are those of
// [Telemetry.Server].
func (t *Telemetry) DeferredServer(h http.Handler) http.Handler {
	tracer := t.tp.Tracer("github.com/sightline/sightline/internal/telemetry")
	tail := !t.cfg.DisableTailRetention
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		parent := r.Context()
		if hasTraceHeaders(r.Header) {
			parent = t.prop.Extract(parent, propagation.HeaderCarrier(r.Header))
		}
		name := r.Pattern
		if name == "" {
			name = r.Method
		}
		// The live span (head-sampled) takes its own start time, a few
		// hundred nanoseconds after start: a timestamp option costs an
		// allocation on every request, and almost none is recorded live.
		_, span := tracer.Start(context.WithValue(parent, deferKey, true), name, serverKind)
		sw, pooled := w.(*StatusWriter)
		if !pooled {
			sw = statusWriters.Get().(*StatusWriter)
			*sw = StatusWriter{ResponseWriter: w, status: http.StatusOK}
		}
		h.ServeHTTP(sw, r.WithContext(trace.ContextWithSpan(parent, span)))
		end := time.Now()
		status := sw.Status()
		if !pooled {
			// The handler has returned: nothing writes to sw any more.
			*sw = StatusWriter{}
			statusWriters.Put(sw)
		}
		if span.IsRecording() {
			span.SetAttributes(t.serverAttrs(r, status)...)
			setServerStatus(span, status)
			span.End(trace.WithTimestamp(end))
			return
		}
		sc := span.SpanContext()
		if !tail || !sc.IsValid() {
			return
		}
		if status < http.StatusInternalServerError && (t.cfg.SlowThreshold <= 0 || end.Sub(start) < t.cfg.SlowThreshold) && !t.tail.pending(sc.TraceID()) {
			t.m.dropped.Inc() // what the tail processor would have done
			return
		}
		ctx := context.WithValue(parent, forcedKey, forcedIDs{trace: sc.TraceID(), span: sc.SpanID()})
		_, made := tracer.Start(ctx, name, serverKind, trace.WithTimestamp(start),
			trace.WithAttributes(t.serverAttrs(r, status)...))
		setServerStatus(made, status)
		made.End(trace.WithTimestamp(end))
	})
}

// serverKind is the span kind option of server spans, made once: an option
// built per request is an allocation.
var serverKind = trace.WithSpanKind(trace.SpanKindServer)

// statusWriters pools the StatusWriter of DeferredServer, one per request on
// the hot route.
var statusWriters = sync.Pool{New: func() any { return new(StatusWriter) }}

// hasTraceHeaders reports whether h carries a header the propagator reads
// (traceparent, tracestate, baggage). Without one, extracting returns the
// context unchanged, but looking the lower-case keys up canonicalizes them,
// an allocation each.
func hasTraceHeaders(h http.Header) bool {
	return len(h["Traceparent"]) > 0 || len(h["Tracestate"]) > 0 || len(h["Baggage"]) > 0
}

// setServerStatus marks a 5xx as an error, as the HTTP conventions say for
// server spans (a 4xx is the client's error).
func setServerStatus(span trace.Span, status int) {
	if status >= http.StatusInternalServerError {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
}

// StatusWriter records the status code a handler writes (200 unless it
// writes another first). Middleware that needs the status shares one:
// [StatusOf] returns w itself when w already is one.
type StatusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

// StatusOf returns w as a *StatusWriter, wrapping it unless it is one.
func StatusOf(w http.ResponseWriter) *StatusWriter {
	if sw, ok := w.(*StatusWriter); ok {
		return sw
	}
	return &StatusWriter{ResponseWriter: w, status: http.StatusOK}
}

// Status is the status code written so far.
func (s *StatusWriter) Status() int { return s.status }

// WriteHeader records the first status code written.
func (s *StatusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

// Write marks the status as written (200 if WriteHeader was not called).
func (s *StatusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *StatusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// pending reports whether spans of trace id are buffered, waiting for their
// local root.
func (p *tailProcessor) pending(id trace.TraceID) bool {
	if p.inflightN.Load() == 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inflight[id] != nil
}
