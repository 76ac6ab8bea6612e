package quality

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// Inputs are the signals the app measures itself. The Evaluator calls the
// methods from Evaluate, one at a time; they must not block.
type Inputs interface {
	// ErrorRate is the share of requests that failed (5xx) recently.
	ErrorRate() float64
	// IngestLagSeconds is the age of the oldest event not yet applied.
	IngestLagSeconds() float64
	// TelemetryDropRate is the share (0..1) of telemetry items (spans, log
	// records, decision records) dropped recently.
	TelemetryDropRate() float64
	// Calibration is the mean predicted click probability of recent
	// impressions, the observed CTR of the same impressions, and their number.
	Calibration() (meanPredicted, observed float64, n int64)
}

// Signals are the sources the rules and the root-cause ranking read. Any
// may be nil; the rules that need a nil source never fire.
type Signals struct {
	Monitor    *Monitor
	Engagement *Engagement
	Decisions  *Decisions
	Inputs     Inputs
}

// AlertConfig holds the alert thresholds. The zero value of every field
// means its default, and the defaults are the thresholds of
// deploy/prometheus/rules/sightline.yml:
//
//	HighP99Latency        p99 of decisions > 25ms for 2m (at least MinRequests in the window)
//	HighErrorRate         error rate > 1% for 2m
//	HighFallbackRate      fallback rate > 5% for 2m (at least MinRequests)
//	CTRDropBelowBaseline  windowed CTR / baseline < 0.9 for 5m (per variant; the ratio
//	                      reads 1 below the Engagement's MinImpressions)
//	FeatureNullRateHigh   null ratio > 0.1 and > baseline + 0.05 for 2m (per feature,
//	                      and per feature and segment with at least MinSegmentSamples)
//	FeatureDriftHigh      PSI > 0.2 for 5m (per feature, and per feature and segment)
//	ModelCalibrationOff   |mean predicted / observed CTR − 1| > 0.5 for 10m (n ≥ MinCalibrationSamples)
//	IngestLagHigh         ingest lag > 30s for 2m
//	TelemetryDropping     telemetry drop rate > 0.01 (1% of items) for 5m
type AlertConfig struct {
	P99Latency            time.Duration // default 25ms
	P99LatencyFor         time.Duration // default 2m
	MinRequests           int64         // default 100
	ErrorRate             float64       // default 0.01
	ErrorRateFor          time.Duration // default 2m
	FallbackRate          float64       // default 0.05
	FallbackRateFor       time.Duration // default 2m
	CTRRatio              float64       // default 0.9
	CTRRatioFor           time.Duration // default 5m
	NullRatio             float64       // default 0.1
	NullRatioOverBaseline float64       // default 0.05
	NullRatioFor          time.Duration // default 2m
	MinSegmentSamples     int64         // default 200
	PSI                   float64       // default 0.2
	PSIFor                time.Duration // default 5m
	Calibration           float64       // default 0.5
	MinCalibrationSamples int64         // default 1000
	CalibrationFor        time.Duration // default 10m
	IngestLag             time.Duration // default 30s
	IngestLagFor          time.Duration // default 2m
	TelemetryDropRate     float64       // default 0.01
	TelemetryDropFor      time.Duration // default 5m
}

func (c AlertConfig) withDefaults() AlertConfig {
	d := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	f := func(v *float64, def float64) {
		if *v <= 0 {
			*v = def
		}
	}
	n := func(v *int64, def int64) {
		if *v <= 0 {
			*v = def
		}
	}
	d(&c.P99Latency, 25*time.Millisecond)
	d(&c.P99LatencyFor, 2*time.Minute)
	n(&c.MinRequests, 100)
	f(&c.ErrorRate, 0.01)
	d(&c.ErrorRateFor, 2*time.Minute)
	f(&c.FallbackRate, 0.05)
	d(&c.FallbackRateFor, 2*time.Minute)
	f(&c.CTRRatio, 0.9)
	d(&c.CTRRatioFor, 5*time.Minute)
	f(&c.NullRatio, 0.1)
	f(&c.NullRatioOverBaseline, 0.05)
	d(&c.NullRatioFor, 2*time.Minute)
	n(&c.MinSegmentSamples, 200)
	f(&c.PSI, 0.2)
	d(&c.PSIFor, 5*time.Minute)
	f(&c.Calibration, 0.5)
	n(&c.MinCalibrationSamples, 1000)
	d(&c.CalibrationFor, 10*time.Minute)
	d(&c.IngestLag, 30*time.Second)
	d(&c.IngestLagFor, 2*time.Minute)
	f(&c.TelemetryDropRate, 0.01)
	d(&c.TelemetryDropFor, 5*time.Minute)
	return c
}

