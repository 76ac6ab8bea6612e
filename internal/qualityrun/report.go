package qualityrun

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/model"
)

// Point is what one variant's answers did over one point of the curve (a
// simulated minute by default).
type Point struct {
	// At is the simulated time at the end of the point, from the start.
	At time.Duration `json:"at_ns"`
	// Requests counts the answers; Fallbacks those served by the fallback.
	Requests, Fallbacks int64
	// Impressions and Clicks count the items shown and clicked.
	Impressions, Clicks int64
	// Expected sums the ground-truth click probability (with position
	// bias) of the items shown; Oracle the same of the ground truth's best
	// items for the same requests.
	Expected, Oracle float64
	// Scored counts the impressions scored by a model (its score a click
	// probability), ScoredClicks their clicks, Predicted the sum of their
	// scores and LogLoss the sum of their log losses.
	Scored, ScoredClicks int64
	Predicted, LogLoss   float64
}

// CTR is Clicks / Impressions.
func (p Point) CTR() float64 { return div(float64(p.Clicks), float64(p.Impressions)) }

// ExpectedCTR is Expected / Impressions: the CTR without sampling noise.
func (p Point) ExpectedCTR() float64 { return div(p.Expected, float64(p.Impressions)) }

// OracleCTR is Oracle / Impressions.
func (p Point) OracleCTR() float64 { return div(p.Oracle, float64(p.Impressions)) }

// Ratio is CTR / OracleCTR, the acceptance measure of issue 14.
func (p Point) Ratio() float64 { return div(p.CTR(), p.OracleCTR()) }

// ExpectedRatio is ExpectedCTR / OracleCTR.
func (p Point) ExpectedRatio() float64 { return div(p.Expected, p.Oracle) }

// Calibration is the mean predicted click probability of the scored
// impressions over their observed CTR; NaN without scored impressions.
func (p Point) Calibration() float64 {
	if p.Scored == 0 || p.ScoredClicks == 0 {
		return math.NaN()
	}
	return p.Predicted / float64(p.ScoredClicks)
}

// MeanLogLoss is the mean log loss of the scored impressions; NaN without
// any.
func (p Point) MeanLogLoss() float64 {
	if p.Scored == 0 {
		return math.NaN()
	}
	return p.LogLoss / float64(p.Scored)
}

// add adds q's counts to p (At is p's).
func (p *Point) add(q Point) {
	p.Requests += q.Requests
	p.Fallbacks += q.Fallbacks
	p.Impressions += q.Impressions
	p.Clicks += q.Clicks
	p.Expected += q.Expected
	p.Oracle += q.Oracle
	p.Scored += q.Scored
	p.ScoredClicks += q.ScoredClicks
	p.Predicted += q.Predicted
	p.LogLoss += q.LogLoss
}

// Result is one variant's run on one seed.
type Result struct {
	Variant string
	Seed    int64
	// Points is the learning curve, one point per Config.Every.
	Points []Point
	// NodeCTR is the variant's CTR as the node's stats report it at the
	// end (the demo's summary line), over NodeWindow.
	NodeCTR    float64
	NodeWindow time.Duration
	// ModelLogLoss, ModelPredicted and ModelObserved are the online
	// evaluation at the end (over the model's window, 5 minutes by
	// default) of the variant's model, or of the champion ("ftrl", which
	// learns from every variant's events) for a variant without one: the
	// predictions made as each event was learned, the figures of the
	// node's calibration alert.
	ModelLogLoss, ModelPredicted, ModelObserved float64
	// Elapsed is the wall-clock time of the run.
	Elapsed time.Duration
}

// last sums the points of the last d of the run.
func (r *Result) last(d time.Duration, every time.Duration) Point {
	n := max(int(d/every), 1)
	var s Point
	for _, p := range r.Points[max(len(r.Points)-n, 0):] {
		s.add(p)
	}
	return s
}

// Report is the outcome of [Run].
type Report struct {
	Duration, Every time.Duration
	Rate            float64
	Count           int
	Users, Items    int
	Seeds           []int64
	Variants        []string
	Runs            []Result
}

// runs returns the results of variant v, in seed order.
func (r *Report) runs(v string) []*Result {
	var out []*Result
	for i := range r.Runs {
		if r.Runs[i].Variant == v {
			out = append(out, &r.Runs[i])
		}
	}
	return out
}

