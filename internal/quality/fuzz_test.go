package quality

import (
	"encoding/json"
	"math"
	"testing"
)

// FuzzBaseline feeds arbitrary snapshot baselines to a Monitor: restoring
// one must never panic nor yield a non-finite PSI or null ratio.
func FuzzBaseline(f *testing.F) {
	f.Add([]byte(`{"features":{"f":{"samples":10,"counts":{"a":5,"<null>":5}}},"segments":{"s":{"f":{"samples":3,"counts":{"b":3}}}}}`))
	f.Add([]byte(`{"features":{"f":{"samples":-1,"counts":{"a":-5}}}}`))
	f.Add([]byte(`{"features":{"f":{"samples":1,"counts":{"<other>":9223372036854775807}}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var b Baseline
		if json.Unmarshal(raw, &b) != nil {
			return
		}
		c := newClock()
		m, err := NewMonitor(MonitorConfig{Features: []string{"f", "g"}, Segments: []string{"s"}, MinSamples: 1, TopK: 3, Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		m.SetBaseline(b)
		for i := range 20 {
			v := string(rune('a' + i%5))
			m.ObserveFeatures("s", map[string]*string{"f": &v})
		}
		for _, fs := range m.Features() {
			vals := []float64{fs.PSI, fs.NullRatio, fs.BaselineNullRatio}
			for _, s := range fs.BySegment {
				vals = append(vals, s.PSI, s.NullRatio, s.BaselineNullRatio)
			}
			for _, v := range vals {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("Features() after SetBaseline(%s) = %+v, want finite figures", raw, fs)
				}
			}
		}
	})
}
