package quality

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// CauseKind is the kind of a candidate root cause.
type CauseKind string

// The kinds of candidate causes the ranking considers.
const (
	// CauseFeature is a feature whose null rate or distribution changed,
	// overall (Segment "") or within one segment.
	CauseFeature CauseKind = "feature"
	// CauseFallback is a fallback reason whose rate rose.
	CauseFallback CauseKind = "fallback"
	// CauseStage is a decision stage whose p99 latency rose.
	CauseStage CauseKind = "stage"
	// CauseModel says that no input, fallback or latency change explains
	// the symptom: what the model learned no longer matches the world
	// (concept drift). It is the answer by elimination, with score 0.
	CauseModel CauseKind = "model"
)

// Cause identifies a candidate root cause. Only the fields of its kind are set.
type Cause struct {
	Kind    CauseKind `json:"kind"`
	Feature string    `json:"feature,omitempty"`
	Segment string    `json:"segment,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Stage   string    `json:"stage,omitempty"`
}

// Hint is a ranked candidate cause of an alert.
type Hint struct {
	Cause
	// Score is the normalized size of the change: 1 is about as large as
	// the change an alert threshold stands for, whatever the kind.
	Score float64 `json:"score"`
	// Detail describes the change for a human.
	Detail string `json:"detail"`
	// ExampleTraces are trace ids of recent decisions that show the cause.
	ExampleTraces []string `json:"example_traces,omitempty"`
}

// HintConfig tunes the root-cause ranking. The zero value of every field
// means its default.
type HintConfig struct {
	// Max bounds the hints returned (default 5).
	Max int
	// MinScore drops candidates scoring below it (default 1).
	MinScore float64
	// Examples bounds the example trace ids per hint (default 5).
	Examples int
	// NullScale is the rise in null ratio that scores 1 (default 0.1).
	NullScale float64
	// PSIScale is the PSI that scores 1 (default 0.2).
	PSIScale float64
	// FallbackScale is the rise in a fallback reason's rate that scores 1
	// (default 0.05).
	FallbackScale float64
	// LatencyScale is the rise in a stage's p99, as a share of the overall
	// baseline p99, that scores 1 (default 1: the stage alone doubled the
	// request's p99).
	LatencyScale float64
	// MinLatency floors the overall baseline p99 that stage rises are
	// compared with (default 1ms), so a fast service is not noisy.
	MinLatency time.Duration
}

func (c HintConfig) withDefaults() HintConfig {
	def := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Max <= 0 {
		c.Max = 5
	}
	if c.Examples <= 0 {
		c.Examples = 5
	}
	if c.MinLatency <= 0 {
		c.MinLatency = time.Millisecond
	}
	def(&c.MinScore, 1)
	def(&c.NullScale, 0.1)
	def(&c.PSIScale, 0.2)
	def(&c.FallbackScale, 0.05)
	def(&c.LatencyScale, 1)
	return c
}

// Rank scores every candidate cause the signals know, the same way for
// every feature, segment, fallback reason and stage, and returns the
// strongest first (at most cfg.Max, none below cfg.MinScore), with example
// trace ids from the Decisions' reservoirs.
//
// A feature scores by its rise in null ratio over the baseline and by its
// PSI, each divided by its scale. A segment's score is further weighted by
// the share of the feature's whole change that lies in that segment, so a
// change confined to one segment ranks that segment above the overall
// figure, and a change spread over every segment ranks the overall figure
// first. A fallback reason scores by its rate's rise over its slow
// baseline; a stage by its p99's rise over its baseline as a share of the
// request's baseline p99.
func Rank(now time.Time, sig Signals, cfg HintConfig) []Hint {
	cfg = cfg.withDefaults()
	var cands []candidate
	if sig.Monitor != nil && sig.Monitor.HasBaseline() {
		cands = append(cands, rankFeatures(sig.Monitor.featuresAt(now), sig.Monitor.cfg.MinSamples, cfg)...)
	}
	if sig.Decisions != nil {
		cands = append(cands, rankDecisions(sig.Decisions.statsAt(now), cfg)...)
	}
	cands = slices.DeleteFunc(cands, func(c candidate) bool { return c.Score < cfg.MinScore })
	slices.SortStableFunc(cands, func(a, b candidate) int { return cmp.Compare(b.Score, a.Score) })
	hints := make([]Hint, 0, min(len(cands), cfg.Max))
	for _, c := range cands[:min(len(cands), cfg.Max)] {
		if sig.Decisions != nil && c.examples {
			c.ExampleTraces = sig.Decisions.examplesAt(now, c.Cause, cfg.Examples)
		}
		hints = append(hints, c.Hint)
	}
	if len(hints) == 0 {
		detail := "no change in input features, fallbacks or stage latency explains it: what the model learned may no longer hold (concept drift); check calibration, then retrain or roll back"
		if sig.Inputs != nil {
			if pred, obs, n := sig.Inputs.Calibration(); n > 0 && obs > 0 {
				detail += fmt.Sprintf(" (mean predicted %.4f vs observed %.4f)", pred, obs)
			}
		}
		hints = append(hints, Hint{Cause: Cause{Kind: CauseModel}, Detail: detail})
	}
	return hints
}

// candidate is a scored cause and whether the reservoirs hold examples of
// it: a feature only has examples of its nulls, so a pure distribution
// shift has none.
type candidate struct {
	Hint
	examples bool
}

func rankFeatures(stats []FeatureStats, minSamples int64, cfg HintConfig) []candidate {
	var out []candidate
	for _, f := range stats {
		if f.Samples < minSamples || f.BaselineSamples == 0 {
			continue
		}
		nullD := f.NullRatio - f.BaselineNullRatio
		out = append(out, candidate{Hint{
			Cause:  Cause{Kind: CauseFeature, Feature: f.Name},
			Score:  max(max(nullD, 0)/cfg.NullScale, f.PSI/cfg.PSIScale),
			Detail: featureDetail(f.Name, "overall", f.BaselineNullRatio, f.NullRatio, f.PSI, max(nullD, 0)/cfg.NullScale >= f.PSI/cfg.PSIScale),
		}, nullD/cfg.NullScale >= cfg.MinScore})
		// How much of the feature's change lies in each segment.
		var nullSum, psiSum float64
		for _, s := range f.BySegment {
			share := float64(s.Samples) / float64(f.Samples)
			if s.Samples >= minSamples && s.BaselineSamples > 0 {
				nullSum += share * max(s.NullRatio-s.BaselineNullRatio, 0)
				psiSum += share * s.PSI
			}
		}
		for _, s := range f.BySegment {
			if s.Samples < minSamples || s.BaselineSamples == 0 {
				continue
			}
			share := float64(s.Samples) / float64(f.Samples)
			d := s.NullRatio - s.BaselineNullRatio
			var nullScore, psiScore float64
			if nullSum > 0 && d > 0 {
				nullScore = d / cfg.NullScale * (share * d / nullSum)
			}
			if psiSum > 0 {
				psiScore = s.PSI / cfg.PSIScale * (share * s.PSI / psiSum)
			}
			out = append(out, candidate{Hint{
				Cause:  Cause{Kind: CauseFeature, Feature: f.Name, Segment: s.Segment},
				Score:  max(nullScore, psiScore),
				Detail: featureDetail(f.Name, "in segment "+s.Segment, s.BaselineNullRatio, s.NullRatio, s.PSI, nullScore >= psiScore),
			}, nullScore >= cfg.MinScore})
		}
	}
	return out
}

func rankDecisions(st DecisionStats, cfg HintConfig) []candidate {
	var out []candidate
	for _, r := range st.Fallbacks {
		d := r.Rate - r.BaselineRate
		if d <= 0 || r.Count == 0 {
			continue
		}
		out = append(out, candidate{Hint{
			Cause:  Cause{Kind: CauseFallback, Reason: r.Reason},
			Score:  d / cfg.FallbackScale,
			Detail: fmt.Sprintf("fallback %s: %.1f%% → %.1f%% of decisions (%+.1f pts)", r.Reason, 100*r.BaselineRate, 100*r.Rate, 100*d),
		}, true})
	}
	if st.BaselineP99Seconds <= 0 {
		return out
	}
	ref := max(st.BaselineP99Seconds, cfg.MinLatency.Seconds())
	for _, s := range st.Stages {
		d := s.P99Seconds - s.BaselineP99Seconds
		if d <= 0 || s.BaselineP99Seconds <= 0 {
			continue
		}
		out = append(out, candidate{Hint{
			Cause:  Cause{Kind: CauseStage, Stage: s.Stage},
			Score:  d / ref / cfg.LatencyScale,
			Detail: fmt.Sprintf("stage %s p99: %.2fms → %.2fms", s.Stage, 1e3*s.BaselineP99Seconds, 1e3*s.P99Seconds),
		}, true})
	}
	return out
}

// featureDetail describes a feature's change by what dominates it: its
// nulls ("f null in segment s: 0.02 → 0.97 (+0.95), PSI 3.4") or its
// distribution ("f drifted overall: PSI 0.8, null 0.02 → 0.02").
func featureDetail(name, scope string, base, cur, psi float64, nulls bool) string {
	if nulls {
		return fmt.Sprintf("%s null %s: %.2f → %.2f (%+.2f), PSI %.2g", name, scope, base, cur, cur-base, psi)
	}
	return fmt.Sprintf("%s drifted %s: PSI %.2g, null %.2f → %.2f", name, scope, psi, base, cur)
}
