package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/quality"
	"github.com/sightline/sightline/internal/telemetry"
)

// Errors returned by [New].
var (
	// ErrBadConfig reports an invalid [Config].
	ErrBadConfig = errors.New("console: bad config")
)

// Traces is the flight recorder as the console reads it. The console calls
// it on page requests, concurrently; it must not block on I/O.
// [telemetry.FlightRecorder] implements it.
type Traces interface {
	// Query returns the kept traces matching f, newest first.
	Query(f telemetry.Filter) []telemetry.TraceSummary
	// Trace returns one kept trace by hex trace id.
	Trace(traceID string) (telemetry.TraceView, bool)
}

// Logs is the in-process log store as the console reads it. The console
// calls it on page requests, concurrently. [telemetry.LogStore] implements
// it.
type Logs interface {
	// Query returns the log lines matching f, newest first.
	Query(f telemetry.LogFilter) []telemetry.LogLine
}

// Decisions looks up the record of a recent recommendation. The console
// calls it on page requests, concurrently. [engine.Engine] implements it.
type Decisions interface {
	// Decision returns the decision with the given request id, if it is
	// still remembered.
	Decision(requestID string) (*engine.Decision, bool)
}

// Overview is the node's headline state at one moment.
type Overview struct {
	// Stats are the live request and engagement figures.
	Stats quality.Snapshot
	// ModelVersion is the serving model's version.
	ModelVersion string
	// IngestLag is how far the event consumers are behind the log.
	IngestLag time.Duration
}

// Stats reports the node's headline state. The console calls it on the
// Overview page and from the history sampler ([Console.Run]),
// concurrently; it must be cheap and must not block on I/O.
type Stats interface {
	// Overview returns the current figures.
	Overview(ctx context.Context) Overview
}

// Alerts lists the in-process alerts. The console calls it on page
// requests, concurrently.
type Alerts interface {
	// Alerts returns the pending, firing and recently resolved alerts.
	Alerts() []AlertView
}

// Quality reports model and data quality. The console calls it on page
// requests and from the history sampler, concurrently; every method must be
// cheap and must not block on I/O.
type Quality interface {
	// Features returns per-feature null rate and drift.
	Features() []FeatureView
	// CTR returns the windowed CTR of each variant against its baseline.
	CTR() []VariantView
	// Confidence returns the histogram of recent decision confidences,
	// buckets in increasing order of Upper.
	Confidence() []BucketView
	// Calibration returns the model's mean predicted click probability
	// against the observed click rate.
	Calibration() CalibrationView
	// VariantUsage returns how many recent decisions each variant served.
	VariantUsage() map[string]int64
}

// Drills lists the faults that can be injected into the running node. The
// console calls it on the Drills page. Starting and stopping happen in the
// browser, against [Config.FaultsURL].
type Drills interface {
	// Faults returns every known fault and whether it is active.
	Faults() []FaultView
}

// AlertView is one alert as the Alerts page shows it.
type AlertView struct {
	Name string `json:"name"`
	// State is "pending", "firing" or "resolved".
	State       string            `json:"state"`
	Severity    string            `json:"severity"`
	Summary     string            `json:"summary"`
	Description string            `json:"description"`
	RunbookURL  string            `json:"runbook_url"`
	Labels      map[string]string `json:"labels"`
	Value       float64           `json:"value"`
	ActiveAt    time.Time         `json:"active_at"`
	FiredAt     time.Time         `json:"fired_at"`
	ResolvedAt  time.Time         `json:"resolved_at"`
	// Hints are the suspected root causes, most likely first.
	Hints []HintView `json:"hints"`
	// ExampleTraces are trace ids of affected requests.
	ExampleTraces []string `json:"example_traces"`
}

// HintView is one suspected root cause of an alert.
type HintView struct {
	// Kind is what the suspect is: "feature", "fallback", "stage".
	Kind    string  `json:"kind"`
	Name    string  `json:"name"`
	Segment string  `json:"segment,omitempty"`
	Detail  string  `json:"detail"`
	Score   float64 `json:"score"`
}