// RatioAt returns the mean over seeds of variant v's CTR / oracle CTR over
// the point that ends at t, and the smallest and largest of the seeds. ok
// is false when no run has such a point.
func (r *Report) RatioAt(v string, t time.Duration) (mean, lo, hi float64, ok bool) {
	return r.statAt(v, t, Point.Ratio)
}

func (r *Report) statAt(v string, t time.Duration, f func(Point) float64) (mean, lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), math.Inf(-1)
	n := 0
	for _, res := range r.runs(v) {
		for _, p := range res.Points {
			if p.At == t {
				x := f(p)
				mean += x
				lo, hi = min(lo, x), max(hi, x)
				n++
			}
		}
	}
	if n == 0 {
		return 0, 0, 0, false
	}
	return mean / float64(n), lo, hi, true
}

// Best returns the variant with the highest mean ratio over the last point.
func (r *Report) Best() string {
	best, bestR := "", math.Inf(-1)
	for _, v := range r.Variants {
		if m, _, _, ok := r.RatioAt(v, r.Duration); ok && m > bestR {
			best, bestR = v, m
		}
	}
	return best
}

// times are the ends of the curve's points.
func (r *Report) times() []time.Duration {
	var ts []time.Duration
	for t := r.Every; t <= r.Duration; t += r.Every {
		ts = append(ts, t)
	}
	return ts
}

