package telemetry

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// FlightRecorder is a bounded in-memory store of recently kept traces,
// queryable by trace id and by filters. When full, the oldest trace is
// evicted. Spans it holds are already redacted.
//
// All methods are safe for concurrent use.
type FlightRecorder struct {
	mu    sync.RWMutex
	ring  []*flightTrace
	next  int
	byID  map[string]*flightTrace
	limit int // max spans per trace
}

// flightTrace is one stored trace. Its fields are guarded by the
// recorder's mutex.
type flightTrace struct {
	id       string
	spans    []sdktrace.ReadOnlySpan
	reasons  []string
	hasRoot  bool
	start    time.Time
	duration time.Duration
	route    string
	variant  string
	fallback string
	err      bool
}

// NewFlightRecorder returns a recorder that keeps the last capacity traces
// and at most maxSpans spans of each (zero means 10,000 and 1,024).
func NewFlightRecorder(capacity, maxSpans int) *FlightRecorder {
	if capacity <= 0 {
		capacity = 10_000
	}
	if maxSpans <= 0 {
		maxSpans = 1024
	}
	return &FlightRecorder{
		ring:  make([]*flightTrace, capacity),
		byID:  make(map[string]*flightTrace, capacity),
		limit: maxSpans,
	}
}

// Record adds spans of one trace. Spans of a trace already stored (late
// children, or another local root of the same trace) are appended to it.
// reasons are the keep reasons (nil for late spans). It does not block on
// I/O.
func (f *FlightRecorder) Record(spans []sdktrace.ReadOnlySpan, reasons []string) {
	if len(spans) == 0 {
		return
	}
	id := spans[0].SpanContext().TraceID().String()
	f.mu.Lock()
	defer f.mu.Unlock()
	ft := f.byID[id]
	if ft == nil {
		ft = &flightTrace{id: id}
		if old := f.ring[f.next]; old != nil {
			delete(f.byID, old.id)
		}
		f.ring[f.next] = ft
		f.next = (f.next + 1) % len(f.ring)
		f.byID[id] = ft
	}
	for _, r := range reasons {
		if !slices.Contains(ft.reasons, r) {
			ft.reasons = append(ft.reasons, r)
		}
	}
	for _, s := range spans {
		if len(ft.spans) >= f.limit {
			break
		}
		ft.spans = append(ft.spans, s)
		if s.Status().Code == codes.Error {
			ft.err = true
		}
		fallback, variant := summaryAttrs(s.Attributes())
		if fallback != "" && ft.fallback == "" {
			ft.fallback = fallback
		}
		root := !ft.hasRoot && isLocalRoot(s)
		// The variant is set where it is decided (the engine's
		// GenerateRecommendations span), not on the server span: take it
		// from any span, the local root's first.
		if variant != "" && (ft.variant == "" || root) {
			ft.variant = variant
		}
		if root {
			ft.hasRoot = true
			ft.start = s.StartTime()
			ft.duration = s.EndTime().Sub(s.StartTime())
			ft.route = attrString(s.Attributes(), "http.route")
			if ft.route == "" {
				ft.route = s.Name()
			}
		}
	}
	if !ft.hasRoot {
		ft.start = spans[0].StartTime()
	}
}

// summaryAttrs returns the values of the FallbackAttr and VariantAttr
// attributes in attrs ("" when absent) in one pass, without allocating.
func summaryAttrs(attrs []attribute.KeyValue) (fallback, variant string) {
	for _, kv := range attrs {
		switch kv.Key {
		case FallbackAttr:
			fallback = kv.Value.AsString()
		case VariantAttr:
			variant = kv.Value.AsString()
		}
	}
	return fallback, variant
}

func attrString(attrs []attribute.KeyValue, key attribute.Key) string {
	for _, kv := range attrs {
		if kv.Key == key {
			return kv.Value.String()
		}
	}
	return ""
}

// Len returns the number of stored traces.
func (f *FlightRecorder) Len() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.byID)
}

