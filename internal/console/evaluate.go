package console

import (
	"context"
	"net/http"
	"slices"
	"time"
)

// Evaluations reads the last offline evaluation run (`sightline
// evaluate`). The console calls it on Evaluate page requests,
// concurrently; it may read a small file, and should give up when ctx is
// done.
type Evaluations interface {
	// LastEvaluation returns the last run and where it is kept.
	LastEvaluation(ctx context.Context) EvaluationState
}

// EvaluationState is the last evaluation run, or why there is none to
// show, and where runs are read from and kept.
type EvaluationState struct {
	// Report is the last run; nil when none ran or it cannot be read.
	Report *EvaluationView
	// Err says why a saved report cannot be read ("" when it can, or
	// when there is none).
	Err string
	// ReportPath is the file the last run is read from; DecisionsDir the
	// decision log a run reads. Both are shown in the instructions.
	ReportPath   string
	DecisionsDir string
	// DataDir is the node's data directory, where `sightline evaluate`
	// saves its report.
	DataDir string
}

// EvaluationView is one offline evaluation run: target policies estimated
// from the logged decisions with the propensities they were served with.
type EvaluationView struct {
	// Created is when the run finished and Elapsed how long it took.
	Created time.Time
	Elapsed time.Duration
	// Source names the decision log read; From and To are the times of
	// its first and last decision evaluated.
	Source   string
	From, To time.Time
	// Decisions, Slots (shown positions) and Events read; Fallbacks among
	// the decisions; Duplicates and Invalid rows skipped.
	Decisions, Slots, Events       int64
	Fallbacks, Duplicates, Invalid int64
	Clip                           float64
	Bootstrap                      int
	Level                          float64
	Thresholds                     EvaluationThresholds
	Logged                         LoggedView
	Policies                       []PolicyView
	Notes                          []string
}

// EvaluationThresholds are the limits below which an estimate is flagged
// as not trustworthy.
type EvaluationThresholds struct {
	// MinESS is the least effective sample size in slots, MinESSShare the
	// least as a share of the slots.
	MinESS, MinESSShare float64
	// MaxUnsupported is the largest share of the target's choices the
	// logging policy could not have made; MaxClippedMass the largest share
	// of the weight mass clipping may remove.
	MaxUnsupported, MaxClippedMass float64
}

// LoggedView is what the logging policy achieved on the log, on-policy.
type LoggedView struct {
	CTR               IntervalView
	ClicksPerDecision IntervalView
	ConversionRate    float64
	// Positions are per shown position, the first position first.
	Positions []LoggedPositionView
	// Variants are per serving variant.
	Variants []LoggedVariantView
}

// LoggedPositionView is the logging policy's CTR at one position (1 is the
// first slot).
type LoggedPositionView struct {
	Position int
	Slots    int64
	CTR      float64
}

// LoggedVariantView is the logging policy's figures for one variant.
type LoggedVariantView struct {
	Variant             string
	Decisions, Slots    int64
	CTR, ConversionRate float64
}

// PolicyView is the evaluation of one target policy.
type PolicyView struct {
	// Spec is the target as given and Kind its kind ("logged",
	// "popularity", "snapshot", "ftrl"); Explore its own exploration
	// share.
	Spec    string
	Kind    string
	Explore float64
	// Trustworthy is false when an estimate failed a threshold; Reasons
	// says which (codes such as "low_effective_sample_size").
	Trustworthy bool
	Reasons     []string
	// Estimates are the click estimates (IPS, SNIPS, DR) summed over
	// positions; Conversions the conversion estimates.
	Estimates   []EstimateView
	Conversions []EstimateView
	// Diagnostics are the overlap and weight figures over all slots.
	Diagnostics DiagnosticsView
	// Positions are per shown position, the first position first.
	Positions []PositionView
	Warnings  []string
}

// EstimateView is one estimator's value: per shown slot (CTR) and per
// decision, each nil when the estimator is undefined.
type EstimateView struct {
	// Estimator is "ips", "snips" or "dr".
	Estimator         string
	CTR               *IntervalView
	ClicksPerDecision *IntervalView
}

// IntervalView is a value with its interval.
type IntervalView struct {
	Value, Low, High float64
}

