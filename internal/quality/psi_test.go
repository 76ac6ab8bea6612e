package quality

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func dist(counts map[string]int64) Distribution {
	d := Distribution{Counts: counts}
	for _, n := range counts {
		d.Samples += n
	}
	return d
}

func TestPSI(t *testing.T) {
	term := func(a, e float64) float64 { return (a - e) * math.Log(a/e) }
	tests := []struct {
		name     string
		expected Distribution
		actual   Distribution
		want     float64
	}{
		{"identical", dist(map[string]int64{"a": 30, "b": 70}), dist(map[string]int64{"a": 3, "b": 7}), 0},
		{"shift", dist(map[string]int64{"a": 50, "b": 50}), dist(map[string]int64{"a": 90, "b": 10}), term(0.9, 0.5) + term(0.1, 0.5)},
		{"three bins", dist(map[string]int64{"a": 25, "b": 25, "c": 50}), dist(map[string]int64{"a": 50, "b": 25, "c": 25}), term(0.5, 0.25) + term(0.25, 0.5)},
		{"new category gets epsilon", dist(map[string]int64{"a": 100}), dist(map[string]int64{"a": 50, "b": 50}), term(0.5, 1) + term(0.5, DefaultEpsilon)},
		{"vanished category gets epsilon", dist(map[string]int64{"a": 50, NullValue: 50}), dist(map[string]int64{"a": 10}), term(1, 0.5) + term(DefaultEpsilon, 0.5)},
		{"empty actual", dist(map[string]int64{"a": 1}), Distribution{}, 0},
		{"empty expected", Distribution{}, dist(map[string]int64{"a": 1}), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PSI(tt.expected, tt.actual, 0); math.Abs(got-tt.want) > 1e-12 {
				t.Errorf("PSI(%v, %v) = %v, want %v", tt.expected, tt.actual, got, tt.want)
			}
		})
	}
	// The textbook reading: a 10-point move between two halves is "stable".
	if got := PSI(dist(map[string]int64{"a": 50, "b": 50}), dist(map[string]int64{"a": 60, "b": 40}), 0); got > 0.1 {
		t.Errorf("PSI(50/50, 60/40) = %v, want < 0.1", got)
	}
}

func TestDistributionNullRatio(t *testing.T) {
	tests := []struct {
		d    Distribution
		want float64
	}{
		{Distribution{}, 0},
		{dist(map[string]int64{NullValue: 1, "a": 3}), 0.25},
		{dist(map[string]int64{"a": 3}), 0},
	}
	for _, tt := range tests {
		if got := tt.d.NullRatio(); got != tt.want {
			t.Errorf("NullRatio(%v) = %v, want %v", tt.d, got, tt.want)
		}
	}
}

func TestBaselineJSONRoundTrip(t *testing.T) {
	c := newClock()
	m, err := NewMonitor(MonitorConfig{Features: []string{"f1", "f2"}, Segments: []string{"s1", "s2"}, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		v := []string{"x", "y", "z"}[i%3]
		var f2 *string
		if i%10 != 0 {
			f2 = str("k")
		}
		m.ObserveFeatures([]string{"s1", "s2", "elsewhere"}[i%3], map[string]*string{"f1": &v, "f2": f2})
	}
	b := m.CaptureBaseline()
	want := Baseline{
		CapturedAt: c.Now(),
		Features: map[string]Distribution{
			"f1": {Samples: 300, Counts: map[string]int64{"x": 100, "y": 100, "z": 100}},
			"f2": {Samples: 300, Counts: map[string]int64{"k": 270, NullValue: 30}},
		},
		Segments: map[string]map[string]Distribution{
			"s1":  {"f1": {Samples: 100, Counts: map[string]int64{"x": 100}}, "f2": {Samples: 100, Counts: map[string]int64{"k": 90, NullValue: 10}}},
			"s2":  {"f1": {Samples: 100, Counts: map[string]int64{"y": 100}}, "f2": {Samples: 100, Counts: map[string]int64{"k": 90, NullValue: 10}}},
			Other: {"f1": {Samples: 100, Counts: map[string]int64{"z": 100}}, "f2": {Samples: 100, Counts: map[string]int64{"k": 90, NullValue: 10}}},
		},
	}
	if diff := cmp.Diff(want, b); diff != "" {
		t.Errorf("CaptureBaseline() mismatch (-want +got):\n%s", diff)
	}
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var back Baseline
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b, back); diff != "" {
		t.Errorf("JSON round trip mismatch (-want +got):\n%s", diff)
	}
	// A fresh monitor restored from the snapshot sees no drift on the same traffic.
	m2, err := NewMonitor(MonitorConfig{Features: []string{"f1", "f2"}, Segments: []string{"s1", "s2"}, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	m2.SetBaseline(back)
	if diff := cmp.Diff(b, m2.Baseline()); diff != "" {
		t.Errorf("Baseline() after SetBaseline mismatch (-want +got):\n%s", diff)
	}
	c.Advance(time.Second)
	for i := range 300 {
		v := []string{"x", "y", "z"}[i%3]
		m2.ObserveFeatures([]string{"s1", "s2", "elsewhere"}[i%3], map[string]*string{"f1": &v, "f2": str("k")})
	}
	for _, f := range m2.Features() {
		if f.Name == "f1" && f.PSI > 1e-9 {
			t.Errorf("Features() f1 PSI = %v, want 0 on the baseline's own distribution", f.PSI)
		}
		if f.Name == "f2" && (f.NullRatio != 0 || f.BaselineNullRatio != 0.1) {
			t.Errorf("Features() f2 null = %v (baseline %v), want 0 (0.1)", f.NullRatio, f.BaselineNullRatio)
		}
	}
}