// Filter selects traces in [FlightRecorder.Query]. Zero fields match
// everything.
type Filter struct {
	// Error keeps only traces with a span whose status is Error.
	Error bool
	// Fallback keeps only traces with a sightline.fallback.reason.
	Fallback bool
	// Slow keeps only traces kept because the root was slow.
	Slow bool
	// Route keeps only traces whose root route (http.route, or the root
	// span name) equals it.
	Route string
	// Variant keeps only traces whose sightline.variant (the local
	// root's, else the first span's that has one) equals it.
	Variant string
	// MinDuration keeps only traces whose root lasted at least this long.
	MinDuration time.Duration
	// Limit caps the number of results; zero means 100.
	Limit int
}

// TraceSummary is one row of [FlightRecorder.Query], JSON-ready.
type TraceSummary struct {
	TraceID        string        `json:"trace_id"`
	Route          string        `json:"route"`
	Variant        string        `json:"variant,omitempty"`
	FallbackReason string        `json:"fallback_reason,omitempty"`
	Error          bool          `json:"error"`
	Reasons        []string      `json:"reasons"`
	Start          time.Time     `json:"start"`
	Duration       time.Duration `json:"duration"` // nanoseconds
	DurationMS     float64       `json:"duration_ms"`
	SpanCount      int           `json:"span_count"`
}

