package console_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/sightline/sightline/internal/console"
	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/quality"
	"github.com/sightline/sightline/internal/telemetry"
)

// epoch is the fixture's wall clock origin.
var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// world is a node's telemetry shaped like the real one: a real flight
// recorder and log store filled through their public APIs with
// recommendation traces (every tenth a missing_features fallback with
// user_age_bucket null) and click-processing traces linked back to them.
type world struct {
	traces    *telemetry.FlightRecorder
	logs      *telemetry.LogStore
	decisions fakeDecisions
	// fallbackTrace is a kept trace with a fallback; clickTrace an
	// "events process" trace linking to recTrace.
	fallbackTrace, recTrace, clickTrace string
	fallbackRequest                     string
}

func traceID(i int) trace.TraceID {
	var t trace.TraceID
	binary.BigEndian.PutUint64(t[0:8], 0x5157_0000_0000_0000|uint64(i))
	binary.BigEndian.PutUint64(t[8:16], uint64(i)*2654435761+1)
	return t
}

func spanID(i, j int) trace.SpanID {
	var s trace.SpanID
	binary.BigEndian.PutUint64(s[:], uint64(i)<<8|uint64(j)+1)
	return s
}

func requestID(i int) string { return fmt.Sprintf("req-%06d", i) }

// newWorld records nTraces recommendation traces (plus a click trace for
// every fifth) and nLines log lines spread over them.
func newWorld(nTraces, nLines int) *world {
	w := &world{
		traces:    telemetry.NewFlightRecorder(nTraces+nTraces/5+16, 0),
		logs:      telemetry.NewLogStore(nLines),
		decisions: fakeDecisions{},
	}
	for i := range nTraces {
		fallback := i%10 == 3
		w.traces.Record(recommendationSpans(i, fallback), reasons(fallback))
		if i%5 == 4 {
			w.traces.Record(clickSpans(nTraces+i, i), []string{telemetry.ReasonSampled})
			w.recTrace, w.clickTrace = traceID(i).String(), traceID(nTraces+i).String()
		}
		if fallback {
			w.fallbackTrace, w.fallbackRequest = traceID(i).String(), requestID(i)
		}
		if i < 2000 || fallback {
			w.decisions[requestID(i)] = decisionOf(i, fallback)
		}
	}
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	log := slog.New(h)
	for n := range nLines {
		i := n % max(nTraces, 1)
		buf.Reset()
		logLine(log, i, i%10 == 3)
		_ = w.logs.Add(buf.Bytes())
	}
	return w
}

func reasons(fallback bool) []string {
	if fallback {
		return []string{telemetry.ReasonFallback}
	}
	return []string{telemetry.ReasonSampled}
}

