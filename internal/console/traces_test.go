package console_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/sightline/sightline/internal/console"
	"github.com/sightline/sightline/internal/telemetry"
)

// floodWorld is a flight recorder as a demo fills it: a few kept
// recommendations, each answered by a flood of one-span event-path traces
// (an "events process" and a "ModelUpdate" per event) that link back to
// it, plus the other kinds of root a node keeps.
type floodWorld struct {
	traces *telemetry.FlightRecorder
	// recs are the recommendation traces, oldest first (the last is
	// kept only as the client's span); events maps each to the
	// event-path traces linking to it.
	recs   []string
	events map[string][]string
	// batch is a POST /v1/events trace, clientEvents a client-only one,
	// stats a GET /v1/stats trace.
	batch, clientEvents, stats string
}

const floodRecs, floodEventsPerRec = 30, 10

func newFloodWorld() *floodWorld {
	w := &floodWorld{traces: telemetry.NewFlightRecorder(0, 0), events: map[string][]string{}}
	n := 0
	span := func(name string, kind trace.SpanKind, at time.Time, attrs []attribute.KeyValue, links ...trace.SpanContext) string {
		n++
		tid := traceID(100_000 + n)
		s := tracetest.SpanStub{
			Name:        name,
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: spanID(n, 0), TraceFlags: trace.FlagsSampled}),
			SpanKind:    kind, StartTime: at, EndTime: at.Add(200 * time.Microsecond), Attributes: attrs,
		}
		for _, l := range links {
			s.Links = append(s.Links, sdktrace.Link{SpanContext: l, Attributes: []attribute.KeyValue{attribute.String("sightline.link", "recommendation")}})
		}
		w.traces.Record([]sdktrace.ReadOnlySpan{s.Snapshot()}, []string{telemetry.ReasonSampled})
		return tid.String()
	}
	for i := range floodRecs {
		at := epoch.Add(time.Duration(i) * time.Second)
		var rec string
		if i == floodRecs-1 {
			rec = span("HTTP POST", trace.SpanKindClient, at, []attribute.KeyValue{
				attribute.String("http.request.method", "POST"), attribute.String("url.full", "http://[ip]:8080/v1/recommendations"),
			})
		} else {
			rec = span("POST /v1/recommendations", trace.SpanKindServer, at, []attribute.KeyValue{
				attribute.String("http.route", "/v1/recommendations"), attribute.String("sightline.request.id", requestID(i)),
			})
		}
		w.recs = append(w.recs, rec)
		tid, _ := trace.TraceIDFromHex(rec)
		link := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: spanID(n, 0), TraceFlags: trace.FlagsSampled})
		for j := range floodEventsPerRec / 2 {
			et := at.Add(time.Duration(10+j) * time.Millisecond)
			attrs := []attribute.KeyValue{attribute.String("sightline.request.id", requestID(i)), attribute.String("sightline.event.type", "impression")}
			w.events[rec] = append(w.events[rec],
				span("events process", trace.SpanKindConsumer, et, attrs, link),
				span("ModelUpdate", trace.SpanKindConsumer, et.Add(time.Microsecond), attrs, link))
		}
	}
	end := epoch.Add(floodRecs * time.Second)
	w.batch = span("POST /v1/events", trace.SpanKindServer, end, []attribute.KeyValue{attribute.String("http.route", "/v1/events")})
	w.clientEvents = span("HTTP POST", trace.SpanKindClient, end.Add(time.Millisecond), []attribute.KeyValue{attribute.String("url.full", "http://[ip]:8080/v1/events")})
	w.stats = span("GET /v1/stats", trace.SpanKindServer, end.Add(2*time.Millisecond), []attribute.KeyValue{attribute.String("http.route", "/v1/stats")})
	return w
}

// listed returns the trace ids the Traces page lists, in order.
func listed(body string) []string {
	i := strings.Index(body, `<table class="traces">`)
	if i < 0 {
		return nil
	}
	var out []string
	for _, m := range regexp.MustCompile(`<a class="id" href="/traces/([0-9a-f]{32})">`).FindAllStringSubmatch(body[i:], -1) {
		out = append(out, m[1])
	}
	return out
}

func newestFirst(ids ...[]string) []string {
	var out []string
	for _, s := range ids {
		out = append(out, s...)
	}
	slices.Reverse(out)
	return out
}

