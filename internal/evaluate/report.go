package evaluate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ErrReportVersion reports a saved report of a version this package does not
// read.
var ErrReportVersion = errors.New("unknown report version")

// ReportVersion is the version of the Report JSON form. A field is added
// without changing it; a field that changes meaning or goes away gets a new
// version. Readers should refuse a version they do not know.
const ReportVersion = 1

// Names of the estimators in [Estimate.Estimator].
const (
	// EstimatorIPS is inverse propensity scoring.
	EstimatorIPS = "ips"
	// EstimatorSNIPS is self-normalized inverse propensity scoring.
	EstimatorSNIPS = "snips"
	// EstimatorDR is the doubly robust estimator, with the correction
	// term self-normalized per position (docs/evaluation.md).
	EstimatorDR = "dr"
)

// Reasons in [Policy.Reasons] and [Position.Reasons] why an estimate is not
// trustworthy.
const (
	// ReasonLowESS: the effective sample size is below Thresholds.MinESS
	// or below Thresholds.MinESSShare of the slots.
	ReasonLowESS = "low_effective_sample_size"
	// ReasonUnsupported: more than Thresholds.MaxUnsupported of the
	// target's slot choices are ones the logging policy could never make.
	ReasonUnsupported = "unsupported_choices"
	// ReasonClipped: clipping removed more than Thresholds.MaxClippedMass
	// of the weight mass, which biases IPS and DR low.
	ReasonClipped = "clipped_weights"
	// ReasonNoData: no slot was evaluated.
	ReasonNoData = "no_data"
)

// Report is the result of one evaluation run: what `sightline evaluate
// --report json` prints and <data-dir>/evaluations/last.json holds, which
// the console's Evaluate view reads.
//
// A Policy or Position whose Trustworthy is false carries its numbers
// anyway, for machines; a view for people shows its Reasons instead of the
// values.
type Report struct {
	// Version is ReportVersion.
	Version int `json:"version"`
	// Created is when the run finished.
	Created time.Time `json:"created"`
	// ElapsedSeconds is how long the run took.
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// Source names the decision log read (its directory).
	Source string `json:"source"`
	// From and To are the times of the first and last decision evaluated.
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
	// Decisions is the number of decisions evaluated, Slots the number of
	// shown slots in them, Events the number of events read.
	Decisions int64 `json:"decisions"`
	Slots     int64 `json:"slots"`
	Events    int64 `json:"events"`
	// StoreRatio is the share of decisions the log kept
	// (--decision-store-ratio; 1: all). Decisions are sampled by request
	// id with their events, so the estimates, which are rates, need no
	// reweighting; totals would scale by 1/StoreRatio.
	StoreRatio float64 `json:"store_ratio"`
	// Fallbacks is the number of evaluated decisions that fell back (kept
	// as served, with weight 1, for every target).
	Fallbacks int64 `json:"fallbacks"`
	// Duplicates is the number of decision rows skipped because their
	// request id was read before; Invalid the number skipped because a
	// slot's propensity was not in (0, 1].
	Duplicates int64 `json:"duplicates"`
	Invalid    int64 `json:"invalid"`
	// Settings are the run's parameters.
	Settings Settings `json:"settings"`
	// Thresholds are the limits below which an estimate is flagged as not
	// trustworthy.
	Thresholds Thresholds `json:"thresholds"`
	// Logged is what the logging policy achieved on the log (on-policy).
	Logged Logged `json:"logged"`
	// Policies are the targets evaluated, in the order given.
	Policies []Policy `json:"policies"`
	// Notes are statements every reader of the figures needs, such as the
	// slate approximation the estimators make.
	Notes []string `json:"notes"`
}

// Settings are the parameters of a run.
type Settings struct {
	// Clip is the weight above which importance weights are clipped.
	Clip float64 `json:"clip"`
	// Bootstrap is the number of bootstrap resamples; Seed their seed;
	// Groups the number of groups of decisions resampled (each decision
	// its own group when there are fewer decisions than the group limit).
	Bootstrap int    `json:"bootstrap"`
	Seed      uint64 `json:"seed"`
	Groups    int    `json:"groups"`
	// Level is the confidence level of the intervals (0.95).
	Level float64 `json:"level"`
	// MaxPerCategory is the diversity cap the target slates are built with.
	MaxPerCategory int `json:"max_per_category"`
	// RecentSlots is the number of the user's recent categories that get a
	// slot in a model target's slate, as serving does.
	RecentSlots int `json:"recent_slots"`
}

