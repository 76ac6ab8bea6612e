package console

import (
	"math"
	"net/http"
)

// Experiments reports the live A/B test, the figures of GET
// /v1/experiments. The console calls it on Experiments page requests,
// concurrently (each call may count as a look of the sequential tests,
// which their p-values allow); it must not block on I/O.
type Experiments interface {
	// Experiment returns the experiment's statistics now.
	Experiment() ExperimentView
}

// ExperimentView is the live experiment: every variant against the
// control, and the sample ratio check of the assignments against the
// configured split.
type ExperimentView struct {
	// Control names the variant the others are compared with.
	Control string
	// Variants are in the split's order.
	Variants []ExperimentVariantView
	// SRM checks the decisions each variant served against the split.
	SRM SRMView
	// Alpha is the level the always-valid p-values are read at: below it
	// a difference is declared. Zero means 0.05.
	Alpha float64
}

// ExperimentVariantView is one variant's figures.
type ExperimentVariantView struct {
	Name string
	// Weight is the variant's share of the configured split (any scale).
	Weight float64
	// Decisions are the decisions the variant served (its assignments).
	Decisions   int64
	Impressions int64
	Clicks      int64
	Conversions int64
	// CTR is clicks over impressions and Conversion conversions over
	// clicks, each with its 95% interval.
	CTR        RateView
	Conversion RateView
	// Lift compares the variant's CTR with the control's; nil on the
	// control and while an interval is unbounded (no data on a side).
	Lift *LiftView
	// PValue is the always-valid (mSPRT) p-value of "same CTR as the
	// control"; nil on the control.
	PValue *float64
	// MDE is the smallest absolute CTR difference detectable at the
	// current sample sizes (80% power at 5%); nil on the control and
	// without data on a side.
	MDE *float64
}

// RateView is a proportion with its 95% interval.
type RateView struct {
	Value float64
	Low   float64
	High  float64
}

// LiftView is a difference from the control's rate: absolute (in rate
// units) and relative (a fraction of the control's rate), each with its
// 95% interval.
type LiftView struct {
	Absolute     float64
	AbsoluteLow  float64
	AbsoluteHigh float64
	Relative     float64
	RelativeLow  float64
	RelativeHigh float64
}

// SRMView is the sample ratio mismatch check: a chi-square test of the
// decisions each variant served against the split's weights.
type SRMView struct {
	ChiSquare float64
	P         float64
	// Threshold is the p-value under which the split is declared broken.
	Threshold float64
	// Mismatch is P < Threshold.
	Mismatch bool
}

// defaultAlpha is the level p-values are read at when the source sets
// none.
const defaultAlpha = 0.05

// experimentsData is the data of the Experiments page.
type experimentsData struct {
	Available      bool
	RefreshSeconds float64
	Control        string
	ControlCTR     float64
	Alpha          float64
	SRM            SRMView
	Rows           []experimentRow
	// Decisions is the total of every variant's decisions.
	Decisions int64
	// Significant lists the variants whose p-value is below Alpha.
	Significant []experimentRow
}

// experimentRow is one variant with its expected and observed share of the
// decisions and its reading.
type experimentRow struct {
	ExperimentVariantView
	Control bool
	// Expected is the variant's share of the split's weight, Observed its
	// share of the decisions.
	Expected, Observed float64
	// Significant is PValue < Alpha; Better says in which direction.
	Significant, Better bool
	// P and MDEValue are PValue and MDE, valid when HasP and HasMDE.
	P, MDEValue  float64
	HasP, HasMDE bool
	// MDERelative is the MDE as a fraction of the control's CTR (NaN when
	// the control has none).
	MDERelative float64
}

func (c *Console) experiments(w http.ResponseWriter, r *http.Request) {
	d := experimentsData{Available: c.cfg.Experiments != nil, RefreshSeconds: c.cfg.SampleInterval.Seconds()}
	if c.cfg.Experiments != nil {
		d.fill(c.cfg.Experiments.Experiment())
	}
	c.render(w, r, http.StatusOK, "experiments", "Experiments", d)
}

func (d *experimentsData) fill(v ExperimentView) {
	d.Control, d.SRM, d.Alpha = v.Control, v.SRM, v.Alpha
	if d.Alpha <= 0 {
		d.Alpha = defaultAlpha
	}
	var weights float64
	controlCTR := math.NaN()
	for _, x := range v.Variants {
		d.Decisions += x.Decisions
		if x.Weight > 0 {
			weights += x.Weight
		}
		if x.Name == v.Control {
			controlCTR = x.CTR.Value
		}
	}
	d.ControlCTR = controlCTR
	for _, x := range v.Variants {
		row := experimentRow{ExperimentVariantView: x, Control: x.Name == v.Control, MDERelative: math.NaN()}
		if weights > 0 && x.Weight > 0 {
			row.Expected = x.Weight / weights
		}
		if d.Decisions > 0 {
			row.Observed = float64(x.Decisions) / float64(d.Decisions)
		}
		if x.PValue != nil {
			row.P, row.HasP = *x.PValue, true
			if row.P < d.Alpha {
				row.Significant = true
				row.Better = x.CTR.Value > controlCTR
			}
		}
		if x.MDE != nil {
			row.MDEValue, row.HasMDE = *x.MDE, true
			if controlCTR > 0 {
				row.MDERelative = *x.MDE / controlCTR
			}
		}
		d.Rows = append(d.Rows, row)
		if row.Significant {
			d.Significant = append(d.Significant, row)
		}
	}
}
