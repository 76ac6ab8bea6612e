package console

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/sightline/sightline/internal/telemetry"
)

// The Traces page lists recommendation traces by default. The event path
// keeps a one-span trace for every event that answers a kept
// recommendation ("events process", "ModelUpdate"), several per
// recommendation: listed with the rest they would bury the requests. They
// are one filter away (kind=events), and each recommendation trace's page
// lists the event-path traces that link to it.

// Trace kinds, the values of the Traces page's kind parameter.
const (
	// kindRecommend is the recommendation requests (the default).
	kindRecommend = "recommend"
	// kindEvents is the event path: event batches received and each
	// event's processing and model update.
	kindEvents = "events"
	// kindAll is every kept trace.
	kindAll = "all"
)

// traceKinds are the kinds in the order the page offers them.
var traceKinds = []struct{ Value, Label string }{
	{kindRecommend, "Recommendations"},
	{kindEvents, "Event path"},
	{kindAll, "All traces"},
}

// kindRoutes are the root routes of each kind: the http.route of a server
// span (with or without its method) or the name of a root span.
var kindRoutes = map[string][]string{
	kindRecommend: {
		"/v1/recommendations", "POST /v1/recommendations",
		"/v1/users/{user_id}/recommendations", "GET /v1/users/{user_id}/recommendations",
	},
	kindEvents: {"events process", "ModelUpdate", "/v1/events", "POST /v1/events"},
}

// clientRoutes are the routes of traces whose only kept span is an HTTP
// client's (a client in the node's process, such as the demo's simulated
// users, whose request was slow on its side only): their kind is read from
// the span's URL.
var clientRoutes = []string{"HTTP POST", "HTTP GET"}

// Scan bounds: how many client-only traces the list classifies, how many
// event-path traces it considers for a trace's linked traces, and how
// many of those it opens.
const (
	maxClientScan = 1000
	maxLinkQuery  = 5000
	maxLinkScan   = 2000
)

// tracesData is the data of the Traces page.
type tracesData struct {
	Available bool
	Q         url.Values
	Kind      string
	Kinds     []struct{ Value, Label string }
	// KindLabel names the listed kind in the caption ("" for all).
	KindLabel string
	Err       string
	Rows      []telemetry.TraceSummary
}

func (c *Console) traces(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := tracesData{Available: c.cfg.Traces != nil, Q: q, Kinds: traceKinds}
	status := http.StatusOK
	f, err := telemetry.ParseFilter(q)
	if err == nil {
		d.Kind, err = parseKind(q.Get("kind"))
	}
	switch {
	case err != nil:
		d.Err, status = err.Error(), http.StatusBadRequest
	case c.cfg.Traces != nil:
		d.Rows = c.queryKind(d.Kind, f)
	}
	switch d.Kind {
	case kindRecommend:
		d.KindLabel = "recommendation "
	case kindEvents:
		d.KindLabel = "event-path "
	}
	c.render(w, r, status, "traces", "Traces", d)
}

func parseKind(v string) (string, error) {
	switch v {
	case "":
		return kindRecommend, nil
	case kindRecommend, kindEvents, kindAll:
		return v, nil
	}
	return "", fmt.Errorf("kind %q: use recommend, events or all", v)
}

// queryKind returns the kept traces of kind that match f, newest first.
func (c *Console) queryKind(kind string, f telemetry.Filter) []telemetry.TraceSummary {
	if kind == kindAll {
		return c.cfg.Traces.Query(f)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var out []telemetry.TraceSummary
	for _, route := range kindRoutes[kind] {
		if f.Route != "" && f.Route != route {
			continue
		}
		g := f
		g.Route, g.Limit = route, limit
		out = append(out, c.cfg.Traces.Query(g)...)
	}
	for _, route := range clientRoutes {
		if f.Route != "" && f.Route != route {
			continue
		}
		g := f
		g.Route, g.Limit = route, maxClientScan
		found := 0
		for _, s := range c.cfg.Traces.Query(g) {
			if found == limit {
				break
			}
			tv, ok := c.cfg.Traces.Trace(s.TraceID)
			if !ok {
				continue
			}
			if k, pattern := kindOf(tv); k == kind {
				s.Route = route + " " + pattern + " (client)"
				out = append(out, s)
				found++
			}
		}
	}
	slices.SortStableFunc(out, func(a, b telemetry.TraceSummary) int { return b.Start.Compare(a.Start) })
	return out[:min(len(out), limit)]
}

// kindOf returns the kind of a kept trace and, for one kept only as an
// HTTP client's span, the route pattern of the URL it requested; the kind
// is "" for any other trace.
func kindOf(tv telemetry.TraceView) (kind, pattern string) {
	for k, routes := range kindRoutes {
		if slices.Contains(routes, tv.Route) {
			return k, ""
		}
	}
	if !slices.Contains(clientRoutes, tv.Route) {
		return "", ""
	}
	for _, s := range tv.Spans {
		if s.ParentSpanID != "" || s.Kind != "client" {
			continue
		}
		raw, _ := s.Attributes["url.full"].(string)
		switch p := urlPath(raw); {
		case p == "/v1/recommendations":
			return kindRecommend, p
		case strings.HasPrefix(p, "/v1/users/") && strings.HasSuffix(p, "/recommendations"):
			return kindRecommend, "/v1/users/{user_id}/recommendations" // the path holds a user id
		case p == "/v1/events":
			return kindEvents, p
		}
		return "", ""
	}
	return "", ""
}

// linkedRow is a kept event-path span that links to the trace on the
// page: an event answering the recommendation, or its model update.
type linkedRow struct {
	TraceID   string
	Span      telemetry.SpanView
	EventType string
}

// linkedTraces returns the spans of kept event-path traces that link to
// tv, in start order. It looks only at traces that started at or after
// tv, the nearest first, and opens at most maxLinkScan of them.
func (c *Console) linkedTraces(tv telemetry.TraceView) []linkedRow {
	var cands []telemetry.TraceSummary
	for _, route := range kindRoutes[kindEvents] {
		for _, s := range c.cfg.Traces.Query(telemetry.Filter{Route: route, Limit: maxLinkQuery}) {
			if !s.Start.Before(tv.Start) && s.TraceID != tv.TraceID {
				cands = append(cands, s)
			}
		}
	}
	slices.SortFunc(cands, func(a, b telemetry.TraceSummary) int {
		return cmp.Or(a.Start.Compare(b.Start), strings.Compare(a.TraceID, b.TraceID))
	})
	var out []linkedRow
	for _, s := range cands[:min(len(cands), maxLinkScan)] {
		lv, ok := c.cfg.Traces.Trace(s.TraceID)
		if !ok {
			continue
		}
		for _, sp := range lv.Spans {
			if !slices.ContainsFunc(sp.Links, func(l telemetry.LinkView) bool { return l.TraceID == tv.TraceID }) {
				continue
			}
			et, _ := sp.Attributes["sightline.event.type"].(string)
			out = append(out, linkedRow{TraceID: lv.TraceID, Span: sp, EventType: et})
		}
	}
	return out
}

// urlPath returns the path of an absolute URL. It does not parse the URL:
// redaction leaves hosts such as "[ip]" that url.Parse refuses.
func urlPath(raw string) string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return ""
	}
	i := strings.IndexByte(rest, '/')
	if i < 0 {
		return ""
	}
	p := rest[i:]
	if j := strings.IndexAny(p, "?#"); j >= 0 {
		p = p[:j]
	}
	return p
}
