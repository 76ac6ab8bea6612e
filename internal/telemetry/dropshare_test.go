package telemetry

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestDropShare(t *testing.T) {
	reg := prometheus.NewRegistry()
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sightline_telemetry_dropped_total"}, []string{"signal"})
	kept := prometheus.NewCounter(prometheus.CounterOpts{Name: "sightline_traces_kept_total"})
	reg.MustRegister(dropped, kept)
	d := NewDropShare(reg, 5*time.Minute)
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	step := func(at time.Duration, drop, keep float64, want float64) {
		t.Helper()
		dropped.WithLabelValues("spans").Add(drop)
		kept.Add(keep)
		if err := d.Update(t0.Add(at)); err != nil {
			t.Fatal(err)
		}
		if got := d.Share(); got != want {
			t.Errorf("at %v: share %v, want %v", at, got, want)
		}
	}
	step(0, 0, 0, 0)                 // nothing yet
	step(time.Minute, 30, 90, 0.25)  // 30 of 120 dropped
	step(2*time.Minute, 0, 0, 0.25)  // a quiet minute changes nothing
	step(7*time.Minute, 0, 100, 0.0) // the drops left the window
}
