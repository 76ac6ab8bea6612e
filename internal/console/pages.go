package console

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/telemetry"
)

// overviewData is the data of the Overview page.
type overviewData struct {
	HasStats       bool
	O              Overview
	Variants       []VariantView
	Reasons        []kv
	Firing         int
	Pending        int
	RefreshSeconds float64
	HasQuality     bool
	// Cluster is the cluster panel; nil on a node outside a cluster.
	Cluster *clusterData
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	d := overviewData{RefreshSeconds: c.cfg.SampleInterval.Seconds(), HasQuality: c.cfg.Quality != nil, Cluster: c.clusterPanel(r.Context())}
	if c.cfg.Stats != nil {
		d.HasStats = true
		d.O = c.cfg.Stats.Overview(r.Context())
		for _, k := range sortedKeys(d.O.Stats.FallbackRateByReason) {
			d.Reasons = append(d.Reasons, kv{Key: k, Value: pct(d.O.Stats.FallbackRateByReason[k])})
		}
		if c.cfg.Quality == nil {
			for _, v := range d.O.Stats.Variants() {
				x := d.O.Stats.CTRByVariant[v]
				d.Variants = append(d.Variants, VariantView{Variant: v, Impressions: x.Impressions, Clicks: x.Clicks, CTR: x.CTR})
			}
		}
	}
	if c.cfg.Quality != nil {
		d.Variants = configuredVariants(c.cfg.Quality.CTR())
	}
	if c.cfg.Alerts != nil {
		for _, a := range c.cfg.Alerts.Alerts() {
			switch a.State {
			case "firing":
				d.Firing++
			case "pending":
				d.Pending++
			}
		}
	}
	c.render(w, r, http.StatusOK, "overview", "Overview", d)
}

// traceData is the data of the page of one trace.
type traceData struct {
	T         telemetry.TraceView
	Rows      []spanRow
	RequestID string
	Logs      int
	HasLogs   bool
	// Recommendation marks a recommendation's trace; Linked are then the
	// kept event-path spans that link to it.
	Recommendation bool
	Linked         []linkedRow
}

// spanRow is one span of the waterfall, in tree order.
type spanRow struct {
	telemetry.SpanView
	Depth int
	// Offset and Width place the bar on a 0..1000 scale of the trace.
	Offset, Width float64
	Attrs         []kv
	Events        []eventRow
	Links         []linkRow
	RequestID     string
}

type eventRow struct {
	Name     string
	OffsetMS float64
	Attrs    []kv
}

type linkRow struct {
	TraceID, SpanID string
	Kept            bool
	Attrs           []kv
}

// requestIDAttr is the span attribute holding a recommendation's request
// id, on the request's root and on the event spans that answer it.
const requestIDAttr = "sightline.request.id"

func (c *Console) trace(w http.ResponseWriter, r *http.Request) {
	id := strings.ToLower(r.PathValue("trace_id"))
	if c.cfg.Traces == nil {
		c.render(w, r, http.StatusNotFound, "notfound", "Trace not found", notFoundData{What: "trace", ID: id})
		return
	}
	tv, ok := c.cfg.Traces.Trace(id)
	if !ok {
		c.render(w, r, http.StatusNotFound, "notfound", "Trace not found", notFoundData{What: "trace", ID: id})
		return
	}
	d := traceData{T: tv, Rows: c.waterfall(tv)}
	for _, row := range d.Rows { // the root's, or the first in tree order
		if row.RequestID != "" {
			d.RequestID = row.RequestID
			break
		}
	}
	if k, _ := kindOf(tv); k == kindRecommend {
		d.Recommendation, d.Linked = true, c.linkedTraces(tv)
	}
	if c.cfg.Logs != nil {
		d.HasLogs = true
		d.Logs = len(c.cfg.Logs.Query(telemetry.LogFilter{TraceID: tv.TraceID, Limit: 1000}))
	}
	c.render(w, r, http.StatusOK, "trace", "Trace "+tv.TraceID, d)
}

