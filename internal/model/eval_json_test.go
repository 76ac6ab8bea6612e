package model

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestEvalStatsJSON: /v1/stats (model_eval) and the cluster's quality
// state (calibration) carry EvalStats with the snake_case keys that
// internal/api/openapi.json documents.
func TestEvalStatsJSON(t *testing.T) {
	b, err := json.Marshal(EvalStats{Window: time.Minute, Count: 3, LogLoss: 0.5, MeanPredicted: 0.25, ObservedCTR: 1.0 / 3})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"window_ns": 6e10, "count": 3.0, "log_loss": 0.5, "mean_predicted": 0.25, "observed_ctr": 1.0 / 3}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("json.Marshal(EvalStats) mismatch (-want +got):\n%s", diff)
	}
}