func recommendationSpans(i int, fallback bool) []sdktrace.ReadOnlySpan {
	tid := traceID(i)
	start := epoch.Add(time.Duration(i) * time.Millisecond)
	sc := func(j int) trace.SpanContext {
		return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: spanID(i, j), TraceFlags: trace.FlagsSampled})
	}
	variant := "ftrl"
	if i%2 == 1 {
		variant = "popularity"
	}
	rootAttrs := []attribute.KeyValue{
		attribute.String("http.route", "/v1/recommendations"),
		attribute.String("http.request.method", "POST"),
		attribute.Int("http.response.status_code", 200),
		attribute.String("sightline.request.id", requestID(i)),
		attribute.String(telemetry.VariantAttr, variant),
	}
	genAttrs := []attribute.KeyValue{attribute.String("sightline.model.version", "ftrl-42"), attribute.Float64("sightline.model.confidence", 0.71)}
	var genEvents []sdktrace.Event
	if fallback {
		genAttrs = append(genAttrs, attribute.String(telemetry.FallbackAttr, string(engine.ReasonMissingFeatures)))
		genEvents = append(genEvents, sdktrace.Event{Name: "fallback", Time: start.Add(900 * time.Microsecond),
			Attributes: []attribute.KeyValue{attribute.String("reason", "missing_features"), attribute.String("missing", "user_age_bucket")}})
	}
	stub := func(j, parent int, name string, off, dur time.Duration, kind trace.SpanKind, attrs []attribute.KeyValue, evs []sdktrace.Event) sdktrace.ReadOnlySpan {
		s := tracetest.SpanStub{
			Name: name, SpanContext: sc(j), SpanKind: kind,
			StartTime: start.Add(off), EndTime: start.Add(off + dur),
			Attributes: attrs, Events: evs,
		}
		if parent >= 0 {
			s.Parent = sc(parent)
		}
		return s.Snapshot()
	}
	return []sdktrace.ReadOnlySpan{
		stub(1, 0, "GenerateRecommendations", 50*time.Microsecond, 1800*time.Microsecond, trace.SpanKindInternal, genAttrs, genEvents),
		stub(2, 1, "FeatureFetch", 60*time.Microsecond, 200*time.Microsecond, trace.SpanKindInternal, nil, nil),
		stub(3, 1, "CandidateGeneration", 270*time.Microsecond, 300*time.Microsecond, trace.SpanKindInternal, []attribute.KeyValue{attribute.Int("sightline.candidates", 200)}, nil),
		stub(4, 1, "ModelInference", 580*time.Microsecond, 700*time.Microsecond, trace.SpanKindInternal, nil, nil),
		stub(5, 1, "BusinessRules", 1290*time.Microsecond, 400*time.Microsecond, trace.SpanKindInternal, nil, nil),
		stub(0, -1, "POST /v1/recommendations", 0, 2*time.Millisecond, trace.SpanKindServer, rootAttrs, nil),
	}
}

func clickSpans(i, rec int) []sdktrace.ReadOnlySpan {
	start := epoch.Add(time.Duration(rec)*time.Millisecond + time.Second)
	s := tracetest.SpanStub{
		Name:        "events process",
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID(i), SpanID: spanID(i, 0), TraceFlags: trace.FlagsSampled}),
		SpanKind:    trace.SpanKindConsumer,
		StartTime:   start, EndTime: start.Add(80 * time.Microsecond),
		Attributes: []attribute.KeyValue{
			attribute.String("messaging.system", "sightline"),
			attribute.Int64("messaging.message.offset", int64(rec)),
			attribute.String("sightline.request.id", requestID(rec)),
		},
		Links:  []sdktrace.Link{{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID(rec), SpanID: spanID(rec, 0)})}},
		Status: sdktrace.Status{Code: codes.Unset},
	}
	return []sdktrace.ReadOnlySpan{s.Snapshot()}
}

// logLine writes the decision log line of request i the way the engine
// does (features group, nulls as null), with the top-level trace fields
// the telemetry handler adds.
func logLine(log *slog.Logger, i int, fallback bool) {
	age := slog.String("user_age_bucket", "25-34")
	level, msg, reason := slog.LevelInfo, "decision", ""
	if fallback {
		age = slog.Any("user_age_bucket", nil)
		level, msg, reason = slog.LevelWarn, "decision fallback", string(engine.ReasonMissingFeatures)
	}
	log.LogAttrs(context.Background(), level, msg,
		slog.String("trace_id", traceID(i).String()),
		slog.String("span_id", spanID(i, 1).String()),
		slog.String("trace_flags", "01"),
		slog.String("request_id", requestID(i)),
		slog.String("user_hash", "u_3f9a0c"),
		slog.String("variant", "ftrl"),
		slog.String("model_version", "ftrl-42"),
		slog.Group("features", age, slog.String("user_device", "ios"), slog.String("user_region", "eu"), slog.String("user_segment", "new")),
		slog.Int("candidates", 200),
		slog.Float64("confidence", 0.71),
		slog.String("fallback_reason", reason),
	)
}