// waterfall orders the spans of tv as a tree (children after their
// parent, siblings by start time) and places each on the trace's timeline.
func (c *Console) waterfall(tv telemetry.TraceView) []spanRow {
	if len(tv.Spans) == 0 {
		return nil
	}
	start, end := tv.Spans[0].Start, tv.Spans[0].End
	ids := make(map[string]bool, len(tv.Spans))
	for _, s := range tv.Spans {
		if s.Start.Before(start) {
			start = s.Start
		}
		if s.End.After(end) {
			end = s.End
		}
		ids[s.SpanID] = true
	}
	total := max(float64(end.Sub(start)), 1)
	children := make(map[string][]int, len(tv.Spans))
	var roots []int
	for i, s := range tv.Spans { // already ordered by start
		if s.ParentSpanID == "" || !ids[s.ParentSpanID] {
			roots = append(roots, i)
			continue
		}
		children[s.ParentSpanID] = append(children[s.ParentSpanID], i)
	}
	rows := make([]spanRow, 0, len(tv.Spans))
	seen := make(map[int]bool, len(tv.Spans))
	var visit func(i, depth int)
	visit = func(i, depth int) {
		if seen[i] { // a span id repeated in a broken trace
			return
		}
		seen[i] = true
		s := tv.Spans[i]
		row := spanRow{
			SpanView: s,
			Depth:    depth,
			Offset:   float64(s.Start.Sub(start)) / total * 1000,
			Width:    max(float64(s.Duration)/total*1000, 2),
			Attrs:    attrList(s.Attributes),
		}
		row.Offset = min(row.Offset, 998)
		row.Width = min(row.Width, 1000-row.Offset)
		if v, ok := s.Attributes[requestIDAttr].(string); ok {
			row.RequestID = v
		}
		for _, e := range s.Events {
			row.Events = append(row.Events, eventRow{Name: e.Name, OffsetMS: float64(e.Time.Sub(s.Start)) / float64(time.Millisecond), Attrs: attrList(e.Attributes)})
		}
		for _, l := range s.Links {
			lr := linkRow{TraceID: l.TraceID, SpanID: l.SpanID, Attrs: attrList(l.Attributes)}
			_, lr.Kept = c.cfg.Traces.Trace(l.TraceID)
			row.Links = append(row.Links, lr)
		}
		rows = append(rows, row)
		for _, ch := range children[s.SpanID] {
			visit(ch, depth+1)
		}
	}
	for _, i := range roots {
		visit(i, 0)
	}
	return rows
}

// logsData is the data of the Logs page.
type logsData struct {
	Available bool
	Q         url.Values
	Err       string
	Lines     []logRow
}

// logRow is one log line with its fields flattened in written order.
type logRow struct {
	telemetry.LogLine
	LevelName string
	Fields    []kv
	Nulls     int
}

func (c *Console) logs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := logsData{Available: c.cfg.Logs != nil, Q: q}
	status := http.StatusOK
	f, err := telemetry.ParseLogFilter(q)
	switch {
	case err != nil:
		d.Err, status = err.Error(), http.StatusBadRequest
	case c.cfg.Logs != nil:
		lines := c.cfg.Logs.Query(f)
		d.Lines = make([]logRow, len(lines))
		for i, ll := range lines {
			d.Lines[i] = logRowOf(ll)
		}
	}
	c.render(w, r, status, "logs", "Logs", d)
}

func logRowOf(ll telemetry.LogLine) logRow {
	row := logRow{LogLine: ll, LevelName: ll.Level.String(), Fields: recordFields(ll.Record)}
	for _, f := range row.Fields {
		if f.Null {
			row.Nulls++
		}
	}
	return row
}

// decisionsData is the data of the Decisions form page.
type decisionsData struct {
	Available bool
	Recent    []telemetry.LogLine
}

func (c *Console) decisions(w http.ResponseWriter, r *http.Request) {
	if id := strings.TrimSpace(r.URL.Query().Get("request_id")); id != "" {
		http.Redirect(w, r, "/decisions/"+url.PathEscape(id), http.StatusSeeOther)
		return
	}
	d := decisionsData{Available: c.cfg.Decisions != nil}
	if c.cfg.Logs != nil {
		d.Recent = c.cfg.Logs.Query(telemetry.LogFilter{Text: `"msg":"decision`, Limit: 20})
	}
	c.render(w, r, http.StatusOK, "decisions", "Decisions", d)
}

// decisionData is the data of the page of one decision.
type decisionData struct {
	D        *engine.Decision
	Features []kv
	Nulls    int
	Stages   []stageRow
}

type stageRow struct {
	engine.StageTiming
	MS float64
}

