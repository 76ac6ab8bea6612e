//go:build drills

// The drills run minutes of simulated traffic each; scripts/test runs them
// in their own step without the race detector (go test -tags drills).

package drill

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/quality"
)

// drillCase is what a drill must show: the alerts that must fire, the ones
// that may (consequences of the same fault), and the cause its first
// must-fire alert must rank first.
type drillCase struct {
	name    string
	must    []string
	may     []string
	topHint func(h quality.Hint) bool
}

var drillCases = []drillCase{
	{
		name: "etl-null-age",
		must: []string{"CTRDropBelowBaseline", "FeatureNullRateHigh"},
		may:  []string{"HighFallbackRate", "FeatureDriftHigh"},
		topHint: func(h quality.Hint) bool {
			return h.Kind == quality.CauseFeature && h.Feature == "user_age_bucket" && h.Segment == "new"
		},
	},
	{
		name: "slow-feature-store",
		must: []string{"HighFallbackRate"},
		// A third of the answers fall back on a late dependency: the
		// availability SLO's budget burns too (the slo-burn drill is the
		// one where only its page may fire).
		may: []string{"CTRDropBelowBaseline", "HighP99Latency", "SLOFastBurn", "SLOSlowBurn", "SLOSustainedBurn"},
		topHint: func(h quality.Hint) bool {
			return (h.Kind == quality.CauseFallback && h.Reason == "feature_store_timeout") || (h.Kind == quality.CauseStage && h.Stage == "feature_fetch")
		},
	},
	{
		name:    "model-errors",
		must:    []string{"HighFallbackRate"},
		may:     []string{"CTRDropBelowBaseline", "SLOFastBurn", "SLOSlowBurn", "SLOSustainedBurn"},
		topHint: func(h quality.Hint) bool { return h.Kind == quality.CauseFallback && h.Reason == "model_error" },
	},
	{
		name:    "popularity-shift",
		must:    []string{"CTRDropBelowBaseline"},
		may:     []string{"ModelCalibrationOff"},
		topHint: func(h quality.Hint) bool { return h.Kind == quality.CauseModel },
	},
	{
		name: "telemetry-outage",
		must: []string{"TelemetryDropping"},
	},
	{name: "control"},
}

func TestDrills(t *testing.T) {
	for _, tc := range drillCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := Config{Seed: 1, Duration: 60 * time.Minute, FaultAt: 45 * time.Minute}
			if tc.name == "etl-null-age" {
				cfg.Inspect = func(ctx context.Context, base string) error { return inspectETL(ctx, t, base) }
			}
			rep, err := Run(t.Context(), tc.name, cfg)
			if err != nil {
				t.Fatalf("Run(%s): %v", tc.name, err)
			}
			var out strings.Builder
			rep.WriteTimeline(&out)
			t.Log("\n" + out.String())
			for _, a := range rep.Alerts {
				if !slices.Contains(tc.must, a.Name) && !slices.Contains(tc.may, a.Name) {
					t.Errorf("drill %s fired %s%v, unrelated to the fault", tc.name, a.Name, a.Labels)
				}
				if a.TimeToDetect < 0 {
					t.Errorf("drill %s: %s fired before the fault (at %v)", tc.name, a.Name, a.FiredAt)
				}
			}
			for i, name := range tc.must {
				a, ok := rep.Fired(name)
				if !ok {
					t.Errorf("drill %s: %s did not fire", tc.name, name)
					continue
				}
				if i == 0 && tc.topHint != nil && (len(a.Hints) == 0 || !tc.topHint(a.Hints[0])) {
					t.Errorf("drill %s: %s top hint = %+v, want the injected cause first", tc.name, name, a.Hints)
				}
			}
			if tc.name == "etl-null-age" {
				if a, ok := rep.Fired("FeatureNullRateHigh"); !ok || a.Labels["feature"] != "user_age_bucket" {
					t.Errorf("FeatureNullRateHigh labels = %v, want feature user_age_bucket", a.Labels)
				}
			}
		})
	}
}

// inspectETL follows the talk's debugging story on the live node: the
// firing alert's example traces resolve to traces with a missing_features
// fallback whose logs show user_age_bucket null.
func inspectETL(ctx context.Context, t *testing.T, base string) error {
	var alerts struct{ Alerts []quality.Alert }
	if err := getJSON(ctx, base+"/v1/alerts", &alerts); err != nil {
		return err
	}
	var examples []string
	for _, a := range alerts.Alerts {
		if a.Name == "CTRDropBelowBaseline" && a.State == "firing" {
			examples = a.ExampleTraces
		}
	}
	if len(examples) == 0 {
		return fmt.Errorf("CTRDropBelowBaseline has no example traces: %+v", alerts.Alerts)
	}
	for _, id := range examples {
		var tr struct {
			FallbackReason string `json:"fallback_reason"`
			Spans          []struct{ Name string }
		}
		if err := getJSON(ctx, base+"/v1/traces/"+id, &tr); err != nil {
			return fmt.Errorf("example trace %s: %w", id, err)
		}
		if tr.FallbackReason != "missing_features" {
			t.Errorf("example trace %s fallback = %q, want missing_features", id, tr.FallbackReason)
		}
		var logs struct {
			Logs []struct {
				Record json.RawMessage `json:"record"`
			}
		}
		if err := getJSON(ctx, base+"/v1/logs?trace_id="+id, &logs); err != nil {
			return err
		}
		found := false
		for _, l := range logs.Logs {
			if strings.Contains(string(l.Record), `"user_age_bucket":null`) {
				found = true
			}
		}
		if !found {
			t.Errorf("logs of trace %s do not show user_age_bucket null: %d lines", id, len(logs.Logs))
		}
	}
	return nil
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