func decisionOf(i int, fallback bool) *engine.Decision {
	age := "25-34"
	d := &engine.Decision{
		RequestID: requestID(i), Time: epoch.Add(time.Duration(i) * time.Millisecond),
		UserHash: "u_3f9a0c", KnownUser: true, Segment: "new", Channel: "web", Variant: "ftrl", ModelVersion: "ftrl-42",
		Features:   map[string]*string{"user_age_bucket": &age, "user_region": new("eu")},
		Candidates: 200,
		Items: []engine.Item{
			{ItemID: "i00042", Category: "c03", Score: 0.31, Reason: "model", Propensity: 0.9},
			{ItemID: "i00077", Category: "c11", Score: 0.12, Reason: "explore", Propensity: 0.05},
		},
		Confidence: 0.71,
		Stages: []engine.StageTiming{
			{Stage: engine.StageFeatures, Duration: 200 * time.Microsecond},
			{Stage: engine.StageCandidates, Duration: 300 * time.Microsecond},
			{Stage: engine.StageInference, Duration: 700 * time.Microsecond},
			{Stage: engine.StageRules, Duration: 400 * time.Microsecond},
		},
		Duration: 2 * time.Millisecond,
		TraceID:  traceID(i).String(),
	}
	if fallback {
		d.Features["user_age_bucket"] = nil
		d.Fallback, d.FallbackDetail = engine.ReasonMissingFeatures, "user_age_bucket missing"
	}
	return d
}

// fakeDecisions is the engine's decision ring.
type fakeDecisions map[string]*engine.Decision

func (f fakeDecisions) Decision(id string) (*engine.Decision, bool) {
	d, ok := f[id]
	return d, ok
}

// fakeStats returns a fixed overview, with a request rate that follows
// the clock so history samples differ.
type fakeStats struct{ now func() time.Time }

func (f fakeStats) Overview(context.Context) console.Overview {
	rps := 100.0
	if f.now != nil {
		rps = float64(f.now().Unix() % 1000)
	}
	return console.Overview{
		Stats: quality.Snapshot{
			RequestsPerSecond: rps, EventsPerSecond: 950,
			Latency:   quality.Latency{P50: 0.8, P95: 2.1, P99: 4.7},
			ErrorRate: 0.001, FallbackRate: 0.08,
			FallbackRateByReason: map[string]float64{"missing_features": 0.08},
			CTRByVariant:         map[string]quality.VariantCTR{"ftrl": {Impressions: 1000, Clicks: 40, CTR: 0.04}},
		},
		ModelVersion: "ftrl-42",
		IngestLag:    1500 * time.Millisecond,
	}
}

// fakeAlerts returns fixed alerts.
type fakeAlerts []console.AlertView

func (f fakeAlerts) Alerts() []console.AlertView { return f }

// fakeQuality returns fixed quality figures.
type fakeQuality struct{ features []console.FeatureView }

func (f fakeQuality) Features() []console.FeatureView { return f.features }
func (fakeQuality) CTR() []console.VariantView {
	return []console.VariantView{
		{Variant: "ftrl", Impressions: 1000, Clicks: 25, CTR: 0.025, Baseline: 0.04, Ratio: 0.625},
		{Variant: "popularity", Impressions: 1000, Clicks: 20, CTR: 0.02, Baseline: 0.02, Ratio: 1},
	}
}
func (fakeQuality) Confidence() []console.BucketView {
	return []console.BucketView{{Upper: 0.25, Count: 3}, {Upper: 0.5, Count: 10}, {Upper: 0.75, Count: 40}, {Upper: 1, Count: 7}}
}
func (fakeQuality) Calibration() console.CalibrationView {
	return console.CalibrationView{MeanPredicted: 0.05, Observed: 0.025, Samples: 1234}
}
func (fakeQuality) VariantUsage() map[string]int64 {
	return map[string]int64{"ftrl": 510, "popularity": 490}
}

// fakeDrills lists two faults, one active.
type fakeDrills struct{}

func (fakeDrills) Faults() []console.FaultView {
	return []console.FaultView{
		{Name: "slow-feature-store", Description: "adds latency to feature reads"},
		{Name: "etl-null-age", Description: "ETL stops populating user_age_bucket for new users", Active: true, Since: epoch},
	}
}

func ageFeatures() []console.FeatureView {
	return []console.FeatureView{
		{Name: "user_age_bucket", NullRatio: 0.31, BaselineNullRatio: 0.01, PSI: 1.9, Samples: 5000, BaselineSamples: 4800,
			BySegment: []console.SegmentView{
				{Segment: "new", NullRatio: 0.97, BaselineNullRatio: 0.02, PSI: 3.4, Samples: 800, BaselineSamples: 700},
				{Segment: "power", NullRatio: 0.0, BaselineNullRatio: 0.0, PSI: 0.01, Samples: 900, BaselineSamples: 1000},
			}},
		{Name: "user_region", NullRatio: 0.0, BaselineNullRatio: 0.0, PSI: 0.02, Samples: 5000, BaselineSamples: 4800},
	}
}