func (c *Console) decision(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("request_id")
	var dec *engine.Decision
	ok := false
	if c.cfg.Decisions != nil {
		dec, ok = c.cfg.Decisions.Decision(id)
	}
	if !ok || dec == nil {
		c.render(w, r, http.StatusNotFound, "notfound", "Decision not found", notFoundData{What: "decision", ID: id})
		return
	}
	d := decisionData{D: dec}
	for _, name := range sortedKeys(dec.Features) {
		v := dec.Features[name]
		if v == nil {
			d.Features = append(d.Features, kv{Key: name, Value: "null", Null: true})
			d.Nulls++
			continue
		}
		d.Features = append(d.Features, kv{Key: name, Value: *v})
	}
	for _, s := range dec.Stages {
		d.Stages = append(d.Stages, stageRow{StageTiming: s, MS: float64(s.Duration) / float64(time.Millisecond)})
	}
	c.render(w, r, http.StatusOK, "decision", "Decision "+id, d)
}

// modelData is the data of the Model & data page.
type modelData struct {
	Available   bool
	Features    []FeatureView
	Variants    []VariantView
	Histogram   histogram
	Calibration CalibrationView
	CalRatio    float64
	Usage       []usageRow
}

type usageRow struct {
	Variant string
	Count   int64
	Share   float64
}

func (c *Console) model(w http.ResponseWriter, r *http.Request) {
	d := modelData{Available: c.cfg.Quality != nil}
	if q := c.cfg.Quality; q != nil {
		d.Features = q.Features()
		for i := range d.Features {
			d.Features[i].BySegment = configuredSegments(d.Features[i].BySegment)
		}
		d.Variants = configuredVariants(q.CTR())
		d.Histogram = newHistogram(q.Confidence())
		d.Calibration = q.Calibration()
		if d.Calibration.Observed > 0 {
			d.CalRatio = d.Calibration.MeanPredicted / d.Calibration.Observed
		}
		d.Usage = usageRows(q.VariantUsage(), d.Variants)
	}
	c.render(w, r, http.StatusOK, "model", "Model & data", d)
}

// histogram is a bar chart laid out for an inline SVG of 600×200.
type histogram struct {
	Bars  []bar
	Total int64
}

type bar struct {
	BucketView
	Lower      float64
	X, Y, W, H float64
}

func newHistogram(bs []BucketView) histogram {
	var h histogram
	var peak int64
	for _, b := range bs {
		h.Total += b.Count
		peak = max(peak, b.Count)
	}
	if len(bs) == 0 {
		return h
	}
	w := 600.0 / float64(len(bs))
	lower := 0.0
	for i, b := range bs {
		ht := 0.0
		if peak > 0 {
			ht = float64(b.Count) / float64(peak) * 180
		}
		h.Bars = append(h.Bars, bar{BucketView: b, Lower: lower, X: float64(i)*w + 1, W: max(w-2, 1), Y: 190 - ht, H: ht})
		lower = b.Upper
	}
	return h
}

// alertsData is the data of the Alerts page.
type alertsData struct {
	Available bool
	Groups    []alertGroup
	// SLOs is the SLOs panel; nil without an SLO source.
	SLOs *sloPanel
}

type alertGroup struct {
	State  string
	Alerts []AlertView
}

func (c *Console) alerts(w http.ResponseWriter, r *http.Request) {
	d := alertsData{Available: c.cfg.Alerts != nil, SLOs: c.sloPanel()}
	if c.cfg.Alerts != nil {
		all := c.cfg.Alerts.Alerts()
		for _, st := range []string{"firing", "pending", "resolved"} {
			g := alertGroup{State: st}
			for _, a := range all {
				if a.State == st {
					g.Alerts = append(g.Alerts, a)
				}
			}
			d.Groups = append(d.Groups, g)
		}
	}
	c.render(w, r, http.StatusOK, "alerts", "Alerts", d)
}

// drillsData is the data of the Drills page.
type drillsData struct {
	HasDrills bool
	Faults    []FaultView
	FaultsURL string
}

func (c *Console) drills(w http.ResponseWriter, r *http.Request) {
	d := drillsData{HasDrills: c.cfg.Drills != nil, FaultsURL: c.cfg.FaultsURL}
	if c.cfg.Drills != nil {
		d.Faults = c.cfg.Drills.Faults()
		slices.SortStableFunc(d.Faults, func(a, b FaultView) int { return strings.Compare(a.Name, b.Name) })
	}
	c.render(w, r, http.StatusOK, "drills", "Drills", d)
}
