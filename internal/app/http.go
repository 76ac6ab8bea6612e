package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/propagation"

	"github.com/sightline/sightline/internal/api"
	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/features"
	"github.com/sightline/sightline/internal/telemetry"
)

// buildHTTP assembles the API with the node's adapters and the operational
// routes: metrics, traces, logs, admin and profiling.
func (n *Node) buildHTTP() error {
	mount := map[string]http.Handler{
		"GET /metrics":              promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{EnableOpenMetrics: true, Registry: n.reg, ErrorLog: nil}),
		"GET /v1/traces":            http.HandlerFunc(n.listTraces),
		"GET /v1/traces/{trace_id}": http.HandlerFunc(n.getTrace),
		"GET /v1/logs":              http.HandlerFunc(n.listLogs),
		"GET /v1/alerts":            http.HandlerFunc(n.listAlerts),
		"GET /v1/slos":              http.HandlerFunc(n.listSLOs),
		"GET /v1/experiments":       http.HandlerFunc(n.listExperiments),
		"POST /admin/snapshot":      n.requireAdmin(n.adminSnapshot),
		"POST /admin/faults":        n.requireAdmin(n.adminFaults),
		"GET /admin/faults":         http.HandlerFunc(n.listFaults),
		"GET /debug/pprof/":         n.requireAdmin(pprof.Index),
		"GET /debug/pprof/profile":  n.requireAdmin(pprof.Profile),
		"GET /debug/pprof/trace":    n.requireAdmin(pprof.Trace),
	}
	n.rolloutRoutes(mount)
	var err error
	if n.console, err = n.buildConsole(); err != nil {
		return err
	}
	mountConsole(mount, n.console)
	admission, err := n.admission()
	if err != nil {
		return err
	}
	srv, err := api.New(api.Config{
		Recommender: n.engine,
		Publisher:   publisher{n},
		Catalog:     catalog{n},
		Importer:    catalog{n},
		Stats:       n,
		Logger:      n.logger,
		Ready:       n.Ready,
		Middleware:  n.traceRoute, // outside access control: a refused request is traced and counted
		Authorized:  n.warm.gate,
		EventTimes:  api.EventTimeLimits{MaxSkew: max(n.cfg.EventMaxSkew, 0), MaxAge: max(n.cfg.EventMaxAge, 0)},
		Now:         n.cfg.Now,
		OnEvents:    n.stampTraceContext,
		Mount:       mount,
		Access:      n.cfg.Access.api(n.cfg.AdminToken),
		Admission:   admission,
		Registerer:  n.reg,
	})
	if err != nil {
		return err
	}
	n.handler = srv
	return nil
}

// traceRoute wraps each API route in an OpenTelemetry server span named
// "{METHOD} {route}", extracting W3C trace context and baggage, and counts
// responses by route and status class. The span records the route's path
// with its parameters pseudonymized or named (telemetry.RoutePath), never
// the raw path: a path parameter can be a user id, an email or a phone
// number.
//
// The hot route, POST /v1/recommendations, gets a deferred server span
// (telemetry.DeferredServer): recorded only when tail retention keeps the
// trace or the request is head-sampled, so an ordinary request records no
// span. Every other route gets a live one (telemetry.Server).
func (n *Node) traceRoute(h http.Handler) http.Handler {
	// The hot route's series by status class, looked up once: hashing
	// the label values cost about 1% of a saturated node's CPU.
	var hotCounts [len(statusClasses)]prometheus.Counter
	for i, c := range statusClasses {
		hotCounts[i] = n.httpRequests.WithLabelValues(hotRoute, c)
	}
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := telemetry.StatusOf(w) // the deferred server span's, on the hot route
		h.ServeHTTP(sw, r)
		if c := statusClassIndex(sw.Status()); r.Pattern == hotRoute {
			hotCounts[c].Inc()
		} else {
			n.httpRequests.WithLabelValues(r.Pattern, statusClasses[c]).Inc()
		}
		n.observeSLOStatus(r.Pattern, sw.Status())
	})
	hot := n.tel.DeferredServer(counted)
	other := n.tel.Server(counted)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Pattern == hotRoute {
			hot.ServeHTTP(w, r)
			return
		}
		other.ServeHTTP(w, r)
	})
}