// WriteMarkdown writes the report as docs/quality.md: the setting, the
// learning curve as CTR / oracle CTR per point and variant (mean over
// seeds with their range), the CTRs themselves, and the end-of-run log
// loss and calibration. chart, if not empty, is the path of the SVG chart
// relative to the Markdown file.
func (r *Report) WriteMarkdown(w io.Writer, chart, command string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Learning quality\n\n")
	fmt.Fprintf(&b, "Generated by `%s`; do not edit by hand.\n\n", command)
	fmt.Fprintf(&b, "Each variant serves alone (`--split <variant>=100`) a fresh node that starts cold (no model, no popularity), "+
		"on the demo's world (%d users, %d items) at the demo's rate (%.0f requests per simulated second, %d items each), "+
		"for %v of simulated time per seed (seeds %s). "+
		"The node runs on a simulated clock and applies the events of each 100 ms before serving the next, as the demo's traffic generator sends them; "+
		"a simulated minute holds a real minute's traffic.\n\n",
		r.Users, r.Items, r.Rate, r.Count, r.Duration, joinSeeds(r.Seeds))
	fmt.Fprintf(&b, "**Ratio** is the CTR of the variant's answers over the minute that ends at the time shown, divided by the oracle CTR: "+
		"the expected CTR of showing each of the same requests the ground truth's best items (position bias included). "+
		"Mean over the seeds, their range in brackets.\n\n")
	if chart != "" {
		fmt.Fprintf(&b, "![learning curve: CTR / oracle CTR per minute](%s)\n\n", chart)
	}
	r.writeTargets(&b)
	r.writeVariants(&b)
	ts := r.times()
	b.WriteString("## CTR / oracle CTR\n\n")
	timeHeader(&b, ts)
	for _, v := range r.Variants {
		fmt.Fprintf(&b, "| %s |", v)
		for _, t := range ts {
			m, lo, hi, ok := r.RatioAt(v, t)
			if !ok {
				b.WriteString(" – |")
				continue
			}
			fmt.Fprintf(&b, " %.3f [%.3f–%.3f] |", m, lo, hi)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n## CTR per minute (mean over seeds)\n\n")
	timeHeader(&b, ts)
	for _, v := range r.Variants {
		fmt.Fprintf(&b, "| %s |", v)
		for _, t := range ts {
			m, _, _, _ := r.statAt(v, t, Point.CTR)
			fmt.Fprintf(&b, " %.4f |", m)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "| *oracle* |")
	for _, t := range ts {
		m, _, _, _ := r.statAt(r.Variants[0], t, Point.OracleCTR)
		fmt.Fprintf(&b, " %.4f |", m)
	}
	b.WriteString("\n\n")

	fmt.Fprintf(&b, "## At the end\n\n")
	fmt.Fprintf(&b, "Over the last 5 simulated minutes of each run, by seed. *Expected* is the answers' CTR under the ground truth (no click noise). "+
		"*Log loss* and *calibration* (mean predicted / observed CTR) are those of the scores the variant served (the items shown, at every position; "+
		"with an exploration bonus, an item's ranking score includes it); the popularity control's scores are not probabilities. "+
		"*Model calibration* is the model's own online evaluation over its last 5 minutes (each event predicted as it is learned: the figure of the node's "+
		"ModelCalibrationOff alert), of the champion ftrl model for the popularity control. *Node CTR* is the variant's CTR in the node's own stats (`GET /v1/stats`, "+
		"the demo's summary line), over its window. *Wall* is the run's wall-clock time.\n\n")
	b.WriteString("| variant | seed | CTR | expected | oracle | ratio | log loss | calibration | model calibration | fallback | node CTR | wall |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, v := range r.Variants {
		for _, res := range r.runs(v) {
			p := res.last(5*time.Minute, r.Every)
			fmt.Fprintf(&b, "| %s | %d | %.4f | %.4f | %.4f | %.3f | %s | %s | %s | %.2f%% | %.4f | %v |\n",
				v, res.Seed, p.CTR(), p.ExpectedCTR(), p.OracleCTR(), p.Ratio(), fmtNaN(p.MeanLogLoss(), "%.4f"), fmtNaN(p.Calibration(), "%.3f"),
				fmtNaN(div(res.ModelPredicted, res.ModelObserved), "%.3f"),
				100*div(float64(p.Fallbacks), float64(p.Requests)), res.NodeCTR, res.Elapsed.Round(time.Second))
		}
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// writeTargets writes how the best variant fares against Targets.
func (r *Report) writeTargets(b *strings.Builder) {
	best := r.Best()
	if best == "" {
		return
	}
	fmt.Fprintf(b, "## Targets\n\nThe best variant at the end is **%s**. Issue 14 asks, from a cold start and averaged over two seeds:\n\n", best)
	b.WriteString("| at | target | " + best + " | met |\n|---|---:|---:|---|\n")
	for _, tg := range Targets {
		m, lo, hi, ok := r.RatioAt(best, tg.At)
		if !ok {
			continue
		}
		met := "no"
		if m >= tg.Ratio {
			met = "yes"
		}
		fmt.Fprintf(b, "| %s | ≥ %.2f | %.3f [%.3f–%.3f] | %s |\n", shortDur(tg.At), tg.Ratio, m, lo, hi, met)
	}
	b.WriteString("\n")
}

// writeVariants says what each variant is.
func (r *Report) writeVariants(b *strings.Builder) {
	b.WriteString("## Variants\n\n")
	for _, v := range r.Variants {
		switch f, ok := model.LookupFamily(v); {
		case v == "popularity":
			b.WriteString("- **popularity**: the control; the most clicked items (decayed, half-life 1 h), per category and overall, no model.\n")
		case ok:
			fmt.Fprintf(b, "- **%s**: %s.\n", v, f.Summary)
		default:
			fmt.Fprintf(b, "- **%s**\n", v)
		}
	}
	b.WriteString("\nWhat the variants cost to serve (time per decision against the engine before model families, " +
		"and memory at 1M users) is in [benchmarks.md, Learning-quality variants](benchmarks.md#learning-quality-variants).\n\n")
}

// timeHeader writes the header of a table with a column per point.
func timeHeader(b *strings.Builder, ts []time.Duration) {
	b.WriteString("| variant |")
	for _, t := range ts {
		fmt.Fprintf(b, " %s |", shortDur(t))
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", len(ts)) + "\n")
}

func joinSeeds(s []int64) string {
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, ", ")
}

func shortDur(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

func fmtNaN(x float64, f string) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf(f, x)
}

func div(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// WriteFiles writes the Markdown report to md and, unless svg is empty,
// the chart to svg (linked from md by its relative path), creating their
// directories. command is the command line that produced the report.
func (r *Report) WriteFiles(md, svg, command string) error {
	chart := ""
	if svg != "" {
		rel, err := filepath.Rel(filepath.Dir(md), svg)
		if err != nil {
			return err
		}
		chart = filepath.ToSlash(rel)
		if err := writeFile(svg, r.WriteSVG); err != nil {
			return err
		}
	}
	return writeFile(md, func(w io.Writer) error { return r.WriteMarkdown(w, chart, command) })
}

// writeFile writes a file through write, creating its directory.
func writeFile(path string, write func(io.Writer) error) error {
	// The report is documentation (docs/quality) that anyone with the
	// checkout reads, not service data: world-readable like the rest of it.
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil { //nolint:gosec // see above
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		return errors.Join(err, f.Close())
	}
	return f.Close()
}