// fakeExperiments returns a fixed experiment.
type fakeExperiments console.ExperimentView

func (f fakeExperiments) Experiment() console.ExperimentView { return console.ExperimentView(f) }

// fixtureExperiment is a running A/B test: ftrl beats the popularity
// control (p 0.0012), a third arm "ranker" has too little data to say, and
// the split holds.
func fixtureExperiment() console.ExperimentView {
	return console.ExperimentView{
		Control: "popularity",
		Variants: []console.ExperimentVariantView{
			{Name: "ftrl", Weight: 45, Decisions: 4512, Impressions: 40210, Clicks: 1206, Conversions: 97,
				CTR: console.RateView{Value: 0.03, Low: 0.0284, High: 0.0317}, Conversion: console.RateView{Value: 0.0804, Low: 0.0664, High: 0.0971},
				Lift:   &console.LiftView{Absolute: 0.01, AbsoluteLow: 0.0078, AbsoluteHigh: 0.0122, Relative: 0.5, RelativeLow: 0.37, RelativeHigh: 0.64},
				PValue: new(0.0012), MDE: new(0.0027)},
			{Name: "popularity", Weight: 45, Decisions: 4488, Impressions: 39870, Clicks: 797, Conversions: 51,
				CTR: console.RateView{Value: 0.02, Low: 0.0187, High: 0.0214}, Conversion: console.RateView{Value: 0.064, Low: 0.049, High: 0.0832}},
			{Name: "ranker", Weight: 10, Decisions: 1000, Impressions: 120, Clicks: 3,
				CTR: console.RateView{Value: 0.025, Low: 0.0085, High: 0.0709}, Conversion: console.RateView{Value: 0, Low: 0, High: 0.5615},
				PValue: new(0.93)},
		},
		SRM: console.SRMView{ChiSquare: 0.07, P: 0.9656, Threshold: 0.001},
	}
}

// fakeCluster returns a fixed cluster state.
type fakeCluster console.ClusterView

func (f fakeCluster) Cluster(context.Context) console.ClusterView { return console.ClusterView(f) }

// fixtureCluster is API node api-1's view: trainer-a is active and
// published ftrl-43, which api-2 does not serve yet.
func fixtureCluster() console.ClusterView {
	return console.ClusterView{
		Node: "api-1", Role: "api", Trainer: "trainer-a", Publisher: "trainer-a", ModelVersion: "ftrl-43",
		Evaluated: epoch.Add(-20 * time.Second),
		Served: []console.ServedView{
			{Node: "api-1", Variant: "ftrl", ModelVersion: "ftrl-43", Decisions: 1200, Fallbacks: 12},
			{Node: "api-1", Variant: "popularity", ModelVersion: "ftrl-43", Decisions: 1180},
			{Node: "api-2", Variant: "ftrl", ModelVersion: "ftrl-42", Decisions: 900, Fallbacks: 90},
		},
	}
}

// fakeEvaluations returns a fixed evaluation state.
type fakeEvaluations console.EvaluationState

func (f fakeEvaluations) LastEvaluation(context.Context) console.EvaluationState {
	return console.EvaluationState(f)
}