// DiagnosticsView are the weight and overlap figures of a target.
type DiagnosticsView struct {
	Slots int64
	// ESS is the effective sample size in slots, ESSShare as a share of
	// Slots.
	ESS, ESSShare float64
	// Unsupported is the share of the target's choices the logging policy
	// could never have made; Matched the share of slots the target could
	// have shown the logged item in.
	Unsupported, Matched  float64
	MeanWeight, MaxWeight float64
	// ClippedShare is the share of non-zero weights clipped, ClippedMass
	// the share of the weight mass clipping removed.
	ClippedShare, ClippedMass float64
}

// PositionView is a target's evaluation at one shown position.
type PositionView struct {
	Position    int
	LoggedCTR   float64
	Estimates   []EstimateView
	Diagnostics DiagnosticsView
	Trustworthy bool
	Reasons     []string
}

// evaluateData is the data of the Evaluate page.
type evaluateData struct {
	EvaluationState
	// Estimators are the estimator columns, in display order.
	Estimators []string
	Thresholds EvaluationThresholds
	Policies   []policyRow
}

// policyRow is a policy with its estimates in Estimators order and its
// reasons as sentences.
type policyRow struct {
	PolicyView
	// Estimators name the columns of Clicks and Conversions.
	Estimators []string
	Clicks     []*EstimateView
	// DR is the doubly robust click estimate, nil without one.
	DR          *EstimateView
	Conversions []*EstimateView
	Why         []string
	Rows        []positionRow
}

type positionRow struct {
	PositionView
	Clicks []*EstimateView
	Why    []string
}

// estimators are the estimator columns of the Evaluate page.
var estimators = []string{"ips", "snips", "dr"}

// estimatorName is an estimator's display name.
func estimatorName(code string) string {
	switch code {
	case "ips":
		return "IPS"
	case "snips":
		return "SNIPS"
	case "dr":
		return "DR"
	}
	return code
}

func byEstimator(es []EstimateView) []*EstimateView {
	out := make([]*EstimateView, len(estimators))
	for i, name := range estimators {
		for j := range es {
			if es[j].Estimator == name {
				out[i] = &es[j]
				break
			}
		}
	}
	return out
}

// reasonText says why an estimate is not trustworthy, with the threshold
// it failed; an unknown code is shown as it is.
func reasonText(code string, th EvaluationThresholds) string {
	switch code {
	case "low_effective_sample_size":
		return "The effective sample size is below " + fixed(0, th.MinESS) + " slots or " + pct(th.MinESSShare) + " of the slots: too few logged slots look like the target's choices."
	case "unsupported_choices":
		return "More than " + pct(th.MaxUnsupported) + " of the target's choices are ones the logging policy could never have made: their outcome is unknown."
	case "clipped_weights":
		return "Clipping removed more than " + pct(th.MaxClippedMass) + " of the weight mass, which biases IPS and DR low."
	case "no_data":
		return "No slot was evaluated."
	}
	return code
}

func (c *Console) evaluate(w http.ResponseWriter, r *http.Request) {
	d := evaluateData{Estimators: estimators}
	if c.cfg.Evaluations != nil {
		d.EvaluationState = c.cfg.Evaluations.LastEvaluation(r.Context())
	}
	if rep := d.Report; rep != nil {
		d.Thresholds = rep.Thresholds
		for _, p := range rep.Policies {
			row := policyRow{PolicyView: p, Estimators: estimators, Clicks: byEstimator(p.Estimates), Conversions: byEstimator(p.Conversions)}
			row.DR = row.Clicks[slices.Index(estimators, "dr")]
			for _, code := range p.Reasons {
				row.Why = append(row.Why, reasonText(code, rep.Thresholds))
			}
			for _, pos := range p.Positions {
				pr := positionRow{PositionView: pos, Clicks: byEstimator(pos.Estimates)}
				for _, code := range pos.Reasons {
					pr.Why = append(pr.Why, reasonText(code, rep.Thresholds))
				}
				row.Rows = append(row.Rows, pr)
			}
			d.Policies = append(d.Policies, row)
		}
	}
	c.render(w, r, http.StatusOK, "evaluate", "Evaluate", d)
}
