package quality

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/event"
)

// firstFirings returns, per alert name and labels, when it first fired.
func firstFirings(ev *Evaluator) map[string]Alert {
	out := map[string]Alert{}
	for _, a := range ev.Alerts() {
		if a.FiredAt.IsZero() {
			continue
		}
		k := a.Name
		if a.Labels["feature"] != "" {
			k += "/" + a.Labels["feature"]
		}
		if a.Labels["segment"] != "" {
			k += "/" + a.Labels["segment"]
		}
		if _, ok := out[k]; !ok {
			out[k] = a
		}
	}
	return out
}

func TestEvaluatorScenario(t *testing.T) {
	tests := []struct {
		name  string
		fault func(*world, *DecisionObs) bool
		// want lists the alerts (name[/feature[/segment]]) that must fire;
		// nothing else may.
		want     []string
		hinted   string // an alert whose first hint must be top
		top      Cause
		examples bool
	}{
		{name: "control"},
		{
			name:  "region null in one segment",
			fault: nullRegionInPower,
			want: []string{"CTRDropBelowBaseline", "FeatureDriftHigh/user_region", "FeatureDriftHigh/user_region/power",
				"FeatureNullRateHigh/user_region", "FeatureNullRateHigh/user_region/power", "HighFallbackRate"},
			hinted:   "CTRDropBelowBaseline",
			top:      Cause{Kind: CauseFeature, Feature: event.AttrRegion, Segment: "power"},
			examples: true,
		},
		{
			name:     "slow inference",
			fault:    slowInference,
			want:     []string{"HighFallbackRate", "HighP99Latency"},
			hinted:   "HighP99Latency",
			top:      Cause{Kind: CauseStage, Stage: "model_inference"},
			examples: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, 11)
			ev, err := NewEvaluator(Signals{Monitor: w.mon, Decisions: w.dec, Engagement: w.eng}, EvaluatorConfig{})
			if err != nil {
				t.Fatal(err)
			}
			w.warm(ev)
			if a := ev.Alerts(); len(a) > 0 {
				t.Fatalf("Alerts() during warm-up = %+v, want none", a)
			}
			w.fault = tt.fault
			w.run(15*time.Minute, 20, ev)
			fired := firstFirings(ev)
			var got []string
			for k := range fired {
				got = append(got, k)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("fired %v, want %v", got, tt.want)
			}
			if tt.hinted == "" {
				return
			}
			a := fired[tt.hinted]
			if len(a.Hints) == 0 || a.Hints[0].Cause != tt.top {
				t.Fatalf("%s hints = %s, want %+v first", tt.hinted, describe(a.Hints), tt.top)
			}
			if len(a.ExampleTraces) == 0 != !tt.examples {
				t.Errorf("%s example traces = %v, want some: %v", tt.hinted, a.ExampleTraces, tt.examples)
			}
			for _, id := range a.ExampleTraces {
				if !slices.Contains(w.affected, id) {
					t.Errorf("%s example trace %s was not touched by the fault", tt.hinted, id)
				}
			}
			if !strings.Contains(a.Summary, a.Labels["variant"]) || a.RunbookURL != "docs/runbooks/"+a.Name+".md" {
				t.Errorf("alert %+v: want its labels in the summary and its runbook", a)
			}
		})
	}
}

func TestMonitorMetricsBounded(t *testing.T) {
	w := newWorld(t, 3)
	w.warm(nil)
	for range 100 { // user-controlled segment names must not become labels
		o := w.decision()
		o.Segment = "user-" + o.TraceID
		w.dec.ObserveDecision(o)
	}
	mfs, err := w.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string][]string{"feature": event.UserAttributes, "segment": append(slices.Clone(testSegments), Other),
		"variant": {"ftrl", Other}, "channel": {"web", Other}, "type": {"impression", "click", "conversion"}}
	seen := map[string]int{}
	for _, mf := range mfs {
		seen[mf.GetName()] = len(mf.GetMetric())
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if !slices.Contains(allowed[l.GetName()], l.GetValue()) {
					t.Errorf("%s has label %s=%q outside the bounded set", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
	want := map[string]int{
		"sightline_feature_null_ratio":                     4,
		"sightline_feature_drift_psi":                      4,
		"sightline_feature_baseline_null_ratio":            4,
		"sightline_feature_null_ratio_by_segment":          20,
		"sightline_feature_drift_psi_by_segment":           20,
		"sightline_feature_baseline_null_ratio_by_segment": 20,
		"sightline_feature_window_samples":                 5,
	}
	for name, n := range want {
		if seen[name] != n {
			t.Errorf("Gather() %s has %d series, want %d", name, seen[name], n)
		}
	}
	if v := gathered(t, w.reg, "sightline_feature_null_ratio", map[string]string{"feature": event.AttrAgeBucket}); v < 0.005 || v > 0.04 {
		t.Errorf("sightline_feature_null_ratio{feature=%q} = %v, want ≈ 0.02", event.AttrAgeBucket, v)
	}
}

func BenchmarkObserveDecision(b *testing.B) {
	w := newWorld(b, 1)
	obs := make([]DecisionObs, 1024)
	for i := range obs {
		obs[i] = w.decision()
	}
	b.Run("monitor", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			w.dec.ObserveDecision(obs[i&1023])
			i++
		}
	})
	b.Run("no_features", func(b *testing.B) {
		d, err := NewDecisions(nil, DecisionsConfig{Reasons: testReasons, Stages: testStages})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			d.ObserveDecision(obs[i&1023])
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				w.dec.ObserveDecision(obs[i&1023])
				i++
			}
		})
	})
}

func BenchmarkObserveEvent(b *testing.B) {
	e, err := NewEngagement(EngagementConfig{Variants: []string{"ftrl"}, Channels: []string{"web"}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.ObserveEvent("ftrl", "web", event.Impression)
	}
}
