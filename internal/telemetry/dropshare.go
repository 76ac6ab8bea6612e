package telemetry

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DropShare is the share of telemetry items dropped over a sliding window,
// read from the telemetry's own counters (sightline_telemetry_dropped_total
// against sightline_traces_kept_total) in a registry: the signal of the
// TelemetryDropping alert. It is safe for concurrent use.
type DropShare struct {
	g      prometheus.Gatherer
	window time.Duration

	mu      sync.Mutex
	samples []dropSample
	share   float64
}

type dropSample struct {
	at            time.Time
	dropped, kept float64
}

// NewDropShare returns a DropShare over window (a few evaluations, so one
// quiet interval with nothing kept does not read as "no drops") of the
// counters g gathers.
func NewDropShare(g prometheus.Gatherer, window time.Duration) *DropShare {
	return &DropShare{g: g, window: window}
}

// Update reads the counters at now; the share covers the samples within
// the window before it.
func (d *DropShare) Update(now time.Time) error {
	mfs, err := d.g.Gather()
	if err != nil {
		return err
	}
	var dropped, kept float64
	for _, mf := range mfs {
		switch mf.GetName() {
		case "sightline_telemetry_dropped_total":
			for _, m := range mf.GetMetric() {
				dropped += m.GetCounter().GetValue()
			}
		case "sightline_traces_kept_total":
			for _, m := range mf.GetMetric() {
				kept += m.GetCounter().GetValue()
			}
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.samples = append(d.samples, dropSample{now, dropped, kept})
	for len(d.samples) > 1 && now.Sub(d.samples[0].at) > d.window {
		d.samples = d.samples[1:]
	}
	first := d.samples[0]
	dd, dk := dropped-first.dropped, kept-first.kept
	d.share = 0
	if dd+dk > 0 {
		d.share = dd / (dd + dk)
	}
	return nil
}

// Share is the share computed by the last Update, 0..1.
func (d *DropShare) Share() float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.share
}
