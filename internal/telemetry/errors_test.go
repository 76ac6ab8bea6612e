package telemetry

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestSDKErrorsRateLimited(t *testing.T) {
	var buf bytes.Buffer
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	h := &sdkErrors{logger: slog.New(slog.NewJSONHandler(&buf, nil)), m: m, now: func() time.Time { return now }}
	steps := []struct {
		advance time.Duration
		logged  bool
	}{
		{0, true},            // the first error is logged
		{time.Second, false}, // within 10s: counted only
		{5 * time.Second, false},
		{5 * time.Second, true}, // 11s after the first: logged, with 2 suppressed
		{time.Second, false},
	}
	lines := 0
	for i, st := range steps {
		now = now.Add(st.advance)
		h.Handle(errors.New("export failed: connection refused"))
		got := strings.Count(buf.String(), "\n")
		if logged := got > lines; logged != st.logged {
			t.Errorf("error %d logged = %v, want %v", i, logged, st.logged)
		}
		lines = got
	}
	h.Handle(nil)
	if got := counter(m.sdkErrors); got != float64(len(steps)) {
		t.Errorf("sightline_telemetry_errors_total = %v, want %d", got, len(steps))
	}
	if !strings.Contains(buf.String(), `"suppressed_since_last":2`) {
		t.Errorf("log %q does not report the 2 suppressed errors", buf.String())
	}
}
