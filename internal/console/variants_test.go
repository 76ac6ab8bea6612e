package console_test

import (
	"html"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/console"
)

// freshQuality is a node's quality a minute after it started: ftrl has
// its CTR baseline, popularity not yet, the catch-all "other" variant and
// segment count nothing, no feature baseline is captured, and the usage
// counts hold a variant that is no longer configured.
type freshQuality struct{}

func (freshQuality) Features() []console.FeatureView {
	return []console.FeatureView{{Name: "user_age_bucket", NullRatio: 0.02, Samples: 900,
		BySegment: []console.SegmentView{
			{Segment: "new", NullRatio: 0.05, Samples: 300},
			{Segment: "other", Samples: 0},
		}}}
}

func (freshQuality) CTR() []console.VariantView {
	return []console.VariantView{
		{Variant: "ftrl", Impressions: 900, Clicks: 27, CTR: 0.03, Baseline: 0.025, Ratio: 1.2},
		{Variant: "popularity", Impressions: 800, Clicks: 16, CTR: 0.02, Ratio: 1},
		{Variant: "other"},
	}
}
func (freshQuality) Confidence() []console.BucketView     { return nil }
func (freshQuality) Calibration() console.CalibrationView { return console.CalibrationView{} }
func (freshQuality) VariantUsage() map[string]int64 {
	return map[string]int64{"ftrl": 30, "popularity": 10, "retired": 60}
}

var (
	rowRE  = regexp.MustCompile(`(?s)<tr[^>]*>\s*<th scope="row"[^>]*>(.*?)</th>(.*?)</tr>`)
	cellRE = regexp.MustCompile(`(?s)<td[^>]*>(.*?)</td>`)
	tagRE  = regexp.MustCompile(`<[^>]+>`)
)

// text is the text of an HTML fragment, its spaces collapsed.
func text(fragment string) string {
	return strings.Join(strings.Fields(html.UnescapeString(tagRE.ReplaceAllString(fragment, " "))), " ")
}

// table returns the rows of the first table after marker in body: the row
// header and the text of each cell.
func table(t *testing.T, body, marker string) map[string][]string {
	t.Helper()
	i := strings.Index(body, marker)
	if i < 0 {
		t.Fatalf("body lacks %q", marker)
	}
	body = body[i:]
	body = body[:strings.Index(body, "</table>")]
	rows := map[string][]string{}
	for _, m := range rowRE.FindAllStringSubmatch(body, -1) {
		var cells []string
		for _, c := range cellRE.FindAllStringSubmatch(m[2], -1) {
			cells = append(cells, text(c[1]))
		}
		rows[text(m[1])] = cells
	}
	return rows
}

// TestConfiguredVariantsAndBaselines shows only the configured variants
// and a "—" for every figure against a baseline not yet established, on
// the Overview, the Model page and the Experiments page.
func TestConfiguredVariantsAndBaselines(t *testing.T) {
	exp := console.ExperimentView{Control: "popularity", Variants: []console.ExperimentVariantView{
		{Name: "ftrl", Weight: 50, CTR: console.RateView{High: 1}, Conversion: console.RateView{High: 1}},
		{Name: "popularity", Weight: 50, CTR: console.RateView{High: 1}, Conversion: console.RateView{High: 1}},
	}}
	srv := newServer(t, console.Config{Stats: fakeStats{}, Quality: freshQuality{}, Experiments: fakeExperiments(exp)})
	_, _, overview := get(t, srv, "/")
	_, _, model := get(t, srv, "/model")
	_, _, experiments := get(t, srv, "/experiments")
	ctr := map[string][]string{ // impressions, clicks, CTR, baseline, ratio
		"ftrl":       {"900", "27", "3.00%", "2.50%", "1.20"},
		"popularity": {"800", "16", "2.00%", "—", "—"},
	}
	tests := []struct {
		name, body, marker string
		want               map[string][]string
	}{
		{"overview CTR", overview, `<h2 id="ctr-h">`, ctr},
		{"model CTR", model, "CTR per variant against baseline", ctr},
		{"model usage", model, "Decisions served and engagement per variant", map[string][]string{
			"ftrl": {"30", "75.00%"}, "popularity": {"10", "25.00%"},
		}},
		{"model features", model, "Per-feature null rate", map[string][]string{
			"user_age_bucket": {"2.00%", "—", "—", "900"},
		}},
		{"model segments", model, "user_age_bucket: null rate and PSI by segment", map[string][]string{
			"new": {"5.00%", "—", "—", "300"},
		}},
		{"experiment arms", experiments, `<table class="experiment">`, map[string][]string{
			"ftrl":               {"0", "0", "0", "—", "0", "—", "not enough data", "–", "–", "–"},
			"popularity control": {"0", "0", "0", "—", "0", "—", "–", "–", "–", "baseline"},
		}},
		{"experiment split", experiments, `<table class="srm">`, map[string][]string{
			"ftrl": {"50.00", "50.00%", "—", "0"}, "popularity": {"50.00", "50.00%", "—", "0"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, table(t, tt.body, tt.marker)); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
		})
	}
}
