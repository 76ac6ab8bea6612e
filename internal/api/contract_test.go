package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/sightline/sightline/internal/api/apitest"
)

// checked wraps h, an API server, so that every response it writes in a
// test, success or problem, is validated against openapi.json; a mismatch
// fails t. Benchmarks get h itself: they measure the server, not the
// validator.
func checked(t testing.TB, h http.Handler) http.Handler {
	t.Helper()
	if _, ok := t.(*testing.B); ok {
		return h
	}
	v, err := apitest.Default()
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return v.Handler(t, h)
}

// statsFixture is a /v1/stats body shaped like a node's (app.Stats), for
// the fake StatsSource: the contract check holds the fake to the document
// too.
func statsFixture() map[string]any {
	var m map[string]any
	err := json.Unmarshal([]byte(`{"time":"2026-03-04T05:06:07Z","window_seconds":60,"requests":630,
		"requests_per_second":10.5,"latency_ms":{"p50":1.2,"p95":3.4,"p99":5.6},"error_rate":0,"fallback_rate":0.1,
		"fallback_rate_by_reason":{"model_timeout":0.1},"ctr_by_variant":{"control":{"impressions":100,"clicks":5,"ctr":0.05}},
		"events_per_second":3,"role":"all","node":"n1","model_version":"ftrl-3","model_updates":42,
		"model_eval":{"window_ns":600000000000,"count":100,"log_loss":0.2,"mean_predicted":0.05,"observed_ctr":0.05},
		"events_logged":10,"events_applied":10,"events_learned":10,"events_deduplicated":0,"ingest_lag_seconds":0,
		"users":2,"items":3,"restore":{"model_snapshot":"none","feature_snapshot":"none","model_offset":0,
		"feature_offset":0,"journal_replayed":0,"log_next":0}}`), &m)
	if err != nil {
		panic(err)
	}
	return m
}
