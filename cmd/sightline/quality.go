package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/qualityrun"
)

func runQuality(ctx context.Context, args []string) error {
	fs := newFlagSet("quality", "Measure the learning curve of model variants: each variant serves alone a cold node on the demo's world\nat the demo's rate on a simulated clock; writes CTR / oracle CTR per simulated minute as Markdown and SVG.")
	variants := fs.String("variants", strings.Join(qualityrun.DefaultVariants, ","), "variants to measure, comma-separated split arm names")
	seeds := fs.String("seeds", "1,2", "seeds of the world and the traffic, comma-separated")
	duration := fs.Duration("duration", qualityrun.DefaultDuration, "simulated time per run")
	every := fs.Duration("every", qualityrun.DefaultEvery, "simulated time per point of the curve")
	rate := fs.Float64("rate", qualityrun.DefaultRate, "requests per simulated second")
	users := fs.Int("users", qualityrun.DefaultUsers, "simulated users")
	items := fs.Int("items", qualityrun.DefaultItems, "catalog items")
	explore := fs.Float64("explore", 0.05, "share of slots filled by exploration (negative disables)")
	out := fs.String("out", "docs/quality.md", "the Markdown report (empty: standard output)")
	svg := fs.String("svg", "docs/img/quality.svg", "the SVG chart (empty: none)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg := qualityrun.Config{Duration: *duration, Every: *every, Rate: *rate, Users: *users, Items: *items, Progress: os.Stderr}
	cfg.Node.Explore = *explore
	cfg.Node.Version = version
	for v := range strings.SplitSeq(*variants, ",") {
		if v = strings.TrimSpace(v); v != "" {
			cfg.Variants = append(cfg.Variants, v)
		}
	}
	for s := range strings.SplitSeq(*seeds, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return fmt.Errorf("seeds: %w", err)
		}
		cfg.Seeds = append(cfg.Seeds, n)
	}
	start := time.Now()
	rep, err := qualityrun.Run(ctx, cfg)
	if err != nil {
		return err
	}
	command := strings.TrimSpace("sightline quality " + strings.Join(args, " "))
	if *out == "" {
		if err := rep.WriteMarkdown(os.Stdout, "", command); err != nil {
			return err
		}
	} else if err := rep.WriteFiles(*out, *svg, command); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "quality: %d runs in %v; best variant %s\n", len(rep.Runs), time.Since(start).Round(time.Second), rep.Best())
	return nil
}
