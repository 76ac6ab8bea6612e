package console

import (
	"slices"

	"github.com/sightline/sightline/internal/quality"
)

// The console's tables show the configured variants, and a figure
// measured against a baseline reads "—" until that baseline exists (not
// 0.00%, which would read as a baseline of nothing).

// HasBaseline reports whether the variant's baseline CTR is established.
func (v VariantView) HasBaseline() bool { return v.Baseline > 0 }

// HasBaseline reports whether the feature's baseline has been captured.
func (f FeatureView) HasBaseline() bool { return f.BaselineSamples > 0 }

// HasBaseline reports whether the baseline holds decisions of the segment.
func (s SegmentView) HasBaseline() bool { return s.BaselineSamples > 0 }

// configuredVariants returns vs without the row of the bounded label set's
// catch-all ([quality.Other], the events of variants outside the
// configured split) while it counts nothing: every other row is a
// configured variant.
func configuredVariants(vs []VariantView) []VariantView {
	return slices.DeleteFunc(slices.Clone(vs), func(v VariantView) bool {
		return v.Variant == quality.Other && v.Impressions == 0 && v.Clicks == 0
	})
}

// configuredSegments returns ss without the catch-all segment while
// neither the window nor the baseline holds a decision of it.
func configuredSegments(ss []SegmentView) []SegmentView {
	return slices.DeleteFunc(slices.Clone(ss), func(s SegmentView) bool {
		return s.Segment == quality.Other && s.Samples == 0 && s.BaselineSamples == 0
	})
}

// usageRows returns the decisions served per variant: one row per
// configured variant (the names of configured, when known) in that order,
// or per variant that served a decision when not.
func usageRows(usage map[string]int64, configured []VariantView) []usageRow {
	var names []string
	for _, v := range configured {
		if v.Variant != quality.Other {
			names = append(names, v.Variant)
		}
	}
	if len(names) == 0 {
		names = sortedKeys(usage)
	}
	var total int64
	for _, n := range names {
		total += usage[n]
	}
	rows := make([]usageRow, 0, len(names))
	for _, n := range names {
		row := usageRow{Variant: n, Count: usage[n]}
		if total > 0 {
			row.Share = float64(row.Count) / float64(total)
		}
		rows = append(rows, row)
	}
	return rows
}
