package quality

import (
	"maps"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sightline/sightline/internal/event"
)

// feedCTR sends one minute of traffic per step: n impressions and
// round(n*ctr) clicks for the variant.
func feedCTR(e *Engagement, c *clock, variant string, n int, ctr float64, minutes int) {
	for range minutes {
		clicks := int(math.Round(float64(n) * ctr))
		for i := range n {
			e.ObserveEvent(variant, "web", event.Impression)
			if i < clicks {
				e.ObserveEvent(variant, "web", event.Click)
			}
		}
		c.Advance(time.Minute)
		e.CTR() // the app's scrape or evaluation reads it regularly
	}
}

func TestEngagementBaselineAndDrop(t *testing.T) {
	c := newClock()
	e, err := NewEngagement(EngagementConfig{Variants: []string{"ftrl", "control"}, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	byVariant := func() VariantEngagement {
		for _, v := range e.CTR() {
			if v.Variant == "ftrl" {
				return v
			}
		}
		t.Fatal("CTR() has no ftrl")
		return VariantEngagement{}
	}
	feedCTR(e, c, "ftrl", 100, 0.05, 60)
	v := byVariant()
	if math.Abs(v.Baseline-0.05) > 0.002 || math.Abs(v.Ratio-1) > 0.05 {
		t.Fatalf("steady CTR() = %+v, want baseline ≈ 0.05 and ratio ≈ 1", v)
	}
	// CTR drops 40%: the ratio falls below 0.9 and the baseline holds.
	feedCTR(e, c, "ftrl", 100, 0.03, 30)
	v = byVariant()
	if v.Ratio > 0.65 || v.Ratio < 0.55 || math.Abs(v.Baseline-0.05) > 0.003 {
		t.Errorf("after the drop CTR() = %+v, want ratio ≈ 0.6 and the baseline still ≈ 0.05", v)
	}
	// A mild rise is learned slowly (half-life 30m).
	feedCTR(e, c, "ftrl", 100, 0.06, 30)
	v = byVariant()
	if v.Baseline <= 0.052 || v.Baseline >= 0.058 {
		t.Errorf("after 30m at 0.06 baseline = %v, want between 0.052 and 0.058", v.Baseline)
	}
}

func TestEngagementNeedsImpressions(t *testing.T) {
	c := newClock()
	e, err := NewEngagement(EngagementConfig{Variants: []string{"ftrl"}, MinImpressions: 1000, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	feedCTR(e, c, "ftrl", 10, 0.5, 10)
	for _, v := range e.CTR() {
		if v.Ratio != 1 || v.Baseline != 0 {
			t.Errorf("CTR() with few impressions = %+v, want ratio 1 and no baseline", v)
		}
	}
}

func TestEngagementMetricsBounded(t *testing.T) {
	c := newClock()
	reg := prometheus.NewPedanticRegistry()
	e, err := NewEngagement(EngagementConfig{Variants: []string{"ftrl"}, Channels: []string{"web"}, Registerer: reg, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.ObserveEvent("ftrl", "web", event.Impression)
	e.ObserveEvent("user-1234", "web", event.Click)    // unknown variant
	e.ObserveEvent("ftrl", "fridge", event.Conversion) // unknown channel
	e.ObserveEvent("ftrl", "web", event.TypeInvalid)   // ignored
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"sightline_impressions_total", map[string]string{"variant": "ftrl", "channel": "web"}, 1},
		{"sightline_clicks_total", map[string]string{"variant": Other, "channel": "web"}, 1},
		{"sightline_conversions_total", map[string]string{"variant": "ftrl", "channel": Other}, 1},
		{"sightline_events_total", map[string]string{"type": "click", "channel": "web"}, 1},
		{"sightline_events_total", map[string]string{"type": "impression", "channel": Other}, 0},
		{"sightline_ctr_ratio_to_baseline", map[string]string{"variant": "ftrl"}, 1},
	}
	for _, tt := range tests {
		if got := gathered(t, reg, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]map[string]bool{
		"variant": {"ftrl": true, Other: true},
		"channel": {"web": true, Other: true},
		"type":    {"impression": true, "click": true, "conversion": true},
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if !allowed[l.GetName()][l.GetValue()] {
					t.Errorf("%s has label %s=%q outside the bounded set", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
	for _, n := range []string{"sightline_impressions_total", "sightline_clicks_total", "sightline_conversions_total", "sightline_events_total", "sightline_ctr_ratio_to_baseline"} {
		if !names[n] {
			t.Errorf("Gather() has no %s", n)
		}
	}
}

// gathered returns the value of the series name{labels} in reg, or NaN.
func gathered(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if !maps.Equal(got, labels) {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return math.NaN()
}