// FeatureView is the quality of one model input feature.
type FeatureView struct {
	Name              string  `json:"name"`
	NullRatio         float64 `json:"null_ratio"`
	BaselineNullRatio float64 `json:"baseline_null_ratio"`
	PSI               float64 `json:"psi"`
	Samples           int64   `json:"samples"`
	// BaselineSamples are the decisions of the baseline; zero until the
	// node has captured one (the Baseline and PSI cells read "—").
	BaselineSamples int64         `json:"baseline_samples"`
	BySegment       []SegmentView `json:"by_segment"`
}

// SegmentView is the quality of one feature within one user segment.
type SegmentView struct {
	Segment           string  `json:"segment"`
	NullRatio         float64 `json:"null_ratio"`
	BaselineNullRatio float64 `json:"baseline_null_ratio"`
	PSI               float64 `json:"psi"`
	Samples           int64   `json:"samples"`
	BaselineSamples   int64   `json:"baseline_samples"`
}

// VariantView is the engagement of one variant against its baseline.
type VariantView struct {
	Variant     string  `json:"variant"`
	Impressions int64   `json:"impressions"`
	Clicks      int64   `json:"clicks"`
	CTR         float64 `json:"ctr"`
	// Baseline is the variant's baseline CTR; zero while it is not
	// established (the Baseline and Ratio cells read "—").
	Baseline float64 `json:"baseline"`
	// Ratio is CTR / Baseline (1 when on baseline).
	Ratio float64 `json:"ratio"`
}

// BucketView is one bucket of a histogram: the values in (previous
// Upper, Upper].
type BucketView struct {
	Upper float64 `json:"upper"`
	Count int64   `json:"count"`
}

// CalibrationView compares the model's predictions with what happened.
type CalibrationView struct {
	MeanPredicted float64 `json:"mean_predicted"`
	Observed      float64 `json:"observed"`
	Samples       int64   `json:"samples"`
}

// FaultView is one injectable fault.
type FaultView struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Active      bool      `json:"active"`
	Since       time.Time `json:"since"`
}