// fixtureEvaluation is a run over 120,000 logged decisions: popularity is
// well covered (trustworthy, DR 2.31%), a greedy ftrl snapshot is not (few
// logged slots look like its choices, many it could never be shown), and
// its position 2 alone fails.
func fixtureEvaluation() console.EvaluationState {
	th := console.EvaluationThresholds{MinESS: 100, MinESSShare: 0.01, MaxUnsupported: 0.1, MaxClippedMass: 0.1}
	iv := func(v, lo, hi float64) *console.IntervalView {
		return &console.IntervalView{Value: v, Low: lo, High: hi}
	}
	est := func(ips, snips, dr float64) []console.EstimateView {
		return []console.EstimateView{
			{Estimator: "ips", CTR: iv(ips, ips-0.002, ips+0.002), ClicksPerDecision: iv(ips*5, ips*5-0.01, ips*5+0.01)},
			{Estimator: "snips", CTR: iv(snips, snips-0.0015, snips+0.0015), ClicksPerDecision: iv(snips*5, snips*5-0.008, snips*5+0.008)},
			{Estimator: "dr", CTR: iv(dr, dr-0.001, dr+0.001), ClicksPerDecision: iv(dr*5, dr*5-0.005, dr*5+0.005)},
		}
	}
	return console.EvaluationState{
		ReportPath: "/var/lib/sightline/evaluations/last.json", DecisionsDir: "/var/lib/sightline/decisions", DataDir: "/var/lib/sightline",
		Report: &console.EvaluationView{
			Created: epoch, Elapsed: 41 * time.Second, Source: "/var/lib/sightline/decisions",
			From: epoch.Add(-24 * time.Hour), To: epoch.Add(-time.Minute),
			Decisions: 120_000, Slots: 600_000, Events: 631_000, Fallbacks: 240, Clip: 100, Bootstrap: 200, Level: 0.95,
			Thresholds: th,
			Logged: console.LoggedView{
				CTR: console.IntervalView{Value: 0.021, Low: 0.0205, High: 0.0215}, ClicksPerDecision: console.IntervalView{Value: 0.105, Low: 0.1025, High: 0.1075},
				ConversionRate: 0.0012,
				Variants:       []console.LoggedVariantView{{Variant: "ftrl", Decisions: 60_000, Slots: 300_000, CTR: 0.024, ConversionRate: 0.0014}},
			},
			Notes: []string{"A recommendation is a slate: each position is estimated on its own (independent-item estimator)."},
			Policies: []console.PolicyView{
				{Spec: "popularity", Kind: "popularity", Trustworthy: true,
					Estimates: est(0.0232, 0.0229, 0.0231), Conversions: est(0.0011, 0.0011, 0)[:2],
					Diagnostics: console.DiagnosticsView{Slots: 600_000, ESS: 48_000, ESSShare: 0.08, Unsupported: 0.02, Matched: 0.4, MeanWeight: 0.98, MaxWeight: 40, ClippedShare: 0.001, ClippedMass: 0.004},
					Positions: []console.PositionView{
						{Position: 1, LoggedCTR: 0.03, Estimates: est(0.033, 0.032, 0.0325), Trustworthy: true,
							Diagnostics: console.DiagnosticsView{Slots: 120_000, ESS: 15_000, ESSShare: 0.125, Unsupported: 0.01}},
					}},
				{Spec: "snapshot:/tmp/ftrl-greedy.snap", Kind: "snapshot", Trustworthy: false,
					Reasons:     []string{"low_effective_sample_size", "unsupported_choices"},
					Estimates:   est(0.041, 0.035, 0.037),
					Diagnostics: console.DiagnosticsView{Slots: 600_000, ESS: 80, ESSShare: 0.0001, Unsupported: 0.37, Matched: 0.05, MeanWeight: 0.61, MaxWeight: 100, ClippedShare: 0.03, ClippedMass: 0.05},
					Positions: []console.PositionView{
						{Position: 1, LoggedCTR: 0.03, Estimates: est(0.045, 0.04, 0.041), Trustworthy: true,
							Diagnostics: console.DiagnosticsView{Slots: 120_000, ESS: 900, ESSShare: 0.0075, Unsupported: 0.05}},
						{Position: 2, LoggedCTR: 0.022, Estimates: est(0.05, 0.03, 0.031), Trustworthy: false, Reasons: []string{"clipped_weights"},
							Diagnostics: console.DiagnosticsView{Slots: 120_000, ESS: 60, ESSShare: 0.0005, Unsupported: 0.4, ClippedShare: 0.2}},
					},
					Warnings: []string{"the snapshot was trained on the evaluated period"}},
			},
		},
	}
}