// TestTracesKinds lists recommendation traces by default, however many
// event-path traces were kept after them, and the event path or every
// trace behind the kind filter.
func TestTracesKinds(t *testing.T) {
	w := newFloodWorld()
	srv := newServer(t, console.Config{Traces: w.traces})
	var allEvents []string
	lastEvents := w.events[w.recs[floodRecs-1]] // events process, ModelUpdate, events process, …
	for _, rec := range w.recs {
		allEvents = append(allEvents, w.events[rec]...)
	}
	tests := []struct {
		path string
		want []string
		text []string
	}{
		{"/traces", newestFirst(w.recs), []string{
			"30 kept recommendation traces", "HTTP POST /v1/recommendations (client)",
			`<strong aria-current="page">Recommendations</strong>`, `href="/traces?kind=events"`,
		}},
		{"/traces?kind=recommend&limit=5", newestFirst(w.recs[floodRecs-5:]), []string{"5 kept recommendation traces"}},
		{"/traces?kind=recommend&route=HTTP+POST", []string{w.recs[floodRecs-1]}, nil},
		{"/traces?kind=events&limit=1000", newestFirst(allEvents, []string{w.batch, w.clientEvents}), []string{
			"kept event-path traces", "HTTP POST /v1/events (client)", `<option value="events" selected>`,
		}},
		// The newest three ModelUpdate traces: the last recommendation's.
		{"/traces?kind=events&route=ModelUpdate&limit=3", []string{lastEvents[9], lastEvents[7], lastEvents[5]}, nil},
		{"/traces?kind=all&limit=2", []string{w.stats, w.clientEvents}, []string{"2 kept traces"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			status, _, body := get(t, srv, tt.path)
			if status != 200 {
				t.Fatalf("GET %s status = %d, want 200", tt.path, status)
			}
			if diff := cmp.Diff(tt.want, listed(body)); diff != "" {
				t.Errorf("GET %s listed traces (-want +got):\n%s", tt.path, diff)
			}
			for _, s := range tt.text {
				if !strings.Contains(body, s) {
					t.Errorf("GET %s body lacks %q", tt.path, s)
				}
			}
		})
	}
	if status, _, body := get(t, srv, "/traces?kind=spans"); status != 400 || !strings.Contains(body, "use recommend, events or all") {
		t.Errorf("GET /traces?kind=spans = %d, want 400 naming the kinds", status)
	}
}

// TestTraceLinkedEvents shows, on a recommendation's trace, the
// event-path spans that link to it and no other; an event-path trace
// links back to the recommendation.
func TestTraceLinkedEvents(t *testing.T) {
	w := newFloodWorld()
	srv := newServer(t, console.Config{Traces: w.traces})
	linkedIDs := regexp.MustCompile(`<table class="linked">[\s\S]*?</table>`)
	for _, rec := range []string{w.recs[0], w.recs[floodRecs/2], w.recs[floodRecs-1]} {
		_, _, body := get(t, srv, "/traces/"+rec)
		table := linkedIDs.FindString(body)
		var got []string
		for _, m := range regexp.MustCompile(`href="/traces/([0-9a-f]{32})"`).FindAllStringSubmatch(table, -1) {
			got = append(got, m[1])
		}
		if diff := cmp.Diff(w.events[rec], got); diff != "" {
			t.Errorf("GET /traces/%s linked event-path traces (-want +got):\n%s", rec, diff)
		}
		if !strings.Contains(table, "ModelUpdate") || !strings.Contains(table, "impression") {
			t.Errorf("GET /traces/%s linked table lacks the span name and event type: %s", rec, table)
		}
	}
	ev := w.events[w.recs[3]][0]
	_, _, body := get(t, srv, "/traces/"+ev)
	if strings.Contains(body, "Event-path traces linked") || !strings.Contains(body, `href="/traces/`+w.recs[3]+`"`) {
		t.Errorf("GET /traces/%s (events process): want a link to its recommendation %s and no linked-events section", ev, w.recs[3])
	}
	_, _, body = get(t, srv, "/traces/"+w.stats)
	if strings.Contains(body, "Event-path traces linked") {
		t.Errorf("GET /traces/%s (GET /v1/stats) has a linked-events section", w.stats)
	}
}
