package quality

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestLiveSnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLive(LiveConfig{Window: 10 * time.Second})
		time.Sleep(time.Second) // the bubble starts on a second boundary
		for i := range 100 {
			out, reason := OutcomeOK, ""
			if i%10 == 0 {
				out, reason = OutcomeFallback, "model_timeout"
			}
			l.ObserveRequest(Request{Variant: "ftrl", Outcome: out, Reason: reason, Duration: time.Duration(i+1) * 100 * time.Microsecond})
		}
		for i := range 200 {
			l.ObserveEngagement("ftrl", true, false)
			if i%20 == 0 {
				l.ObserveEngagement("ftrl", false, true)
			}
		}
		time.Sleep(1999 * time.Millisecond)
		s := l.Snapshot()
		if s.Requests != 100 || s.FallbackRate != 0.1 || s.FallbackRateByReason["model_timeout"] != 0.1 {
			t.Errorf("Snapshot requests=%d fallback=%v by reason=%v, want 100, 0.1, model_timeout 0.1", s.Requests, s.FallbackRate, s.FallbackRateByReason)
		}
		if c := s.CTRByVariant["ftrl"]; c.Impressions != 200 || c.Clicks != 10 || c.CTR != 0.05 {
			t.Errorf("CTR = %+v, want 200 impressions, 10 clicks, 0.05", c)
		}
		// p99 of 0.1..10 ms is ~9.9 ms; buckets are 10% wide and round up.
		if s.Latency.P99 < 9.9 || s.Latency.P99 > 11 || s.Latency.P50 < 5 || s.Latency.P50 > 5.6 {
			t.Errorf("latency = %+v, want p50≈5ms p99≈9.9ms", s.Latency)
		}
		if s.RequestsPerSecond < 45 || s.RequestsPerSecond > 55 {
			t.Errorf("RequestsPerSecond = %v over %vs, want ≈50", s.RequestsPerSecond, s.WindowSeconds)
		}
		time.Sleep(11 * time.Second) // everything leaves the window
		if s := l.Snapshot(); s.Requests != 0 || len(s.CTRByVariant) != 0 {
			t.Errorf("after the window: %+v, want empty", s)
		}
	})
}
