package console

import (
	"sync"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/model"
	"github.com/sightline/sightline/internal/quality"
)

// Conversions from the quality package's figures to the console's views,
// so a node hands the console what it computes without a layer of its own.

// AlertViews converts evaluated alerts to their views.
func AlertViews(alerts []quality.Alert) []AlertView {
	out := make([]AlertView, 0, len(alerts))
	for _, a := range alerts {
		v := AlertView{
			Name: a.Name, State: a.State, Severity: a.Severity, Summary: a.Summary, Description: a.Description,
			RunbookURL: a.RunbookURL, Labels: a.Labels, Value: a.Value, ActiveAt: a.ActiveAt, FiredAt: a.FiredAt,
			ResolvedAt: a.ResolvedAt, ExampleTraces: a.ExampleTraces,
		}
		for _, h := range a.Hints {
			name := h.Feature
			switch {
			case h.Reason != "":
				name = h.Reason
			case h.Stage != "":
				name = h.Stage
			}
			v.Hints = append(v.Hints, HintView{Kind: string(h.Kind), Name: name, Segment: h.Segment, Detail: h.Detail, Score: h.Score})
		}
		out = append(out, v)
	}
	return out
}

// FeatureViews converts feature statistics to their views.
func FeatureViews(fs []quality.FeatureStats) []FeatureView {
	out := make([]FeatureView, len(fs))
	for i, f := range fs {
		v := FeatureView{Name: f.Name, NullRatio: f.NullRatio, BaselineNullRatio: f.BaselineNullRatio, PSI: f.PSI, Samples: f.Samples, BaselineSamples: f.BaselineSamples}
		for _, s := range f.BySegment {
			v.BySegment = append(v.BySegment, SegmentView{Segment: s.Segment, NullRatio: s.NullRatio, BaselineNullRatio: s.BaselineNullRatio, PSI: s.PSI, Samples: s.Samples, BaselineSamples: s.BaselineSamples})
		}
		out[i] = v
	}
	return out
}

// VariantViews converts per-variant engagement to its views.
func VariantViews(vs []quality.VariantEngagement) []VariantView {
	out := make([]VariantView, len(vs))
	for i, v := range vs {
		out[i] = VariantView{Variant: v.Variant, Impressions: v.Impressions, Clicks: v.Clicks, CTR: v.CTR, Baseline: v.Baseline, Ratio: v.Ratio}
	}
	return out
}

// CalibrationOf converts the model's online evaluation to its view.
func CalibrationOf(ev model.EvalStats) CalibrationView {
	return CalibrationView{MeanPredicted: ev.MeanPredicted, Observed: ev.ObservedCTR, Samples: ev.Count}
}

// ConfidenceBuckets are the upper bounds of the console's confidence
// histogram.
var ConfidenceBuckets = []float64{0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1}

// DecisionCounts tallies decisions by confidence bucket and variant, for
// the Model page. The zero value is ready; it is safe for concurrent use.
type DecisionCounts struct {
	mu       sync.Mutex
	buckets  []int64
	variants map[string]int64
}

// Observe counts d. A fallback without a confidence counts only for its
// variant.
func (dc *DecisionCounts) Observe(d *engine.Decision) {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if dc.buckets == nil {
		dc.buckets = make([]int64, len(ConfidenceBuckets))
		dc.variants = map[string]int64{}
	}
	dc.variants[d.Variant]++
	if d.Fallback != engine.ReasonNone && d.Confidence == 0 {
		return
	}
	for i, ub := range ConfidenceBuckets {
		if d.Confidence <= ub {
			dc.buckets[i]++
			break
		}
	}
}

// Confidence returns the histogram, in increasing order of Upper.
func (dc *DecisionCounts) Confidence() []BucketView {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	out := make([]BucketView, len(ConfidenceBuckets))
	for i, ub := range ConfidenceBuckets {
		out[i] = BucketView{Upper: ub}
		if dc.buckets != nil {
			out[i].Count = dc.buckets[i]
		}
	}
	return out
}

// VariantUsage returns the decisions counted per variant.
func (dc *DecisionCounts) VariantUsage() map[string]int64 {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	out := make(map[string]int64, len(dc.variants))
	for k, v := range dc.variants {
		out[k] = v
	}
	return out
}
