package telemetry

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// newSampler returns the head sampler: ParentBased(TraceIDRatioBased(ratio))
// whose drop decisions are turned into RecordOnly when tail retention is on,
// so the tail processor sees every span (but the deferred ones, see
// tailSampler).
func newSampler(ratio float64, tail bool) sdktrace.Sampler {
	head := sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
	if !tail {
		return head
	}
	return tailSampler{head: head}
}

// keptSink receives the spans of kept traces, already redacted. It must not
// block.
type keptSink interface {
	keep(spans []sdktrace.ReadOnlySpan, reasons []string)
}

// pendingTrace is the buffer of one in-flight trace.
type pendingTrace struct {
	id       trace.TraceID
	spans    []sdktrace.ReadOnlySpan
	err      bool
	fallback bool
	// prev and next link the in-flight traces oldest first, for eviction.
	prev, next *pendingTrace
}

// decision is a cached tail decision, for spans that end after their root.
type decision struct {
	kept   bool
	reason string
}

// tailConfig holds the resolved limits of the tail processor.
type tailConfig struct {
	slow        time.Duration // <= 0: disabled
	maxInflight int
	maxSpans    int
	maxDecided  int
}

// tailProcessor is the [sdktrace.SpanProcessor] that implements tail
// retention. OnEnd is safe for concurrent use and never blocks on I/O.
type tailProcessor struct {
	cfg      tailConfig
	redactor *Redactor
	sink     keptSink
	m        *metrics

	mu       sync.Mutex
	inflight map[trace.TraceID]*pendingTrace
	// inflightN is len(inflight), stored under mu after each change, so
	// pending (called by every unsampled request on a hot route) answers
	// without the lock while nothing is buffered, which is most of the time.
	inflightN atomic.Int64
	oldest    *pendingTrace // head of the eviction list
	newest    *pendingTrace
	decided   map[trace.TraceID]decision
	ring      []trace.TraceID // FIFO of decided ids, for bounded eviction
	ringNext  int
}

var _ sdktrace.SpanProcessor = (*tailProcessor)(nil)

func newTailProcessor(cfg tailConfig, r *Redactor, sink keptSink, m *metrics) *tailProcessor {
	return &tailProcessor{
		cfg:      cfg,
		redactor: r,
		sink:     sink,
		m:        m,
		inflight: make(map[trace.TraceID]*pendingTrace),
		decided:  make(map[trace.TraceID]decision),
		ring:     make([]trace.TraceID, cfg.maxDecided),
	}
}