// Thresholds are the documented limits of trust (docs/evaluation.md).
type Thresholds struct {
	// MinESS is the least effective sample size, in slots.
	MinESS float64 `json:"min_ess"`
	// MinESSShare is the least effective sample size as a share of the
	// slots.
	MinESSShare float64 `json:"min_ess_share"`
	// MaxUnsupported is the largest share of unsupported choices.
	MaxUnsupported float64 `json:"max_unsupported"`
	// MaxClippedMass is the largest share of the weight mass clipping may
	// remove.
	MaxClippedMass float64 `json:"max_clipped_mass"`
}

// Logged is the logging policy's on-policy performance over the log.
type Logged struct {
	// CTR is clicks per shown slot, with a bootstrap interval.
	CTR Interval `json:"ctr"`
	// ClicksPerDecision is clicks per decision, with a bootstrap interval.
	ClicksPerDecision Interval `json:"clicks_per_decision"`
	// ConversionRate is conversions per shown slot.
	ConversionRate float64 `json:"conversion_rate"`
	// Positions are the per-position figures, position 1 first.
	Positions []LoggedPosition `json:"positions"`
	// Variants are the figures per serving variant, by name.
	Variants []LoggedVariant `json:"variants"`
}

// LoggedPosition is the logging policy's CTR at one position.
type LoggedPosition struct {
	// Position is 1 for the first slot.
	Position int `json:"position"`
	// Slots is the number of decisions that showed this position.
	Slots int64 `json:"slots"`
	// CTR is clicks per slot at this position.
	CTR float64 `json:"ctr"`
}

// LoggedVariant is the logging policy's performance for one variant.
type LoggedVariant struct {
	Variant   string `json:"variant"`
	Decisions int64  `json:"decisions"`
	Slots     int64  `json:"slots"`
	// CTR is clicks per shown slot; ConversionRate conversions per slot.
	CTR            float64 `json:"ctr"`
	ConversionRate float64 `json:"conversion_rate"`
}

// Policy is the evaluation of one target policy.
type Policy struct {
	// Spec is the target as given (canonical form, see ParseSpec); Kind
	// is "logged", "popularity", "snapshot" or "ftrl".
	Spec string `json:"spec"`
	Kind string `json:"kind"`
	// Explore is the target's own exploration share (0: deterministic).
	Explore float64 `json:"explore"`
	// Trustworthy reports that the estimate passed every threshold;
	// otherwise Reasons says which failed (Reason* constants).
	Trustworthy bool     `json:"trustworthy"`
	Reasons     []string `json:"reasons,omitempty"`
	// Estimates are the click estimates, one per estimator (ips, snips,
	// dr), summed over positions.
	Estimates []Estimate `json:"estimates"`
	// Conversions are conversion estimates (ips, snips; there is no
	// conversion reward model for dr).
	Conversions []Estimate `json:"conversions"`
	// Diagnostics are the overlap and weight figures over all slots.
	Diagnostics Diagnostics `json:"diagnostics"`
	// Positions are the per-position estimates, position 1 first.
	Positions []Position `json:"positions"`
	// Warnings are other things a reader should know (e.g. a snapshot
	// trained on the evaluated period).
	Warnings []string `json:"warnings,omitempty"`
}

// Estimate is one estimator's value for a target.
type Estimate struct {
	// Estimator is EstimatorIPS, EstimatorSNIPS or EstimatorDR.
	Estimator string `json:"estimator"`
	// CTR is the estimated clicks (or conversions) per shown slot;
	// ClicksPerDecision the same per decision (named for clicks, also
	// used for conversions). Nil when the estimator is undefined (e.g.
	// SNIPS with no weight at all).
	CTR               *Interval `json:"ctr,omitempty"`
	ClicksPerDecision *Interval `json:"clicks_per_decision,omitempty"`
}

// Interval is a point estimate with its bootstrap interval.
type Interval struct {
	Value float64 `json:"value"`
	Low   float64 `json:"low"`
	High  float64 `json:"high"`
}