// Sample is one series an alert expression finds breaching its threshold.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Rule is an alerting rule evaluated in process. Summary and Description
// may name labels as {label}, the value as {value}, and an optional label
// as {?label}, which reads " in label value" when the label is set and
// nothing otherwise.
type Rule struct {
	Name        string
	Severity    string
	Summary     string
	Description string
	RunbookURL  string
	// For is how long a series must breach before the alert fires.
	For time.Duration
	// Hints asks for root-cause hints when the alert fires.
	Hints bool
	// Expr returns the series breaching the threshold at now. An alert
	// exists per label set, as in Prometheus.
	Expr func(now time.Time) []Sample
}

// Alert states.
const (
	StatePending  = "pending"
	StateFiring   = "firing"
	StateResolved = "resolved"
	// StateInactive appears only in transitions: a pending alert whose
	// condition cleared before it fired.
	StateInactive = "inactive"
)

// Alert is one alert instance, as GET /v1/alerts serves it.
type Alert struct {
	Name          string            `json:"name"`
	State         string            `json:"state"`
	Severity      string            `json:"severity"`
	Summary       string            `json:"summary"`
	Description   string            `json:"description"`
	RunbookURL    string            `json:"runbook_url"`
	Labels        map[string]string `json:"labels"`
	Value         float64           `json:"value"`
	ActiveAt      time.Time         `json:"active_at"`
	FiredAt       time.Time         `json:"fired_at,omitzero"`
	ResolvedAt    time.Time         `json:"resolved_at,omitzero"`
	Hints         []Hint            `json:"hints,omitempty"`
	ExampleTraces []string          `json:"example_traces,omitempty"`
}

// Transition is one change of an alert's state.
type Transition struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	From   string            `json:"from"`
	To     string            `json:"to"`
	Value  float64           `json:"value"`
	At     time.Time         `json:"at"`
}

// EvaluatorConfig configures an [Evaluator]. The zero value of every field
// means its default.
type EvaluatorConfig struct {
	// Alerts holds the thresholds of the default rules.
	Alerts AlertConfig
	// Rules replaces the default rules when not nil.
	Rules []Rule
	// Hints tunes the root-cause ranking.
	Hints HintConfig
	// Retention is how long resolved alerts stay listed (default 1h).
	Retention time.Duration
	// Logger receives a line per transition; nil logs nothing.
	Logger *slog.Logger
}

// Evaluator evaluates alerting rules over the signals on demand: the owner
// calls Evaluate on its own clock (a ticker, or a simulated clock in drills).
// All methods are safe for concurrent use.
type Evaluator struct {
	sig    Signals
	rules  []Rule
	cfg    EvaluatorConfig
	logger *slog.Logger

	mu     sync.Mutex
	active map[string]*Alert // by rule name and labels: pending or firing
	done   []*Alert          // resolved, oldest first
}

// NewEvaluator returns an Evaluator over sig with the default rules (or cfg.Rules).
func NewEvaluator(sig Signals, cfg EvaluatorConfig) (*Evaluator, error) {
	if cfg.Retention < 0 {
		return nil, fmt.Errorf("evaluator: %w", ErrInvalidConfig)
	}
	if cfg.Retention == 0 {
		cfg.Retention = time.Hour
	}
	rules := cfg.Rules
	if rules == nil {
		rules = DefaultRules(sig, cfg.Alerts)
	}
	for _, r := range rules {
		if r.Name == "" || r.Expr == nil {
			return nil, fmt.Errorf("evaluator: rule %q: %w: needs a name and an expression", r.Name, ErrInvalidConfig)
		}
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &Evaluator{sig: sig, rules: rules, cfg: cfg, logger: lg, active: map[string]*Alert{}}, nil
}

// Rules returns the evaluated rules.
func (e *Evaluator) Rules() []Rule { return slices.Clone(e.rules) }

func seriesKey(name string, labels map[string]string) string {
	var b strings.Builder
	b.WriteString(name)
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		b.WriteString("\x00" + k + "=" + labels[k])
	}
	return b.String()
}

