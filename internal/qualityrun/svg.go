package qualityrun

import (
	"fmt"
	"html"
	"io"
	"strings"
	"time"
)

// palette colours the variants in order (colour-blind safe, Okabe-Ito).
var palette = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"}

// Targets are the ratios issue 14 asks for, drawn on the chart: at 2 and
// at 10 simulated minutes.
var Targets = []struct {
	At    time.Duration
	Ratio float64
}{{2 * time.Minute, 0.45}, {10 * time.Minute, 0.70}}

// WriteSVG draws the learning curves: CTR / oracle CTR per point for each
// variant (the mean over seeds as a line, their range as a band), with the
// targets of issue 14 marked.
func (r *Report) WriteSVG(w io.Writer) error {
	const (
		width, height       = 720, 400
		left, right, top    = 56, 170, 36
		bottom              = 48
		plotW, plotH        = width - left - right, height - top - bottom
		yMax                = 1.0
		gridStep            = 0.1
		markerR, strokeWide = 3, 2
	)
	x := func(t time.Duration) float64 { return left + float64(plotW)*float64(t)/float64(r.Duration) }
	y := func(v float64) float64 { return top + float64(plotH)*(1-min(max(v, 0), yMax)/yMax) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14" font-weight="bold">CTR / oracle CTR per simulated minute (mean of %d seeds, band: range)</text>`+"\n", left, len(r.Seeds))
	for v := 0.0; v <= yMax+1e-9; v += gridStep {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e5e5e5"/>`+"\n", left, left+plotW, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%.1f</text>`+"\n", left-6, y(v), v)
	}
	for _, t := range r.times() {
		if t%time.Minute != 0 && len(r.times()) > 20 {
			continue
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(t), top+plotH+16, shortDur(t))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">simulated time</text>`+"\n", left+plotW/2, height-8)
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", left, top, plotW, plotH)
	for _, tg := range Targets {
		if tg.At > r.Duration {
			continue
		}
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#444" stroke-width="2" stroke-dasharray="4 3"/>`+"\n", x(tg.At)-14, x(tg.At)+4, y(tg.Ratio), y(tg.Ratio))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#444">target %.2f</text>`+"\n", x(tg.At)-16, y(tg.Ratio)+4, tg.Ratio)
	}
	for i, v := range r.Variants {
		col := palette[i%len(palette)]
		var upper, lower, mean []string
		for _, t := range r.times() {
			m, lo, hi, ok := r.RatioAt(v, t)
			if !ok {
				continue
			}
			upper = append(upper, fmt.Sprintf("%.1f,%.1f", x(t), y(hi)))
			lower = append([]string{fmt.Sprintf("%.1f,%.1f", x(t), y(lo))}, lower...)
			mean = append(mean, fmt.Sprintf("%.1f,%.1f", x(t), y(m)))
		}
		if len(mean) == 0 {
			continue
		}
		fmt.Fprintf(&b, `<polygon points="%s" fill="%s" fill-opacity="0.18" stroke="none"/>`+"\n", strings.Join(append(upper, lower...), " "), col)
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="%d"/>`+"\n", strings.Join(mean, " "), col, strokeWide)
		for _, pt := range mean {
			xy := strings.SplitN(pt, ",", 2)
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="%d" fill="%s"/>`+"\n", xy[0], xy[1], markerR, col)
		}
		ly := top + 10 + 20*i
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", left+plotW+12, left+plotW+32, ly, ly, col)
		final, _, _, _ := r.RatioAt(v, r.Duration)
		fmt.Fprintf(&b, `<text x="%d" y="%d" dominant-baseline="middle">%s (%.2f)</text>`+"\n", left+plotW+38, ly, html.EscapeString(v), final)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
