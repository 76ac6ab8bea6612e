package evaluate

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// reasonText says in words why an estimate is not trustworthy.
func reasonText(reason string, d Diagnostics, th Thresholds) string {
	switch reason {
	case ReasonLowESS:
		var below []string
		if d.ESS < th.MinESS {
			below = append(below, fmt.Sprintf("the minimum of %.0f", th.MinESS))
		}
		if d.ESSShare < th.MinESSShare {
			below = append(below, fmt.Sprintf("%.2f%% of the slots", 100*th.MinESSShare))
		}
		return fmt.Sprintf("effective sample size %.0f slots (%.2f%% of them), below %s", d.ESS, 100*d.ESSShare, strings.Join(below, " and "))
	case ReasonUnsupported:
		return fmt.Sprintf("%.1f%% of its choices are ones the logging policy never makes (above %.0f%%)", 100*d.Unsupported, 100*th.MaxUnsupported)
	case ReasonClipped:
		return fmt.Sprintf("clipping removed %.1f%% of the weight (above %.0f%%)", 100*d.ClippedMass, 100*th.MaxClippedMass)
	case ReasonNoData:
		return "no slot evaluated"
	}
	return reason
}

// WriteTable writes r for people: the logged policy's figures, then per
// target either its estimates with intervals or why it is not
// trustworthy, its overlap figures and its per-position estimates.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	span := ""
	if !r.From.IsZero() {
		span = fmt.Sprintf(", %s to %s", r.From.UTC().Format("2006-01-02 15:04"), r.To.UTC().Format("2006-01-02 15:04"))
	}
	fmt.Fprintf(&b, "Offline evaluation of %s decisions (%s slots, %s events%s) from %s in %.1fs\n",
		group(r.Decisions), group(r.Slots), group(r.Events), span, r.Source, r.ElapsedSeconds)
	if r.Fallbacks+r.Duplicates+r.Invalid > 0 {
		fmt.Fprintf(&b, "  %s fallback decisions kept as served; %s repeated and %s invalid rows skipped\n", group(r.Fallbacks), group(r.Duplicates), group(r.Invalid))
	}
	fmt.Fprintf(&b, "Logged policy (on-policy): CTR %s per slot, %.4f [%.4f, %.4f] clicks per decision, conversion rate %.3f%%\n",
		r.Logged.CTR, r.Logged.ClicksPerDecision.Value, r.Logged.ClicksPerDecision.Low, r.Logged.ClicksPerDecision.High, 100*r.Logged.ConversionRate)
	for _, v := range r.Logged.Variants {
		fmt.Fprintf(&b, "  variant %-12s %s decisions, CTR %.3f%%\n", v.Variant, group(v.Decisions), 100*v.CTR)
	}
	fmt.Fprintf(&b, "Intervals: %.0f%% bootstrap, %d resamples (seed %d); weights clipped at %g\n\n", 100*r.Settings.Level, r.Settings.Bootstrap, r.Settings.Seed, r.Settings.Clip)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "policy\testimator\tCTR per slot %%\tclicks per decision\tvs logged\n")
	for i := range r.Policies {
		p := &r.Policies[i]
		if !p.Trustworthy {
			fmt.Fprintf(tw, "%s\t-\tNOT TRUSTWORTHY (below)\n", p.Spec)
			continue
		}
		for j, e := range p.Estimates {
			name := ""
			if j == 0 {
				name = p.Spec
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, e.Estimator, pct(e.CTR), perDecision(e.ClicksPerDecision), lift(e.CTR, r.Logged.CTR.Value))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	b.Reset()
	for i := range r.Policies {
		p := &r.Policies[i]
		if p.Trustworthy {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("\n")
		}
		var why []string
		for _, rs := range p.Reasons {
			why = append(why, reasonText(rs, p.Diagnostics, r.Thresholds))
		}
		fmt.Fprintf(&b, "%s is not trustworthy: %s.\n", p.Spec, strings.Join(why, "; "))
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}

	for i := range r.Policies {
		p := &r.Policies[i]
		d := p.Diagnostics
		b.Reset()
		fmt.Fprintf(&b, "\n%s: ESS %.0f slots (%.2f%%), unsupported %.2f%%, matched %.2f%%, mean weight %.3f, max %.1f, clipped %.2f%% of weights (%.2f%% of mass)\n",
			p.Spec, d.ESS, 100*d.ESSShare, 100*d.Unsupported, 100*d.Matched, d.MeanWeight, d.MaxWeight, 100*d.ClippedShare, 100*d.ClippedMass)
		for _, wn := range p.Warnings {
			fmt.Fprintf(&b, "  warning: %s\n", wn)
		}
		if _, err := io.WriteString(w, b.String()); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  position\tlogged %%\tIPS %%\tSNIPS %%\tDR %%\tESS\tunsupported\tmean weight\n")
		for k := range p.Positions {
			pos := &p.Positions[k]
			pd := pos.Diagnostics
			if !pos.Trustworthy {
				fmt.Fprintf(tw, "  %d\t%.3f\tnot trustworthy\t\t\t%.0f\t%.1f%%\t%.3f\n", pos.Position, 100*pos.LoggedCTR, pd.ESS, 100*pd.Unsupported, pd.MeanWeight)
				continue
			}
			fmt.Fprintf(tw, "  %d\t%.3f\t%s\t%s\t%s\t%.0f\t%.1f%%\t%.3f\n", pos.Position, 100*pos.LoggedCTR,
				pct(pos.Estimate(EstimatorIPS).CTR), pct(pos.Estimate(EstimatorSNIPS).CTR), pct(pos.Estimate(EstimatorDR).CTR), pd.ESS, 100*pd.Unsupported, pd.MeanWeight)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	b.Reset()
	b.WriteString("\n")
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "Note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func pct(iv *Interval) string {
	if iv == nil {
		return "undefined"
	}
	return fmt.Sprintf("%.3f [%.3f, %.3f]", 100*iv.Value, 100*iv.Low, 100*iv.High)
}

func perDecision(iv *Interval) string {
	if iv == nil {
		return "undefined"
	}
	return fmt.Sprintf("%.4f [%.4f, %.4f]", iv.Value, iv.Low, iv.High)
}

// lift is the relative difference of an estimate's CTR to the logged one.
func lift(iv *Interval, logged float64) string {
	if iv == nil || logged == 0 {
		return ""
	}
	return fmt.Sprintf("%+.1f%%", 100*(iv.Value/logged-1))
}

// group formats n with thousands separators.
func group(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