// OnStart does nothing: spans are buffered when they end.
func (p *tailProcessor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// isLocalRoot reports whether s is the root of its trace in this process.
func isLocalRoot(s sdktrace.ReadOnlySpan) bool {
	parent := s.Parent()
	return !parent.IsValid() || parent.IsRemote()
}

// spanFlags reports whether s has an error status or a fallback attribute.
func spanFlags(s sdktrace.ReadOnlySpan) (isErr, fallback bool) {
	isErr = s.Status().Code == codes.Error
	for _, kv := range s.Attributes() {
		if kv.Key == FallbackAttr && kv.Value.Type() == attribute.STRING && kv.Value.AsString() != "" {
			fallback = true
			break
		}
	}
	return isErr, fallback
}

// OnEnd buffers s with its trace; when s is the local root it decides the
// fate of the whole trace.
func (p *tailProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsValid() {
		return
	}
	id := s.SpanContext().TraceID()
	isErr, fallback := spanFlags(s)
	root := isLocalRoot(s)

	p.mu.Lock()
	pt := p.inflight[id]
	if pt == nil {
		if d, ok := p.decided[id]; ok && !root {
			// A late span: its root has already been decided.
			p.mu.Unlock()
			if d.kept {
				p.emit([]sdktrace.ReadOnlySpan{s}, nil)
			}
			return
		}
		pt = p.admit(id)
	}
	pt.err = pt.err || isErr
	pt.fallback = pt.fallback || fallback
	if len(pt.spans) < p.cfg.maxSpans {
		pt.spans = append(pt.spans, s)
	} else if !root {
		p.m.droppedSpans.Inc()
	} else {
		// Always keep the root: replace the last buffered child.
		pt.spans[len(pt.spans)-1] = s
		p.m.droppedSpans.Inc()
	}
	if !root {
		p.mu.Unlock()
		return
	}
	p.unlink(pt)
	delete(p.inflight, id)
	p.inflightN.Store(int64(len(p.inflight)))
	reasons := p.reasons(pt, s)
	if prior, ok := p.decided[id]; ok && prior.kept && len(reasons) == 0 {
		// Another local root of a trace already kept (e.g. the consumer
		// side of an event in the same trace): keep it too.
		reasons = []string{prior.reason}
	}
	d := decision{kept: len(reasons) > 0}
	if d.kept {
		d.reason = reasons[0]
	}
	p.remember(id, d)
	p.mu.Unlock()

	if len(reasons) == 0 {
		p.m.dropped.Inc()
		return
	}
	p.m.keptByReason[reasons[0]].Inc()
	p.emit(pt.spans, reasons)
}

// reasons lists why the trace of root is kept, most important first; an
// empty list means drop.
func (p *tailProcessor) reasons(pt *pendingTrace, root sdktrace.ReadOnlySpan) []string {
	var rs []string
	if pt.err {
		rs = append(rs, ReasonError)
	}
	if pt.fallback {
		rs = append(rs, ReasonFallback)
	}
	if p.cfg.slow > 0 && root.EndTime().Sub(root.StartTime()) >= p.cfg.slow {
		rs = append(rs, ReasonSlow)
	}
	if root.SpanContext().IsSampled() {
		rs = append(rs, ReasonSampled)
	}
	if len(rs) == 0 && p.linksKept(pt) {
		rs = append(rs, ReasonLinked)
	}
	return rs
}

// linksKept reports whether any span of pt links to a sampled span or to a
// trace this processor kept. p.mu is held.
func (p *tailProcessor) linksKept(pt *pendingTrace) bool {
	for _, s := range pt.spans {
		for _, l := range s.Links() {
			if l.SpanContext.IsSampled() {
				return true
			}
			if d, ok := p.decided[l.SpanContext.TraceID()]; ok && d.kept {
				return true
			}
		}
	}
	return false
}

// emit redacts spans and hands them to the sink.
func (p *tailProcessor) emit(spans []sdktrace.ReadOnlySpan, reasons []string) {
	out := make([]sdktrace.ReadOnlySpan, len(spans))
	for i, s := range spans {
		out[i] = redactSpan(p.redactor, s)
	}
	p.sink.keep(out, reasons)
}

// admit creates the buffer of a new in-flight trace, evicting the oldest
// one when the limit is reached. p.mu is held.
func (p *tailProcessor) admit(id trace.TraceID) *pendingTrace {
	if len(p.inflight) >= p.cfg.maxInflight && p.oldest != nil {
		old := p.oldest
		p.unlink(old)
		delete(p.inflight, old.id)
		p.m.droppedSpans.Add(float64(len(old.spans)))
	}
	pt := &pendingTrace{id: id}
	p.inflight[id] = pt
	pt.prev = p.newest
	if p.newest != nil {
		p.newest.next = pt
	}
	p.newest = pt
	if p.oldest == nil {
		p.oldest = pt
	}
	p.inflightN.Store(int64(len(p.inflight)))
	return pt
}

// unlink removes pt from the eviction list. p.mu is held.
func (p *tailProcessor) unlink(pt *pendingTrace) {
	if pt.prev != nil {
		pt.prev.next = pt.next
	} else {
		p.oldest = pt.next
	}
	if pt.next != nil {
		pt.next.prev = pt.prev
	} else {
		p.newest = pt.prev
	}
	pt.prev, pt.next = nil, nil
}

// remember caches the decision for id, evicting the oldest decision. p.mu
// is held.
func (p *tailProcessor) remember(id trace.TraceID, d decision) {
	if _, ok := p.decided[id]; !ok {
		if old := p.ring[p.ringNext]; old.IsValid() {
			delete(p.decided, old)
		}
		p.ring[p.ringNext] = id
		p.ringNext = (p.ringNext + 1) % len(p.ring)
	}
	p.decided[id] = d
}

// sizes returns the number of in-flight traces and cached decisions.
func (p *tailProcessor) sizes() (inflight, decided int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.inflight), len(p.decided)
}

// Shutdown drops the buffered in-flight traces; they have no root yet.
func (p *tailProcessor) Shutdown(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, pt := range p.inflight {
		p.m.droppedSpans.Add(float64(len(pt.spans)))
		delete(p.inflight, id)
	}
	p.inflightN.Store(0)
	p.oldest, p.newest = nil, nil
	return nil
}

// ForceFlush does nothing: traces are decided when their root ends.
func (p *tailProcessor) ForceFlush(context.Context) error { return nil }

// redactedSpan is a ReadOnlySpan whose attributes, event attributes, link
// attributes and status description are redacted.
type redactedSpan struct {
	sdktrace.ReadOnlySpan
	attrs  []attribute.KeyValue
	events []sdktrace.Event
	links  []sdktrace.Link
	status sdktrace.Status
}

func redactSpan(r *Redactor, s sdktrace.ReadOnlySpan) sdktrace.ReadOnlySpan {
	rs := &redactedSpan{ReadOnlySpan: s, attrs: r.redactKeyValues(s.Attributes()), status: s.Status()}
	rs.status.Description = r.RedactString(rs.status.Description)
	if ev := s.Events(); len(ev) > 0 {
		rs.events = make([]sdktrace.Event, len(ev))
		for i, e := range ev {
			e.Attributes = r.redactKeyValues(e.Attributes)
			rs.events[i] = e
		}
	}
	if ls := s.Links(); len(ls) > 0 {
		rs.links = make([]sdktrace.Link, len(ls))
		for i, l := range ls {
			l.Attributes = r.redactKeyValues(l.Attributes)
			rs.links[i] = l
		}
	}
	return rs
}

// Attributes returns the redacted attributes.
func (s *redactedSpan) Attributes() []attribute.KeyValue { return s.attrs }

// Events returns the events with redacted attributes.
func (s *redactedSpan) Events() []sdktrace.Event { return s.events }

// Links returns the links with redacted attributes.
func (s *redactedSpan) Links() []sdktrace.Link { return s.links }

// Status returns the status with a redacted description.
func (s *redactedSpan) Status() sdktrace.Status { return s.status }