// Contains reports whether v lies within [Low, High].
func (iv Interval) Contains(v float64) bool { return iv.Low <= v && v <= iv.High }

// String formats the interval as "value [low, high]" in percent.
func (iv Interval) String() string {
	return fmt.Sprintf("%.3f%% [%.3f, %.3f]", 100*iv.Value, 100*iv.Low, 100*iv.High)
}

// Diagnostics are the weight and overlap figures of a target, over all
// slots or over one position.
type Diagnostics struct {
	// Slots is the number of slots evaluated.
	Slots int64 `json:"slots"`
	// ESS is the effective sample size (Σw)²/Σw² of the unclipped
	// weights, in slots; ESSShare is ESS/Slots.
	ESS      float64 `json:"ess"`
	ESSShare float64 `json:"ess_share"`
	// Unsupported is the share of the target's slot choices the logging
	// policy could never have made (their weight is lost to IPS).
	Unsupported float64 `json:"unsupported"`
	// Matched is the share of slots whose logged item the target could
	// have shown there (a non-zero weight).
	Matched float64 `json:"matched"`
	// MeanWeight is the mean unclipped weight; near 1 when the target is
	// well covered, lower when its choices are often unsupported (or, below
	// position 1, where the diversity cap makes the reconstructed
	// propensities approximate).
	MeanWeight float64 `json:"mean_weight"`
	// MaxWeight is the largest unclipped weight.
	MaxWeight float64 `json:"max_weight"`
	// ClippedShare is the share of non-zero weights that were clipped;
	// ClippedMass the share of the weight mass clipping removed.
	ClippedShare float64 `json:"clipped_share"`
	ClippedMass  float64 `json:"clipped_mass"`
}

// Position is a target's evaluation at one shown position.
type Position struct {
	// Position is 1 for the first slot.
	Position int `json:"position"`
	// LoggedCTR is the logging policy's CTR at this position.
	LoggedCTR float64 `json:"logged_ctr"`
	// Estimates are the click estimates at this position (CTR only;
	// ClicksPerDecision is nil).
	Estimates []Estimate `json:"estimates"`
	// Diagnostics are this position's weight and overlap figures.
	Diagnostics Diagnostics `json:"diagnostics"`
	// Trustworthy and Reasons as for Policy, with this position's figures.
	Trustworthy bool     `json:"trustworthy"`
	Reasons     []string `json:"reasons,omitempty"`
}

// Policy returns the policy of r whose Spec is spec, or nil.
func (r *Report) Policy(spec string) *Policy {
	for i := range r.Policies {
		if r.Policies[i].Spec == spec {
			return &r.Policies[i]
		}
	}
	return nil
}

// Estimate returns p's click estimate by the named estimator, or nil.
func (p *Policy) Estimate(estimator string) *Estimate {
	return findEstimate(p.Estimates, estimator)
}

// Covers reports whether the interval of p's click estimate by the named
// estimator holds ctr (clicks per shown slot), e.g. the CTR the target
// achieved when it then served on-policy. It is false when the estimate is
// undefined.
func (p *Policy) Covers(estimator string, ctr float64) bool {
	e := p.Estimate(estimator)
	return e != nil && e.CTR != nil && e.CTR.Contains(ctr)
}

// Estimate returns the position's click estimate by the named estimator,
// or nil.
func (p *Position) Estimate(estimator string) *Estimate {
	return findEstimate(p.Estimates, estimator)
}

func findEstimate(es []Estimate, name string) *Estimate {
	for i := range es {
		if es[i].Estimator == name {
			return &es[i]
		}
	}
	return nil
}

// WriteFile writes r as indented JSON to path atomically (a temporary file
// renamed over it), creating the directory.
func (r *Report) WriteFile(path string) (err error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("save report: %w", err)
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("save report: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("save report: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save report: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("save report: %w", err)
	}
	return nil
}

// ReadFile reads a report written by WriteFile. It fails on a report of
// another version.
func ReadFile(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode report: %w", err)
	}
	if r.Version != ReportVersion {
		return nil, fmt.Errorf("read report: %w: %d, want %d", ErrReportVersion, r.Version, ReportVersion)
	}
	return &r, nil
}
