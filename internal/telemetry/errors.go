package telemetry

import (
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
)

// errorLogEvery is how often SDK errors are logged at most; the rest are
// counted.
const errorLogEvery = 10 * time.Second

// sdkErrors turns the errors the OpenTelemetry SDK reports (an exporter
// that cannot reach its collector, a log batch that could not be sent) into
// WARN log lines, at most one per errorLogEvery, and counts every one in
// sightline_telemetry_errors_total. Without it the SDK prints each error to
// stderr, which during a collector outage floods the output. Handle is safe
// for concurrent use and never blocks on I/O beyond the log write.
type sdkErrors struct {
	logger *slog.Logger
	m      *metrics
	now    func() time.Time

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

var _ otel.ErrorHandler = (*sdkErrors)(nil)

// Handle reports err.
func (h *sdkErrors) Handle(err error) {
	if err == nil {
		return
	}
	h.m.sdkErrors.Inc()
	now := h.now()
	h.mu.Lock()
	if !h.last.IsZero() && now.Sub(h.last) < errorLogEvery {
		h.suppressed++
		h.mu.Unlock()
		return
	}
	h.last = now
	n := h.suppressed
	h.suppressed = 0
	h.mu.Unlock()
	h.logger.Warn("opentelemetry sdk error", slog.String("err", err.Error()), slog.Int("suppressed_since_last", n))
}

// ErrorHandler returns the handler for OpenTelemetry SDK errors: rate-limited
// WARN lines in this process's log and a counter. cmd/sightline installs it
// with otel.SetErrorHandler; internal packages never set globals.
func (t *Telemetry) ErrorHandler() otel.ErrorHandler {
	return &sdkErrors{logger: t.logger, m: t.m, now: time.Now}
}
