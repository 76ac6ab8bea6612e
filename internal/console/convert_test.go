package console

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/quality"
)

func TestAlertViewsNameEachHint(t *testing.T) {
	a := quality.Alert{Name: "HighFallbackRate", State: "firing", Hints: []quality.Hint{
		{Cause: quality.Cause{Kind: "feature", Feature: "user_age_bucket", Segment: "new"}, Score: 3},
		{Cause: quality.Cause{Kind: "fallback", Reason: "missing_features"}, Score: 2},
		{Cause: quality.Cause{Kind: "stage", Stage: "FeatureFetch"}, Score: 1},
	}}
	got := AlertViews([]quality.Alert{a})[0].Hints
	want := []HintView{
		{Kind: "feature", Name: "user_age_bucket", Segment: "new", Score: 3},
		{Kind: "fallback", Name: "missing_features", Score: 2},
		{Kind: "stage", Name: "FeatureFetch", Score: 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("hints (-want +got):\n%s", diff)
	}
}

func TestDecisionCounts(t *testing.T) {
	var dc DecisionCounts
	if got := dc.Confidence(); len(got) != len(ConfidenceBuckets) || got[0].Count != 0 {
		t.Fatalf("empty histogram = %v", got)
	}
	for _, d := range []engine.Decision{
		{Variant: "ftrl", Confidence: 0.004},
		{Variant: "ftrl", Confidence: 0.3},
		{Variant: "ftrl", Confidence: 1},
		{Variant: "popularity", Fallback: engine.ReasonModelError}, // no confidence: usage only
	} {
		dc.Observe(&d)
	}
	counts := map[float64]int64{}
	for _, b := range dc.Confidence() {
		counts[b.Upper] = b.Count
	}
	if counts[0.005] != 1 || counts[0.3] != 1 || counts[1] != 1 || counts[0.01] != 0 {
		t.Errorf("histogram = %v; want one in (…,0.005], (0.2,0.3] and (0.75,1]", counts)
	}
	if diff := cmp.Diff(map[string]int64{"ftrl": 3, "popularity": 1}, dc.VariantUsage()); diff != "" {
		t.Errorf("usage (-want +got):\n%s", diff)
	}
}