// Config configures a [Console]. The zero value is valid: every source is
// optional and every other field has a default.
type Config struct {
	// Traces is the flight recorder; nil hides the Traces page's data.
	Traces Traces
	// Logs is the log store; nil hides the Logs page's data.
	Logs Logs
	// Decisions looks up decisions; nil hides the Decisions page's data.
	Decisions Decisions
	// Stats gives the overview figures; nil leaves the Overview empty.
	Stats Stats
	// Alerts lists alerts; nil hides the Alerts page's data.
	Alerts Alerts
	// Quality gives model and data quality; nil hides those panels.
	Quality Quality
	// Drills lists the faults; nil lets the user type a fault name.
	Drills Drills
	// Cluster reports the cluster the node belongs to; nil (a node outside
	// a cluster) shows no cluster panel.
	Cluster Cluster
	// Experiments reports the live A/B test; nil hides the Experiments
	// page's data.
	Experiments Experiments
	// Evaluations reads the last offline evaluation run; nil shows only
	// how to run one.
	Evaluations Evaluations
	// SLOs reports the service level objectives; nil hides the Alerts
	// page's SLOs panel.
	SLOs SLOs
	// Rollouts reports the guarded model rollout; nil shows the Rollouts
	// page as unavailable and the charts without annotations.
	Rollouts Rollouts

	// FaultsURL is the endpoint the Drills page POSTs to, with a JSON body
	// {"name": "<fault>", "active": true|false} and the header
	// "Authorization: Bearer <token>". Default "/admin/faults".
	FaultsURL string
	// Title names the node in page titles and the header. Default
	// "Sightline".
	Title string
	// SampleInterval is the period of the overview history sampler and of
	// the Overview page's refresh. Default 5s.
	SampleInterval time.Duration
	// History is the span of the overview charts. Default 15m.
	History time.Duration
	// Now is the clock stamped on history samples. Default time.Now.
	Now func() time.Time
	// Logger receives rendering errors; nil means no logging.
	Logger *slog.Logger
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Console is the web UI. It is an [http.Handler] serving every page under
// "/" and its assets under "/static/".
//
// All methods are safe for concurrent use.
type Console struct {
	cfg    Config
	mux    *http.ServeMux
	pages  map[string]*template.Template
	hist   *history
	bufs   sync.Pool
	static http.Handler
}

var _ http.Handler = (*Console)(nil)

// pageNames are the templates that render whole pages.
var pageNames = []string{"overview", "traces", "trace", "logs", "decisions", "decision", "model", "experiments", "rollouts", "evaluate", "alerts", "drills", "notfound"}

// New returns a console reading from the sources in cfg.
func New(cfg Config) (*Console, error) {
	switch {
	case cfg.SampleInterval < 0:
		return nil, fmt.Errorf("%w: negative sample interval", ErrBadConfig)
	case cfg.History < 0:
		return nil, fmt.Errorf("%w: negative history", ErrBadConfig)
	}
	if cfg.FaultsURL == "" {
		cfg.FaultsURL = "/admin/faults"
	}
	if cfg.Title == "" {
		cfg.Title = "Sightline"
	}
	if cfg.SampleInterval == 0 {
		cfg.SampleInterval = 5 * time.Second
	}
	if cfg.History == 0 {
		cfg.History = 15 * time.Minute
	}
	if cfg.History < cfg.SampleInterval {
		return nil, fmt.Errorf("%w: history %v shorter than sample interval %v", ErrBadConfig, cfg.History, cfg.SampleInterval)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Console{
		cfg:   cfg,
		pages: make(map[string]*template.Template, len(pageNames)),
		hist:  newHistory(int(cfg.History / cfg.SampleInterval)),
		bufs:  sync.Pool{New: func() any { return new(bytes.Buffer) }},
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("parse layout: %w", err)
	}
	for _, name := range pageNames {
		t, err := base.Clone()
		if err == nil {
			_, err = t.ParseFS(templateFS, "templates/"+name+".html")
		}
		if err != nil {
			return nil, fmt.Errorf("parse page %s: %w", name, err)
		}
		c.pages[name] = t
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("static assets: %w", err)
	}
	c.static = http.StripPrefix("/static/", http.FileServerFS(sub))
	c.routes()
	return c, nil
}

func (c *Console) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", c.overview)
	m.HandleFunc("GET /traces", c.traces)
	m.HandleFunc("GET /traces/{trace_id}", c.trace)
	m.HandleFunc("GET /logs", c.logs)
	m.HandleFunc("GET /decisions", c.decisions)
	m.HandleFunc("GET /decisions/{request_id}", c.decision)
	m.HandleFunc("GET /model", c.model)
	m.HandleFunc("GET /experiments", c.experiments)
	m.HandleFunc("GET /rollouts", c.rollouts)
	m.HandleFunc("GET /evaluate", c.evaluate)
	m.HandleFunc("GET /alerts", c.alerts)
	m.HandleFunc("GET /drills", c.drills)
	m.HandleFunc("GET /console/api/series", c.series)
	m.HandleFunc("GET /static/", c.asset)
	m.HandleFunc("/", c.notFound)
	c.mux = m
}

// ServeHTTP serves the console's pages, assets and chart data.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	c.mux.ServeHTTP(w, r)
}

func (c *Console) asset(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-cache")
	c.static.ServeHTTP(w, r)
}

// page is the data every page template gets.
type page struct {
	Title string
	// Nav is the active navigation entry.
	Nav  string
	Node string
	// Data is the page's own data.
	Data any
}

// render executes the page template name into a buffer and writes it with
// status, so a template error becomes a clean 500.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	buf := c.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer c.bufs.Put(buf)
	p := page{Title: title, Nav: name, Node: c.cfg.Title, Data: data}
	if err := c.pages[name].ExecuteTemplate(buf, "layout.html", p); err != nil {
		c.cfg.Logger.LogAttrs(r.Context(), slog.LevelError, "console render", slog.String("page", name), slog.Any("err", err))
		http.Error(w, "render error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// notFoundData is the data of the notfound page.
type notFoundData struct {
	What string
	ID   string
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusNotFound, "notfound", "Not found", notFoundData{What: "page", ID: r.URL.Path})
}