// Evaluate evaluates every rule at now, moves alerts between states
// (pending when a series first breaches, firing once it has breached for
// the rule's For, resolved when a firing series clears; a pending series
// that clears is dropped), attaches root-cause hints to alerts that fire,
// logs and returns the transitions. now should not go backwards.
func (e *Evaluator) Evaluate(ctx context.Context, now time.Time) []Transition {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Transition
	seen := map[string]bool{}
	var hints []Hint
	hinted := false
	for _, r := range e.rules {
		for _, s := range r.Expr(now) {
			k := seriesKey(r.Name, s.Labels)
			seen[k] = true
			a := e.active[k]
			if a == nil {
				a = &Alert{Name: r.Name, State: StatePending, Severity: r.Severity, RunbookURL: r.RunbookURL, Labels: s.Labels, ActiveAt: now}
				e.active[k] = a
				out = append(out, Transition{Name: r.Name, Labels: s.Labels, From: StateInactive, To: StatePending, Value: s.Value, At: now})
			}
			a.Value = s.Value
			a.Summary, a.Description = expand(r.Summary, s), expand(r.Description, s)
			justFired := false
			if a.State == StatePending && now.Sub(a.ActiveAt) >= r.For {
				a.State, a.FiredAt, justFired = StateFiring, now, true
				out = append(out, Transition{Name: r.Name, Labels: s.Labels, From: StatePending, To: StateFiring, Value: s.Value, At: now})
			}
			if a.State == StateFiring && r.Hints {
				if !hinted {
					hints, hinted = Rank(now, e.sig, e.cfg.Hints), true
				}
				if justFired {
					a.Hints = slices.Clone(hints) // the ranking as it was when the alert fired
				}
				// Example traces are refreshed while the alert fires, so they
				// point at requests the flight recorder still holds.
				a.ExampleTraces = freshExamples(a.Hints, hints, a.ExampleTraces)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(e.active)) {
		if seen[k] {
			continue
		}
		a := e.active[k]
		delete(e.active, k)
		if a.State == StateFiring {
			a.State, a.ResolvedAt = StateResolved, now
			e.done = append(e.done, a)
			out = append(out, Transition{Name: a.Name, Labels: a.Labels, From: StateFiring, To: StateResolved, Value: a.Value, At: now})
		} else {
			out = append(out, Transition{Name: a.Name, Labels: a.Labels, From: StatePending, To: StateInactive, Value: a.Value, At: now})
		}
	}
	e.done = slices.DeleteFunc(e.done, func(a *Alert) bool { return now.Sub(a.ResolvedAt) > e.cfg.Retention })
	for _, t := range out {
		level := slog.LevelInfo
		if t.To == StateFiring {
			level = slog.LevelWarn
		}
		attrs := []slog.Attr{slog.String("alert", t.Name), slog.Time("at", t.At), slog.String("from", t.From), slog.String("to", t.To), slog.Float64("value", t.Value), slog.Any("labels", t.Labels)}
		if a := e.active[seriesKey(t.Name, t.Labels)]; a != nil && t.To == StateFiring && len(a.Hints) > 0 {
			attrs = append(attrs, slog.String("top_suspect", a.Hints[0].Detail))
		}
		e.logger.LogAttrs(ctx, level, "alert "+t.To, attrs...)
	}
	return out
}

// Alerts returns the pending and firing alerts, then the resolved ones
// still retained, newest first within each group.
func (e *Evaluator) Alerts() []Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Alert, 0, len(e.active)+len(e.done))
	for _, a := range e.active {
		out = append(out, cloneAlert(a))
	}
	slices.SortFunc(out, func(a, b Alert) int {
		if a.State != b.State {
			return strings.Compare(a.State, b.State) // firing before pending
		}
		if c := b.ActiveAt.Compare(a.ActiveAt); c != 0 {
			return c
		}
		return strings.Compare(seriesKey(a.Name, a.Labels), seriesKey(b.Name, b.Labels))
	})
	for i := len(e.done) - 1; i >= 0; i-- {
		out = append(out, cloneAlert(e.done[i]))
	}
	return out
}

func cloneAlert(a *Alert) Alert {
	c := *a
	c.Labels = maps.Clone(a.Labels)
	c.Hints = slices.Clone(a.Hints)
	c.ExampleTraces = slices.Clone(a.ExampleTraces)
	return c
}

