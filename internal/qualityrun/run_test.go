package qualityrun

import (
	"bytes"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunSmall is the harness at a small scale: a short run on a small
// world, in which the best variant must beat the popularity control and
// the curve must be written as Markdown and SVG.
func TestRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two nodes for two simulated minutes each")
	}
	rep, err := Run(t.Context(), Config{
		Variants: []string{"popularity", "ftrl-ucb"},
		Seeds:    []int64{7},
		Duration: 2 * time.Minute,
		Every:    30 * time.Second,
		Rate:     40,
		Users:    3000,
		Items:    600,
	})
	if err != nil {
		t.Fatalf("Run() = %v", err)
	}
	if got, want := len(rep.Runs), 2; got != want {
		t.Fatalf("Run() gave %d runs, want %d", got, want)
	}
	for _, r := range rep.Runs {
		if got, want := len(r.Points), 4; got != want {
			t.Errorf("%s: %d points, want %d", r.Variant, got, want)
		}
		for _, p := range r.Points {
			if p.Requests != 40*30 || p.Impressions == 0 || p.Oracle <= p.Expected {
				t.Errorf("%s at %v: requests %d, impressions %d, expected %.1f, oracle %.1f: want 1200 requests, impressions, oracle above expected",
					r.Variant, p.At, p.Requests, p.Impressions, p.Expected, p.Oracle)
			}
		}
	}
	best := rep.Best()
	if best == "popularity" {
		t.Fatalf("Best() = popularity, want a model to beat the control")
	}
	// Over the second half (noise of a small world), expected CTRs.
	bm := rep.halfExpected(best)
	pm := rep.halfExpected("popularity")
	if !(bm > pm) {
		t.Errorf("expected ratio of %s over the second half = %.3f, popularity's %.3f: want the model above", best, bm, pm)
	}
	if cal := rep.runs(best)[0].last(time.Minute, rep.Every).Calibration(); !(cal > 0.5 && cal < 2) {
		t.Errorf("calibration of %s = %.3f, want within 0.5..2", best, cal)
	}

	dir := t.TempDir()
	md, svg := filepath.Join(dir, "quality.md"), filepath.Join(dir, "img", "quality.svg")
	if err := rep.WriteFiles(md, svg, "go test"); err != nil {
		t.Fatalf("WriteFiles() = %v", err)
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| ftrl-ucb |", "| popularity |", "![learning curve", "(img/quality.svg)", "| 30s |", "| 2m |", "(benchmarks.md#learning-quality-variants)"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("quality.md lacks %q:\n%s", want, b)
		}
	}
	s, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(s, new(struct{})); err != nil {
		t.Errorf("quality.svg is not well-formed XML: %v", err)
	}
	if got := strings.Count(string(s), "<polyline"); got != 2 {
		t.Errorf("quality.svg has %d curves, want 2", got)
	}
}

// halfExpected is the mean over seeds of v's expected CTR / oracle CTR over
// the second half of the run.
func (r *Report) halfExpected(v string) float64 {
	var sum float64
	runs := r.runs(v)
	for _, res := range runs {
		sum += res.last(r.Duration/2, r.Every).ExpectedRatio()
	}
	return sum / float64(len(runs))
}

func TestConfigInvalid(t *testing.T) {
	for name, cfg := range map[string]Config{
		"duration not a multiple of every": {Duration: 90 * time.Second, Every: time.Minute},
		"every not a multiple of step":     {Every: 150 * time.Millisecond, Step: 100 * time.Millisecond, Duration: 300 * time.Millisecond},
		"negative rate":                    {Rate: -1},
		"count above 100":                  {Count: 101},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Run(t.Context(), cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Run(%+v) = %v, want ErrInvalidConfig", cfg, err)
			}
		})
	}
}
