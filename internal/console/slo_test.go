package console_test

import (
	"strings"
	"testing"

	"github.com/sightline/sightline/internal/console"
)

// fakeSLOs returns fixed SLO views.
type fakeSLOs []console.SLOView

func (f fakeSLOs) SLOs() []console.SLOView { return f }

// fixtureSLOs is availability burning fast (a page firing, budget
// overspent) and latency healthy.
func fixtureSLOs(scale float64) fakeSLOs {
	alerts := func(fast, slow string) []console.SLOAlertView {
		return []console.SLOAlertView{
			{Name: "SLOFastBurn", Severity: "page", Factor: 14.4, LongWindow: "1h", ShortWindow: "5m", State: fast},
			{Name: "SLOSlowBurn", Severity: "page", Factor: 6, LongWindow: "6h", ShortWindow: "30m", State: slow},
			{Name: "SLOSustainedBurn", Severity: "ticket", Factor: 1, LongWindow: "3d", ShortWindow: "6h", State: "inactive"},
		}
	}
	return fakeSLOs{
		{Name: "availability", Description: "recommendation requests answered without a 5xx", Objective: 0.999,
			BudgetRemaining: -0.25, Good: 9950, Bad: 50, Since: epoch, WindowScale: scale,
			Burn:   map[string]float64{"5m": 30, "1h": 27.5, "6h": 4.2, "3d": 0.9},
			Alerts: alerts("firing", "inactive")},
		{Name: "latency", Description: "recommendation decisions that took at most the threshold", Objective: 0.995, Threshold: 0.01,
			BudgetRemaining: 0.97, Good: 10000, Since: epoch, WindowScale: scale,
			Burn:   map[string]float64{"1h": 0.1},
			Alerts: alerts("inactive", "inactive")},
	}
}

func TestSLOPanel(t *testing.T) {
	tests := []struct {
		name    string
		slos    fakeSLOs
		rows    map[string][]string
		want    []string
		wantNot []string
	}{
		{
			name: "burning",
			slos: fixtureSLOs(1),
			rows: map[string][]string{
				"availability": {`class="bad"`, "99.90%", "-25.00%", "50 bad of 10000", `class="num burn bad" data-window="1h">27.50<`,
					`data-window="6h">4.20<`, `data-window="3d">0.90<`, `class="tag firing" data-alert="SLOFastBurn"`, `class="tag ok" data-alert="SLOSlowBurn"`},
				"latency": {"99.50%", "97.00%", "(10ms)", `class="num burn" data-window="1h">0.10<`, `data-window="6h">0.00<`, `class="tag ok" data-alert="SLOFastBurn"`},
			},
			wantNot: []string{"scaled by"},
		},
		{
			name: "drill windows",
			slos: fixtureSLOs(1.0 / 12),
			want: []string{"Every window and the period are scaled by 0.08333"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, console.Config{Alerts: fakeAlerts{}, SLOs: tt.slos})
			_, _, body := get(t, srv, "/alerts")
			panel := section(t, body, "slos")
			for name, want := range tt.rows {
				row := rowOf(t, panel, name)
				for _, s := range want {
					if !strings.Contains(row, s) {
						t.Errorf("row of %s lacks %q:\n%s", name, s, row)
					}
				}
			}
			for _, s := range tt.want {
				if !strings.Contains(panel, s) {
					t.Errorf("SLOs panel lacks %q:\n%s", s, panel)
				}
			}
			for _, s := range tt.wantNot {
				if strings.Contains(panel, s) {
					t.Errorf("SLOs panel has %q", s)
				}
			}
		})
	}
}

// TestSLOPanelWithoutSource: no SLO source, no panel; the alerts still
// show.
func TestSLOPanelWithoutSource(t *testing.T) {
	srv := newServer(t, console.Config{Alerts: fakeAlerts{}})
	_, _, body := get(t, srv, "/alerts")
	if strings.Contains(body, `id="slos"`) {
		t.Error("Alerts page without an SLO source has an SLOs panel")
	}
	if !strings.Contains(body, "Firing") {
		t.Error("Alerts page lost its alert groups")
	}
}