func expand(s string, smp Sample) string {
	if !strings.Contains(s, "{") {
		return s
	}
	pairs := []string{"{value}", fmt.Sprintf("%.3g", smp.Value)}
	for k, v := range smp.Labels {
		pairs = append(pairs, "{"+k+"}", v, "{?"+k+"}", " in "+k+" "+v)
	}
	s = strings.NewReplacer(pairs...).Replace(s)
	for {
		i := strings.Index(s, "{?")
		j := strings.Index(s[max(i, 0):], "}")
		if i < 0 || j < 0 {
			return s
		}
		s = s[:i] + s[i+j+1:]
	}
}

// Run evaluates every interval until ctx is done, with now from clock (nil
// means time.Now). Transitions are logged. It returns ctx's error.
func (e *Evaluator) Run(ctx context.Context, interval time.Duration, clock func() time.Time) error {
	if clock == nil {
		clock = time.Now
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			e.Evaluate(ctx, clock())
		}
	}
}

func runbook(name string) string { return "docs/runbooks/" + name + ".md" }

// DefaultRules returns the standard rules over sig with the thresholds of
// cfg (see [AlertConfig]). Rules whose source is nil never fire.
func DefaultRules(sig Signals, cfg AlertConfig) []Rule {
	cfg = cfg.withDefaults()
	none := func(time.Time) []Sample { return nil }
	one := func(v float64, breach bool) []Sample {
		if !breach || math.IsNaN(v) {
			return nil
		}
		return []Sample{{Labels: map[string]string{}, Value: v}}
	}
	rules := []Rule{
		{Name: "HighP99Latency", Severity: "page", For: cfg.P99LatencyFor, Hints: true,
			Summary:     "Recommendation p99 latency is {value}s",
			Description: fmt.Sprintf("The p99 decision latency over the quality window is above %v. The hints rank the stages and fallback reasons that changed.", cfg.P99Latency)},
		{Name: "HighErrorRate", Severity: "page", For: cfg.ErrorRateFor,
			Summary:     "{value} of requests fail",
			Description: fmt.Sprintf("More than %.3g of requests failed.", cfg.ErrorRate)},
		{Name: "HighFallbackRate", Severity: "page", For: cfg.FallbackRateFor, Hints: true,
			Summary:     "{value} of decisions use the fallback",
			Description: fmt.Sprintf("More than %.3g of decisions were answered by the fallback instead of the model.", cfg.FallbackRate)},
		{Name: "CTRDropBelowBaseline", Severity: "page", For: cfg.CTRRatioFor, Hints: true,
			Summary:     "CTR of variant {variant} is {value} of its baseline",
			Description: fmt.Sprintf("The windowed click-through rate of the variant is more than %.0f%% below its slow baseline. Engagement is degrading without any error.", 100*(1-cfg.CTRRatio))},
		{Name: "FeatureNullRateHigh", Severity: "page", For: cfg.NullRatioFor, Hints: true,
			Summary:     "Feature {feature} is null in {value} of decisions{?segment}",
			Description: fmt.Sprintf("The feature's null ratio is above %.3g and more than %.3g above its baseline: the model is not seeing this input.", cfg.NullRatio, cfg.NullRatioOverBaseline)},
		{Name: "FeatureDriftHigh", Severity: "ticket", For: cfg.PSIFor, Hints: true,
			Summary:     "Feature {feature} drifted: PSI {value}{?segment}",
			Description: fmt.Sprintf("The population stability index of the feature against its baseline is above %.3g: its distribution changed since the model was trained.", cfg.PSI)},
		{Name: "ModelCalibrationOff", Severity: "ticket", For: cfg.CalibrationFor,
			Summary:     "Mean predicted CTR is off the observed CTR by {value}",
			Description: fmt.Sprintf("|mean predicted / observed − 1| is above %.3g over at least %d impressions.", cfg.Calibration, cfg.MinCalibrationSamples)},
		{Name: "IngestLagHigh", Severity: "page", For: cfg.IngestLagFor,
			Summary:     "Event ingestion lags {value}s",
			Description: fmt.Sprintf("The oldest unapplied event is older than %v: the model and features learn late.", cfg.IngestLag)},
		{Name: "TelemetryDropping", Severity: "ticket", For: cfg.TelemetryDropFor,
			Summary:     "{value} of telemetry is dropped",
			Description: fmt.Sprintf("More than %.3g of telemetry items are dropped: traces, logs and decision records are incomplete.", cfg.TelemetryDropRate)},
	}
	for i := range rules {
		rules[i].RunbookURL = runbook(rules[i].Name)
		rules[i].Expr = none
	}
	set := func(name string, f func(time.Time) []Sample) {
		for i := range rules {
			if rules[i].Name == name {
				rules[i].Expr = f
			}
		}
	}
	if d := sig.Decisions; d != nil {
		set("HighP99Latency", func(now time.Time) []Sample {
			st := d.statsAt(now)
			return one(st.P99Seconds, st.Requests >= cfg.MinRequests && st.P99Seconds > cfg.P99Latency.Seconds())
		})
		set("HighFallbackRate", func(now time.Time) []Sample {
			st := d.statsAt(now)
			return one(st.FallbackRate, st.Requests >= cfg.MinRequests && st.FallbackRate > cfg.FallbackRate)
		})
	}
	switch {
	case sig.Inputs != nil:
		set("HighErrorRate", func(time.Time) []Sample {
			v := sig.Inputs.ErrorRate()
			return one(v, v > cfg.ErrorRate)
		})
	case sig.Decisions != nil:
		set("HighErrorRate", func(now time.Time) []Sample {
			st := sig.Decisions.statsAt(now)
			return one(st.ErrorRate, st.Requests >= cfg.MinRequests && st.ErrorRate > cfg.ErrorRate)
		})
	}
	if en := sig.Engagement; en != nil {
		set("CTRDropBelowBaseline", func(now time.Time) []Sample {
			var out []Sample
			for _, v := range en.ctrAt(now) {
				if v.Ratio < cfg.CTRRatio {
					out = append(out, Sample{Labels: map[string]string{"variant": v.Variant}, Value: v.Ratio})
				}
			}
			return out
		})
	}
	if m := sig.Monitor; m != nil {
		nullHigh := func(r, base float64) bool { return r > cfg.NullRatio && r > base+cfg.NullRatioOverBaseline }
		set("FeatureNullRateHigh", func(now time.Time) []Sample {
			var out []Sample
			for _, f := range m.featuresAt(now) {
				if f.Samples >= cfg.MinRequests && nullHigh(f.NullRatio, f.BaselineNullRatio) {
					out = append(out, Sample{Labels: map[string]string{"feature": f.Name}, Value: f.NullRatio})
				}
				for _, s := range f.BySegment {
					if s.Samples >= cfg.MinSegmentSamples && nullHigh(s.NullRatio, s.BaselineNullRatio) {
						out = append(out, Sample{Labels: map[string]string{"feature": f.Name, "segment": s.Segment}, Value: s.NullRatio})
					}
				}
			}
			return out
		})
		set("FeatureDriftHigh", func(now time.Time) []Sample {
			var out []Sample
			for _, f := range m.featuresAt(now) {
				if f.PSI > cfg.PSI {
					out = append(out, Sample{Labels: map[string]string{"feature": f.Name}, Value: f.PSI})
				}
				for _, s := range f.BySegment {
					if s.Samples >= cfg.MinSegmentSamples && s.PSI > cfg.PSI {
						out = append(out, Sample{Labels: map[string]string{"feature": f.Name, "segment": s.Segment}, Value: s.PSI})
					}
				}
			}
			return out
		})
	}
	if in := sig.Inputs; in != nil {
		set("ModelCalibrationOff", func(time.Time) []Sample {
			p, o, n := in.Calibration()
			if n < cfg.MinCalibrationSamples || o <= 0 {
				return nil
			}
			v := math.Abs(p/o - 1)
			return one(v, v > cfg.Calibration)
		})
		set("IngestLagHigh", func(time.Time) []Sample {
			v := in.IngestLagSeconds()
			return one(v, v > cfg.IngestLag.Seconds())
		})
		set("TelemetryDropping", func(time.Time) []Sample {
			v := in.TelemetryDropRate()
			return one(v, v > cfg.TelemetryDropRate)
		})
	}
	return rules
}

// freshExamples returns the current example traces of the alert's top
// cause, else of the first current hint that has some, else old.
func freshExamples(fired, current []Hint, old []string) []string {
	if len(fired) > 0 {
		for _, h := range current {
			if h.Cause == fired[0].Cause && len(h.ExampleTraces) > 0 {
				return h.ExampleTraces
			}
		}
	}
	for _, h := range current {
		if len(h.ExampleTraces) > 0 {
			return h.ExampleTraces
		}
	}
	return old
}