// hotRoute is the route whose server span is deferred.
const hotRoute = "POST /v1/recommendations"

// stampTraceContext puts the request's trace context into each event, the
// record headers of the log, so consumers link back to the producer.
func (n *Node) stampTraceContext(ctx context.Context, evs []event.Event) {
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	tp, ts := carrier["traceparent"], carrier["tracestate"]
	if tp == "" {
		return
	}
	for i := range evs {
		evs[i].TraceParent, evs[i].TraceState = tp, ts
	}
}

// publisher appends events to the durable log.
type publisher struct{ n *Node }

func (p publisher) Publish(ctx context.Context, evs []event.Event) (int, error) {
	ctx, span := p.n.tracer.Start(ctx, "events publish")
	defer span.End()
	res, err := p.n.log.Append(ctx, evs)
	if err != nil {
		span.RecordError(err)
		return 0, err
	}
	return res.Duplicates, nil
}

// catalog writes profiles and items through the journal, so an
// acknowledged write survives a crash.
type catalog struct{ n *Node }

func (c catalog) PutUser(ctx context.Context, u event.User) error {
	if err := c.n.journal.Append(features.JournalEntry{User: &u}); err != nil {
		return err
	}
	if err := c.n.store.PutUser(ctx, u); err != nil {
		return err
	}
	return c.n.journal.Sync()
}

func (c catalog) PutItem(ctx context.Context, it event.Item) error {
	if err := c.n.journal.Append(features.JournalEntry{Item: &it}); err != nil {
		return err
	}
	if err := c.n.store.PutItem(ctx, it); err != nil {
		return err
	}
	return c.n.journal.Sync()
}

func (c catalog) ImportUsers(ctx context.Context, r io.Reader) (api.ImportResult, error) {
	res, err := features.LoadUsers(ctx, r, func(ctx context.Context, u event.User) error {
		if err := c.n.journal.Append(features.JournalEntry{User: &u}); err != nil {
			return err
		}
		return c.n.store.PutUser(ctx, u)
	})
	return c.finish(res, err)
}

func (c catalog) ImportItems(ctx context.Context, r io.Reader) (api.ImportResult, error) {
	res, err := features.LoadItems(ctx, r, func(ctx context.Context, it event.Item) error {
		if err := c.n.journal.Append(features.JournalEntry{Item: &it}); err != nil {
			return err
		}
		return c.n.store.PutItem(ctx, it)
	})
	return c.finish(res, err)
}

// finish makes an import durable before it is acknowledged.
func (c catalog) finish(res features.LoadResult, err error) (api.ImportResult, error) {
	if serr := c.n.journal.Sync(); err == nil {
		err = serr
	}
	out := api.ImportResult{Imported: res.Loaded, Rejected: res.Rejected, Errors: make([]api.LineError, 0, len(res.Errors))}
	for _, e := range res.Errors {
		out.Errors = append(out.Errors, api.LineError{Line: e.Line, Error: e.Err})
	}
	return out, err
}

func (n *Node) listTraces(w http.ResponseWriter, r *http.Request) {
	f, err := telemetry.ParseFilter(r.URL.Query())
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, "bad-query", err.Error())
		return
	}
	writeJSON(w, map[string]any{"traces": n.tel.Flight().Query(f)})
}

func (n *Node) getTrace(w http.ResponseWriter, r *http.Request) {
	id := strings.ToLower(r.PathValue("trace_id"))
	t, ok := n.tel.Flight().Trace(id)
	if !ok {
		writeProblem(w, r, http.StatusNotFound, "trace-not-found", fmt.Sprintf("trace %q is not in the flight recorder: only recent traces kept by tail retention (errors, fallbacks, slow requests, sampled) are held", id))
		return
	}
	writeJSON(w, t)
}

func (n *Node) listLogs(w http.ResponseWriter, r *http.Request) {
	f, err := telemetry.ParseLogFilter(r.URL.Query())
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, "bad-query", err.Error())
		return
	}
	writeJSON(w, map[string]any{"logs": n.tel.Logs().Query(f)})
}

