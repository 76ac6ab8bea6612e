package console_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/sightline/sightline/internal/console"
	"github.com/sightline/sightline/internal/engine"
)

// hostile is what a client may put in a header, an id or a profile field
// that ends up in span attributes, log lines or alert labels.
const hostile = `<script>alert(1)</script>"'><img src=x onerror=alert(2)>`

// TestEscaping renders every page with hostile strings in every
// user-influenced field and checks none comes out as markup.
func TestEscaping(t *testing.T) {
	w := newWorld(10, 50)
	tid := traceID(9999)
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: spanID(9999, 0), TraceFlags: trace.FlagsSampled})
	w.traces.Record([]sdktrace.ReadOnlySpan{tracetest.SpanStub{
		Name: hostile, SpanContext: sc, StartTime: epoch, EndTime: epoch.Add(time.Millisecond),
		Attributes: []attribute.KeyValue{
			attribute.String("http.route", hostile), attribute.String("sightline.variant", hostile),
			attribute.String("sightline.request.id", hostile), attribute.String(hostile, hostile),
		},
		Events: []sdktrace.Event{{Name: hostile, Time: epoch, Attributes: []attribute.KeyValue{attribute.String(hostile, hostile)}}},
		Links:  []sdktrace.Link{{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.String(hostile, hostile)}}},
	}.Snapshot()}, []string{hostile})
	line, err := json.Marshal(map[string]any{
		"time": epoch, "level": "WARN", "msg": hostile, "trace_id": tid.String(), "request_id": hostile,
		hostile: map[string]any{hostile: nil, "x": hostile},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.logs.Add(line); err != nil {
		t.Fatalf("LogStore.Add(hostile) error = %v", err)
	}
	w.decisions[hostile] = &engine.Decision{
		RequestID: hostile, Segment: hostile, Channel: hostile, Variant: hostile, ModelVersion: hostile,
		Features: map[string]*string{hostile: new(hostile), "null": nil}, TraceID: hostile, FallbackDetail: hostile,
		Fallback: engine.Reason(hostile), Items: []engine.Item{{ItemID: hostile, Category: hostile, Reason: hostile}},
		Stages: []engine.StageTiming{{Stage: hostile, Error: hostile}},
	}
	cfg := w.config()
	cfg.Alerts = fakeAlerts{{
		Name: hostile, State: "firing", Severity: hostile, Summary: hostile, Description: hostile,
		RunbookURL: "javascript:alert(3)", Labels: map[string]string{hostile: hostile},
		Hints:         []console.HintView{{Kind: hostile, Name: hostile, Segment: hostile, Detail: hostile}},
		ExampleTraces: []string{hostile, "javascript:alert(4)"},
	}}
	cfg.Quality = fakeQuality{features: []console.FeatureView{{Name: hostile, BySegment: []console.SegmentView{{Segment: hostile}}}}}
	cfg.Drills = hostileDrills{}
	cfg.Cluster = fakeCluster{Node: hostile, Role: hostile, Trainer: hostile, Publisher: hostile, ModelVersion: hostile, Problem: hostile, Evaluated: epoch,
		Served: []console.ServedView{{Node: hostile, Variant: hostile, ModelVersion: hostile + "x", Decisions: 3}}}
	ex := fixtureExperiment()
	ex.Control, ex.Variants[0].Name, ex.Variants[1].Name = hostile, hostile, hostile
	ex.SRM.Mismatch = true
	cfg.Experiments = fakeExperiments(ex)
	ev := fixtureEvaluation()
	ev.ReportPath, ev.DecisionsDir, ev.DataDir, ev.Err = hostile, hostile, hostile, hostile
	rep := *ev.Report
	rep.Source, rep.Notes = hostile, []string{hostile}
	rep.Logged.Variants = []console.LoggedVariantView{{Variant: hostile}}
	rep.Policies = append([]console.PolicyView(nil), rep.Policies...)
	for i := range rep.Policies {
		p := &rep.Policies[i]
		p.Spec, p.Kind, p.Warnings = hostile, hostile, []string{hostile}
		p.Reasons = append(p.Reasons, hostile)
		p.Estimates = append(p.Estimates, console.EstimateView{Estimator: hostile})
	}
	ev.Report = &rep
	cfg.Evaluations = fakeEvaluations(ev)
	ro := fixtureRollout()
	ro.Version, ro.Source, ro.Checks[0].Detail = hostile, hostile, hostile
	ro.Timeline[0].Detail, ro.Timeline[0].Reason, ro.Timeline[0].TraceID = hostile, hostile, hostile
	cfg.Rollouts = fakeRollouts(ro)
	cfg.FaultsURL = hostile
	srv := newServer(t, cfg)
	q := url.QueryEscape(hostile)

	for _, path := range []string{
		"/", "/traces?kind=all", "/traces?route=" + q, "/traces?kind=" + q, "/traces/" + tid.String(), "/logs", "/logs?q=" + q,
		"/logs?trace_id=" + q, "/decisions", "/decisions/" + hostile, "/model", "/experiments", "/rollouts", "/evaluate", "/alerts", "/drills",
		"/traces/" + hostile, "/" + hostile,
	} {
		_, _, body := get(t, srv, path)
		for _, bad := range []string{"<script>alert", "<img src=x", `href="javascript:`, "onerror=alert(2)>"} {
			if strings.Contains(body, bad) {
				i := strings.Index(body, bad)
				t.Errorf("GET %s body contains %q unescaped: …%s…", path, bad, body[max(i-80, 0):min(i+80, len(body))])
			}
		}
		if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") && path != "/decisions" {
			t.Errorf("GET %s body does not show the hostile string escaped", path)
		}
	}
}

type hostileDrills struct{}

func (hostileDrills) Faults() []console.FaultView {
	return []console.FaultView{{Name: hostile, Description: hostile}}
}
