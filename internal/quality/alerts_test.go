package quality

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"log/slog"

	"github.com/google/go-cmp/cmp"
)

func TestEvaluatorStateMachine(t *testing.T) {
	var breach bool
	rule := Rule{Name: "Test", Severity: "warning", Summary: "value {value}{?segment}", RunbookURL: "docs/runbooks/Test.md", For: 2 * time.Minute,
		Expr: func(time.Time) []Sample {
			if !breach {
				return nil
			}
			return []Sample{{Labels: map[string]string{"segment": "new"}, Value: 0.5}}
		}}
	var logs bytes.Buffer
	ev, err := NewEvaluator(Signals{}, EvaluatorConfig{Rules: []Rule{rule}, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t0 := newClock().Now()
	steps := []struct {
		at     time.Duration
		breach bool
		want   []string // transitions as from>to
		state  string   // state of the alert listed first, "" for none
	}{
		{0, true, []string{"inactive>pending"}, StatePending},
		{time.Minute, false, []string{"pending>inactive"}, ""}, // a blip never fires
		{2 * time.Minute, true, []string{"inactive>pending"}, StatePending},
		{3 * time.Minute, true, nil, StatePending},
		{4*time.Minute - time.Second, true, nil, StatePending},
		{4 * time.Minute, true, []string{"pending>firing"}, StateFiring},
		{5 * time.Minute, true, nil, StateFiring},
		{6 * time.Minute, false, []string{"firing>resolved"}, StateResolved},
		{7 * time.Minute, false, nil, StateResolved},
		{7*time.Minute + time.Hour + time.Second, false, nil, ""}, // resolved alerts expire
	}
	for _, s := range steps {
		breach = s.breach
		var got []string
		for _, tr := range ev.Evaluate(t.Context(), t0.Add(s.at)) {
			got = append(got, tr.From+">"+tr.To)
		}
		if diff := cmp.Diff(s.want, got); diff != "" {
			t.Errorf("Evaluate(+%v) transitions mismatch (-want +got):\n%s", s.at, diff)
		}
		alerts := ev.Alerts()
		state := ""
		if len(alerts) > 0 {
			state = alerts[0].State
		}
		if state != s.state {
			t.Errorf("Alerts() at +%v state = %q, want %q", s.at, state, s.state)
		}
	}
	if n := strings.Count(logs.String(), `"alert":"Test"`); n != 5 {
		t.Errorf("logged %d transitions, want 5:\n%s", n, logs.String())
	}
}

func TestEvaluatorAlertJSON(t *testing.T) {
	rule := Rule{Name: "Test", Severity: "critical", Summary: "value {value}{?segment}", Description: "for {feature}", RunbookURL: "docs/runbooks/Test.md",
		Expr: func(time.Time) []Sample { return []Sample{{Labels: map[string]string{"feature": "f"}, Value: 0.25}} }}
	ev, err := NewEvaluator(Signals{}, EvaluatorConfig{Rules: []Rule{rule}})
	if err != nil {
		t.Fatal(err)
	}
	t0 := newClock().Now()
	ev.Evaluate(t.Context(), t0)
	raw, err := json.Marshal(ev.Alerts())
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"name":"Test","state":"firing","severity":"critical","summary":"value 0.25","description":"for f","runbook_url":"docs/runbooks/Test.md","labels":{"feature":"f"},"value":0.25,"active_at":"2026-03-01T12:00:00Z","fired_at":"2026-03-01T12:00:00Z"}]`
	if string(raw) != want {
		t.Errorf("json.Marshal(Alerts()) =\n%s\nwant\n%s", raw, want)
	}
}

func TestDefaultRules(t *testing.T) {
	rules := DefaultRules(Signals{}, AlertConfig{})
	var names []string
	for _, r := range rules {
		names = append(names, r.Name)
		if r.RunbookURL != "docs/runbooks/"+r.Name+".md" || r.Summary == "" || r.Description == "" || r.Severity == "" || r.For <= 0 {
			t.Errorf("rule %s = %+v, want a runbook, summary, description, severity and For", r.Name, r)
		}
		if got := r.Expr(time.Now()); got != nil {
			t.Errorf("rule %s without signals Expr() = %v, want nil", r.Name, got)
		}
	}
	want := []string{"HighP99Latency", "HighErrorRate", "HighFallbackRate", "CTRDropBelowBaseline", "FeatureNullRateHigh", "FeatureDriftHigh", "ModelCalibrationOff", "IngestLagHigh", "TelemetryDropping"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("DefaultRules() names mismatch (-want +got):\n%s", diff)
	}
}

// inputs is a fixed Inputs.
type inputs struct {
	errRate, lag, drop, pred, obs float64
	n                             int64
}

func (in inputs) ErrorRate() float64                     { return in.errRate }
func (in inputs) IngestLagSeconds() float64              { return in.lag }
func (in inputs) TelemetryDropRate() float64             { return in.drop }
func (in inputs) Calibration() (float64, float64, int64) { return in.pred, in.obs, in.n }

func TestDefaultRulesInputs(t *testing.T) {
	tests := []struct {
		in   inputs
		want []string
	}{
		{inputs{errRate: 0.005, lag: 10, drop: 0.001, pred: 0.05, obs: 0.05, n: 5000}, nil},
		{inputs{errRate: 0.02, lag: 10, drop: 0.001, pred: 0.05, obs: 0.05, n: 5000}, []string{"HighErrorRate"}},
		{inputs{lag: 31}, []string{"IngestLagHigh"}},
		{inputs{drop: 0.05}, []string{"TelemetryDropping"}},
		{inputs{pred: 0.2, obs: 0.05, n: 5000}, []string{"ModelCalibrationOff"}},
		{inputs{pred: 0.2, obs: 0.05, n: 10}, nil}, // too few samples
	}
	for _, tt := range tests {
		var got []string
		for _, r := range DefaultRules(Signals{Inputs: tt.in}, AlertConfig{}) {
			if len(r.Expr(time.Now())) > 0 {
				got = append(got, r.Name)
			}
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("DefaultRules(%+v) breaching mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestEvaluatorRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		evals := 0
		rule := Rule{Name: "Count", Expr: func(time.Time) []Sample { evals++; return nil }}
		ev, err := NewEvaluator(Signals{}, EvaluatorConfig{Rules: []Rule{rule}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- ev.Run(ctx, time.Second, nil) }()
		time.Sleep(10*time.Second + time.Millisecond)
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run() = %v, want %v", err, context.Canceled)
		}
		if evals != 10 {
			t.Errorf("Run evaluated %d times in 10s, want 10", evals)
		}
	})
}