// config wires w and the fakes into a console Config.
func (w *world) config() console.Config {
	return console.Config{
		Traces:      w.traces,
		Logs:        w.logs,
		Decisions:   w.decisions,
		Stats:       fakeStats{},
		Quality:     fakeQuality{features: ageFeatures()},
		Drills:      fakeDrills{},
		Experiments: fakeExperiments(fixtureExperiment()),
		Cluster:     fakeCluster(fixtureCluster()),
		Evaluations: fakeEvaluations(fixtureEvaluation()),
		SLOs:        fixtureSLOs(1),
		Rollouts:    fakeRollouts(fixtureRolloutAt(time.Now())),
		Alerts: fakeAlerts{{
			Name: "FeatureNullRateHigh", State: "firing", Severity: "warning",
			Summary:     "user_age_bucket is null in 31% of requests",
			Description: "A model input is missing far more often than in training.",
			RunbookURL:  "docs/runbooks/FeatureNullRateHigh.md",
			Labels:      map[string]string{"feature": "user_age_bucket"},
			Value:       0.31, ActiveAt: epoch, FiredAt: epoch.Add(2 * time.Minute),
			Hints: []console.HintView{{Kind: "feature", Name: "user_age_bucket", Segment: "new",
				Detail: "user_age_bucket null in segment new: 0.02 → 0.97 (+0.95), PSI 3.4", Score: 0.95}},
			ExampleTraces: []string{w.fallbackTrace},
		}, {
			Name: "HighP99Latency", State: "resolved", Severity: "page", Value: 0.012,
			ActiveAt: epoch, ResolvedAt: epoch.Add(time.Minute),
		}},
	}
}

// fakeRollouts returns a fixed rollout.
type fakeRollouts console.RolloutView

func (f fakeRollouts) Rollout() console.RolloutView { return console.RolloutView(f) }

// fixtureRollout is a challenger at its 25% step: CTR still waiting for
// data, the other guardrails passing.
func fixtureRollout() console.RolloutView {
	return console.RolloutView{
		Stage: "canary", Version: "ftrl-next-7", Source: "/models/next.snap",
		Steps: []float64{0.05, 0.25, 0.5}, Step: 1, Share: 0.25, StepHold: 10 * time.Minute,
		StartedAt: epoch.Add(-14 * time.Minute), Since: epoch.Add(-4 * time.Minute),
		Checks: []console.RolloutCheckView{
			{Name: "ctr", Status: "wait", Challenger: 0.031, Champion: 0.030, Limit: -0.1, Detail: "1450 and 20100 impressions of the 2000 each arm needs"},
			{Name: "calibration", Status: "pass", Challenger: 1.08, Champion: 1.02, Limit: 2, Detail: "predicted/observed CTR 1.08 within [0.50, 2.00]"},
			{Name: "latency_p99", Status: "pass", Challenger: 0.0021, Champion: 0.0019, Limit: 0.00485, Detail: "p99 2.1ms within 4.85ms"},
		},
		Champion:   console.RolloutArmView{Decisions: 2010, Impressions: 20100, Clicks: 603, Users: 1800, CTR: 0.03},
		Challenger: console.RolloutArmView{Decisions: 145, Impressions: 1450, Clicks: 45, Users: 130, CTR: 0.031},
		Timeline: []console.RolloutTransitionView{
			{At: epoch.Add(-14 * time.Minute), From: "idle", To: "canary", Share: 0.05, Reason: "start", Detail: "challenger ftrl-next-7 registered: canary step 1 of 3", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"},
			{At: epoch.Add(-4 * time.Minute), From: "canary", To: "canary", Share: 0.25, Reason: "step", Detail: "step 1 held 10m0s with no guardrail failing: canary step 2 of 3"},
		},
	}
}

// fixtureRolloutAt is fixtureRollout moved in time so that its step began
// four minutes before now (the fixture console runs on the real clock).
func fixtureRolloutAt(now time.Time) console.RolloutView {
	r := fixtureRollout()
	d := now.Add(-4 * time.Minute).Sub(r.Since)
	r.StartedAt, r.Since = r.StartedAt.Add(d), r.Since.Add(d)
	for i := range r.Timeline {
		r.Timeline[i].At = r.Timeline[i].At.Add(d)
	}
	return r
}
