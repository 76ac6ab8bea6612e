package quality

import (
	"errors"
	"testing"
	"time"
)

func TestNewMonitorConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  MonitorConfig
		want error
	}{
		{"no features", MonitorConfig{}, ErrNoFeatures},
		{"negative window", MonitorConfig{Features: []string{"f"}, Window: -1}, ErrInvalidConfig},
		{"epsilon too big", MonitorConfig{Features: []string{"f"}, Epsilon: 1}, ErrInvalidConfig},
		{"defaults", MonitorConfig{Features: []string{"f"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewMonitor(tt.cfg); !errors.Is(err, tt.want) {
				t.Errorf("NewMonitor(%+v) error = %v, want %v", tt.cfg, err, tt.want)
			}
		})
	}
}

func TestMonitorNullRatioSlides(t *testing.T) {
	c := newClock()
	m, err := NewMonitor(MonitorConfig{Features: []string{"f"}, Window: 10 * time.Minute, Buckets: 10, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	observe := func(n int, v *string) {
		for range n {
			m.ObserveFeatures("", map[string]*string{"f": v})
		}
	}
	observe(60, nil)     // minute 0: nulls
	observe(20, str("")) // empty strings are null too
	c.Advance(5 * time.Minute)
	observe(20, str("a"))
	m.ObserveFeatures("", map[string]*string{}) // a missing key is null
	steps := []struct {
		advance time.Duration
		want    float64
		samples int64
	}{
		{0, 81.0 / 101, 101},
		{4*time.Minute + 59*time.Second, 81.0 / 101, 101}, // minute 9:59: everything is in the window
		{time.Second, 1.0 / 21, 21},                       // minute 10: minute 0 left
		{5 * time.Minute, 0, 0},                           // everything left
	}
	for _, s := range steps {
		c.Advance(s.advance)
		f := m.Features()[0]
		if f.NullRatio != s.want || f.Samples != s.samples {
			t.Errorf("at %v: Features() null ratio = %v over %d samples, want %v over %d", c.Now().Format(time.TimeOnly), f.NullRatio, f.Samples, s.want, s.samples)
		}
	}
}

func TestMonitorSegmentsAndTopK(t *testing.T) {
	c := newClock()
	m, err := NewMonitor(MonitorConfig{Features: []string{"f"}, Segments: []string{"a", "b"}, TopK: 2, MinSamples: 10, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		m.ObserveFeatures([]string{"a", "b"}[i%2], map[string]*string{"f": str([]string{"x", "y"}[i%2])})
	}
	m.CaptureBaseline()
	c.Advance(10 * time.Minute)
	// Segment a keeps its values; unknown segments fold into "other"; new
	// categories beyond the top-2 fold into <other>.
	for i := range 100 {
		m.ObserveFeatures("a", map[string]*string{"f": str("x")})
		m.ObserveFeatures("zzz", map[string]*string{"f": str([]string{"p", "q", "r"}[i%3])})
	}
	f := m.Features()[0]
	got := map[string]SegmentStats{}
	for _, s := range f.BySegment {
		got[s.Segment] = s
	}
	if len(f.BySegment) != 3 || got["a"].Samples != 100 || got["b"].Samples != 0 || got[Other].Samples != 100 {
		t.Fatalf("Features() segments = %+v, want a:100 b:0 other:100", f.BySegment)
	}
	if got["a"].PSI > 1e-9 {
		t.Errorf("segment a PSI = %v, want 0", got["a"].PSI)
	}
	if f.PSI < 0.2 {
		t.Errorf("overall PSI = %v, want > 0.2 (half the traffic moved to unseen categories)", f.PSI)
	}
	if got := m.Segment("zzz"); got != Other {
		t.Errorf("Segment(zzz) = %q, want %q", got, Other)
	}
	m.mu.Lock()
	bins := len(m.names[0])
	m.mu.Unlock()
	if bins != 4 {
		t.Errorf("bins = %d, want 4 (null, other and the top 2)", bins)
	}
}