func (n *Node) adminSnapshot(w http.ResponseWriter, r *http.Request) {
	if err := n.Snapshot(r.Context()); err != nil {
		writeProblem(w, r, http.StatusServiceUnavailable, "snapshot-failed", err.Error())
		return
	}
	writeJSON(w, map[string]any{"model_version": n.model().Version(), "model_offset": n.position()})
}

// listExperiments answers the live A/B test's statistics: per-variant CTR
// and conversion with intervals, lift against the control, the
// always-valid p-value, the minimum detectable effect and the sample ratio
// check.
func (n *Node) listExperiments(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, n.experiments.Report())
}

// collectors are the node-level metrics: model info and updates.
func (n *Node) collectors() []prometheus.Collector {
	n.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sightline_http_requests_total",
		Help: "API responses by route pattern and status class (2xx, 3xx, 4xx, 5xx).",
	}, []string{"route", "code"})
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sightline_model_updates_total",
			Help: "Online model updates applied.",
		}, func() float64 { return float64(n.model().Updates()) }),
		modelInfo{n},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "sightline_node_info",
			Help:        "Always 1: the node's role in the cluster (all, api, trainer) and build version.",
			ConstLabels: prometheus.Labels{"role": n.cfg.Role, "version": n.cfg.Version},
		}, func() float64 { return 1 }),
		n.httpRequests,
		experimentCollector{n},
		// Online evaluation of the FTRL model over its window (progressive
		// validation: each prediction scored before the model learns from it).
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "sightline_model_log_loss",
			Help:        "Online log loss of the model over the evaluation window.",
			ConstLabels: prometheus.Labels{"variant": "ftrl"},
		}, func() float64 { return n.model().Eval().LogLoss }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "sightline_model_mean_predicted",
			Help:        "Mean predicted click probability of impressions over the evaluation window (calibration, with sightline_model_observed_ctr).",
			ConstLabels: prometheus.Labels{"variant": "ftrl"},
		}, func() float64 { return n.model().Eval().MeanPredicted }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "sightline_model_observed_ctr",
			Help:        "Observed click-through rate of the impressions the model was evaluated on, over the evaluation window.",
			ConstLabels: prometheus.Labels{"variant": "ftrl"},
		}, func() float64 { return n.model().Eval().ObservedCTR }),
	}
}

// modelInfo exposes sightline_model_info{variant,version} = 1 for the
// current version only, so the series count stays bounded.
type modelInfo struct{ n *Node }

var modelInfoDesc = prometheus.NewDesc("sightline_model_info", "The model version serving each variant.", []string{"variant", "version"}, nil)

func (m modelInfo) Describe(ch chan<- *prometheus.Desc) { ch <- modelInfoDesc }

func (m modelInfo) Collect(ch chan<- prometheus.Metric) {
	for _, v := range m.n.engine.Variants() {
		ch <- prometheus.MustNewConstMetric(modelInfoDesc, prometheus.GaugeValue, 1, v.Name, v.Version)
	}
}

// statusClasses are the status label values of the request counter.
var statusClasses = [...]string{"2xx", "3xx", "4xx", "5xx"}

// statusClassIndex is the index in statusClasses of code's class.
func statusClassIndex(code int) int {
	switch {
	case code >= 500:
		return 3
	case code >= 400:
		return 2
	case code >= 300:
		return 1
	}
	return 0
}

// experimentCollector exports the sample ratio check and each treatment's
// sequential p-value, read at scrape time.
type experimentCollector struct{ n *Node }

var (
	srmDesc  = prometheus.NewDesc("sightline_experiment_srm_p_value", "p-value of the chi-square test of the decisions each variant served against the configured split; below 0.001 the split is broken (SampleRatioMismatch).", nil, nil)
	seqPDesc = prometheus.NewDesc("sightline_experiment_p_value", "Always-valid (sequential) p-value of the variant's CTR against the control's.", []string{"variant"}, nil)
)

func (c experimentCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- srmDesc
	ch <- seqPDesc
}

func (c experimentCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.n.experiments.Report()
	ch <- prometheus.MustNewConstMetric(srmDesc, prometheus.GaugeValue, r.SRM.P)
	for _, v := range r.Variants {
		if v.PValue != nil {
			ch <- prometheus.MustNewConstMetric(seqPDesc, prometheus.GaugeValue, *v.PValue, v.Name)
		}
	}
}
