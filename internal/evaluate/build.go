package evaluate

import (
	"fmt"
	"math"
)

// report turns the sums into the Report, with the bootstrap intervals.
func (ev *evaluator) report() *Report {
	cfg := ev.cfg
	groups := min(cfg.Groups, int(max(ev.decisions, 1)))
	r := &Report{
		Version:    ReportVersion,
		Source:     cfg.Source,
		From:       ev.from,
		To:         ev.to,
		Decisions:  ev.decisions,
		Slots:      ev.slots,
		Events:     ev.join.events,
		Fallbacks:  ev.fallbacks,
		Duplicates: ev.duplicates,
		Invalid:    ev.invalid,
		Settings: Settings{
			Clip: max(cfg.Clip, 0), Bootstrap: max(cfg.Bootstrap, 0), Seed: cfg.Seed, Groups: groups,
			Level: DefaultLevel, MaxPerCategory: cfg.MaxPerCategory, RecentSlots: max(cfg.RecentSlots, 0),
		},
		Thresholds: cfg.Thresholds,
		Notes:      reportNotes,
		Policies:   []Policy{},
	}
	// Only the groups that hold decisions are resampled.
	ev.logged.groups = groups
	for _, t := range ev.targets {
		t.sums.groups = groups
	}
	dec := float64(ev.decisions)
	lt := ev.logged.totals(nil, nil)
	lv := loggedValuesOf(dec, lt, nil)
	tv := make([][]float64, len(ev.targets))
	for i, t := range ev.targets {
		tv[i] = valuesOf(dec, lt, t.sums.totals(nil, nil), nil)
	}

	// Replicates: lrep[b] logged values, trep[i][b] target i's.
	var lrep [][]float64
	trep := make([][][]float64, len(ev.targets))
	if cfg.Bootstrap > 0 && ev.decisions > 0 {
		var lbuf, tbuf [][]float64
		bootstrap(cfg.Bootstrap, groups, cfg.Seed, ev.decPerGroup[:groups], func(c []float64, d float64) {
			lbuf = ev.logged.totals(c, lbuf)
			lrep = append(lrep, loggedValuesOf(d, lbuf, nil))
			for i, t := range ev.targets {
				tbuf = t.sums.totals(c, tbuf)
				trep[i] = append(trep[i], valuesOf(d, lbuf, tbuf, nil))
			}
		})
	}
	col := func(reps [][]float64, j int) []float64 {
		if len(reps) == 0 {
			return nil
		}
		out := make([]float64, len(reps))
		for b, v := range reps {
			out[b] = v[j]
		}
		return out
	}
	level := DefaultLevel

	r.Logged = Logged{ConversionRate: zeroNaN(lv[lvConv])}
	if iv := interval(lv[lvCTR], col(lrep, lvCTR), level); iv != nil {
		r.Logged.CTR = *iv
	}
	if iv := interval(lv[lvPerDecision], col(lrep, lvPerDecision), level); iv != nil {
		r.Logged.ClicksPerDecision = *iv
	}
	for k, t := range lt {
		r.Logged.Positions = append(r.Logged.Positions, LoggedPosition{Position: k + 1, Slots: int64(t[lN]), CTR: zeroNaN(lv[lvPositions+k])})
	}
	for _, name := range sortedKeys(ev.variants) {
		vs := ev.variants[name]
		r.Logged.Variants = append(r.Logged.Variants, LoggedVariant{
			Variant: name, Decisions: int64(vs.decisions), Slots: int64(vs.slots),
			CTR: zeroNaN(ratio(vs.clicks, vs.slots)), ConversionRate: zeroNaN(ratio(vs.conversions, vs.slots)),
		})
	}

	for i, t := range ev.targets {
		vals, reps := tv[i], trep[i]
		est := func(name string, ctr, cpd int) Estimate {
			return Estimate{Estimator: name,
				CTR:               interval(vals[ctr], col(reps, ctr), level),
				ClicksPerDecision: interval(vals[cpd], col(reps, cpd), level)}
		}
		p := Policy{
			Spec:    t.spec.String(),
			Kind:    t.spec.Kind,
			Explore: t.spec.Explore,
			Estimates: []Estimate{
				est(EstimatorIPS, vIPS, vIPSPerDecision),
				est(EstimatorSNIPS, vSNIPS, vSNIPSPerDecision),
				est(EstimatorDR, vDR, vDRPerDecision),
			},
			Conversions: []Estimate{
				est(EstimatorIPS, vConvIPS, vConvIPSPerDecision),
				est(EstimatorSNIPS, vConvSNIPS, vConvSNIPSPerDecision),
			},
		}
		var all diag
		for k := range lt {
			var dg diag
			if k < len(t.diags) {
				dg = t.diags[k]
			}
			all.merge(&dg)
			pd := dg.diagnostics()
			pos := Position{Position: k + 1, LoggedCTR: zeroNaN(lv[lvPositions+k]), Diagnostics: pd}
			for j, name := range []string{EstimatorIPS, EstimatorSNIPS, EstimatorDR} {
				x := vOverall + 3*k + j
				pos.Estimates = append(pos.Estimates, Estimate{Estimator: name, CTR: interval(vals[x], col(reps, x), level)})
			}
			pos.Reasons = verdict(pd, cfg.Thresholds)
			pos.Trustworthy = len(pos.Reasons) == 0
			p.Positions = append(p.Positions, pos)
		}
		p.Diagnostics = all.diagnostics()
		p.Reasons = verdict(p.Diagnostics, cfg.Thresholds)
		p.Trustworthy = len(p.Reasons) == 0
		if t.spec.Kind == KindSnapshot && !t.created.IsZero() && !ev.from.IsZero() && t.created.After(ev.from) {
			p.Warnings = append(p.Warnings, fmt.Sprintf("the snapshot was taken at %s, after the first evaluated decision (%s): it may have learned from the decisions it is evaluated on, which flatters it", t.created.UTC().Format("2006-01-02 15:04:05Z"), ev.from.UTC().Format("2006-01-02 15:04:05Z")))
		}
		if ev.shortPools > 0 && t.spec.Kind != KindLogged {
			p.Warnings = append(p.Warnings, fmt.Sprintf("%.1f%% of the decisions list fewer candidates (pool and shown items) than were eligible: the target ranks only those, so it can miss a candidate it would have preferred; a larger --decision-pool brings it closer to serving", 100*float64(ev.shortPools)/float64(ev.decisions)))
		}
		r.Policies = append(r.Policies, p)
	}
	return r
}

// zeroNaN maps an undefined value to 0 (for fields that are plain numbers).
func zeroNaN(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}