// Query returns the stored traces that match flt, newest first.
func (f *FlightRecorder) Query(flt Filter) []TraceSummary {
	limit := flt.Limit
	if limit <= 0 {
		limit = 100
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := []TraceSummary{}
	n := len(f.ring)
	for i := 1; i <= n && len(out) < limit; i++ {
		ft := f.ring[(f.next-i+n)%n]
		if ft == nil {
			break
		}
		if !ft.matches(flt) {
			continue
		}
		out = append(out, ft.summary())
	}
	return out
}

func (ft *flightTrace) matches(flt Filter) bool {
	switch {
	case flt.Error && !ft.err,
		flt.Fallback && ft.fallback == "",
		flt.Slow && !slices.Contains(ft.reasons, ReasonSlow),
		flt.Route != "" && ft.route != flt.Route,
		flt.Variant != "" && ft.variant != flt.Variant,
		flt.MinDuration > 0 && ft.duration < flt.MinDuration:
		return false
	}
	return true
}

func (ft *flightTrace) summary() TraceSummary {
	return TraceSummary{
		TraceID:        ft.id,
		Route:          ft.route,
		Variant:        ft.variant,
		FallbackReason: ft.fallback,
		Error:          ft.err,
		Reasons:        slices.Clone(ft.reasons),
		Start:          ft.start,
		Duration:       ft.duration,
		DurationMS:     float64(ft.duration) / float64(time.Millisecond),
		SpanCount:      len(ft.spans),
	}
}

// TraceView is one stored trace with all its spans, JSON-ready for the
// console's waterfall. Spans are ordered by start time.
type TraceView struct {
	TraceSummary
	Spans []SpanView `json:"spans"`
}

// SpanView is one span of a [TraceView].
type SpanView struct {
	Name         string         `json:"name"`
	SpanID       string         `json:"span_id"`
	ParentSpanID string         `json:"parent_span_id,omitempty"`
	Kind         string         `json:"kind"`
	Start        time.Time      `json:"start"`
	End          time.Time      `json:"end"`
	Duration     time.Duration  `json:"duration"` // nanoseconds
	DurationMS   float64        `json:"duration_ms"`
	Status       StatusView     `json:"status"`
	Attributes   map[string]any `json:"attributes"`
	Events       []EventView    `json:"events"`
	Links        []LinkView     `json:"links"`
}

// StatusView is a span status: code is "unset", "ok" or "error".
type StatusView struct {
	Code        string `json:"code"`
	Description string `json:"description,omitempty"`
}

// EventView is a span event.
type EventView struct {
	Name       string         `json:"name"`
	Time       time.Time      `json:"time"`
	Attributes map[string]any `json:"attributes"`
}

// LinkView is a span link.
type LinkView struct {
	TraceID    string         `json:"trace_id"`
	SpanID     string         `json:"span_id"`
	Attributes map[string]any `json:"attributes"`
}

// Trace returns the stored trace with the given hex trace id.
func (f *FlightRecorder) Trace(traceID string) (TraceView, bool) {
	f.mu.RLock()
	ft := f.byID[traceID]
	if ft == nil {
		f.mu.RUnlock()
		return TraceView{}, false
	}
	sum := ft.summary()
	spans := slices.Clone(ft.spans)
	f.mu.RUnlock()

	tv := TraceView{TraceSummary: sum, Spans: make([]SpanView, len(spans))}
	for i, s := range spans {
		tv.Spans[i] = spanView(s)
	}
	slices.SortStableFunc(tv.Spans, func(a, b SpanView) int { return a.Start.Compare(b.Start) })
	return tv, true
}

func spanView(s sdktrace.ReadOnlySpan) SpanView {
	sv := SpanView{
		Name:       s.Name(),
		SpanID:     s.SpanContext().SpanID().String(),
		Kind:       s.SpanKind().String(),
		Start:      s.StartTime(),
		End:        s.EndTime(),
		Duration:   s.EndTime().Sub(s.StartTime()),
		Status:     StatusView{Code: statusCode(s.Status().Code), Description: s.Status().Description},
		Attributes: attrMap(s.Attributes()),
		Events:     []EventView{},
		Links:      []LinkView{},
	}
	sv.DurationMS = float64(sv.Duration) / float64(time.Millisecond)
	if p := s.Parent(); p.IsValid() {
		sv.ParentSpanID = p.SpanID().String()
	}
	for _, e := range s.Events() {
		sv.Events = append(sv.Events, EventView{Name: e.Name, Time: e.Time, Attributes: attrMap(e.Attributes)})
	}
	for _, l := range s.Links() {
		sv.Links = append(sv.Links, LinkView{
			TraceID:    l.SpanContext.TraceID().String(),
			SpanID:     l.SpanContext.SpanID().String(),
			Attributes: attrMap(l.Attributes),
		})
	}
	return sv
}

func statusCode(c codes.Code) string {
	switch c {
	case codes.Error:
		return "error"
	case codes.Ok:
		return "ok"
	}
	return "unset"
}

func attrMap(attrs []attribute.KeyValue) map[string]any {
	m := make(map[string]any, len(attrs))
	for _, kv := range attrs {
		m[string(kv.Key)] = kv.Value.AsInterface()
	}
	return m
}

// ParseFilter parses the query parameters of GET /v1/traces: error,
// fallback and slow (booleans), route, variant, min_duration (a Go
// duration such as 50ms) and limit. Unknown parameters are ignored.
func ParseFilter(q url.Values) (Filter, error) {
	var f Filter
	var err error
	for _, b := range []struct {
		name string
		dst  *bool
	}{{"error", &f.Error}, {"fallback", &f.Fallback}, {"slow", &f.Slow}} {
		if v := q.Get(b.name); v != "" {
			if *b.dst, err = strconv.ParseBool(v); err != nil {
				return Filter{}, fmt.Errorf("%w: %s: %w", ErrBadFilter, b.name, err)
			}
		}
	}
	f.Route = q.Get("route")
	f.Variant = q.Get("variant")
	if v := q.Get("min_duration"); v != "" {
		if f.MinDuration, err = time.ParseDuration(v); err != nil || f.MinDuration < 0 {
			return Filter{}, fmt.Errorf("%w: min_duration %q", ErrBadFilter, v)
		}
	}
	if f.Limit, err = parseLimit(q.Get("limit")); err != nil {
		return Filter{}, err
	}
	return f, nil
}

// maxLimit caps the limit query parameter.
const maxLimit = 1000

func parseLimit(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: limit %q", ErrBadFilter, v)
	}
	return min(n, maxLimit), nil
}
