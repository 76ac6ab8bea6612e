package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/sightline/sightline/internal/drill"
)

// sloBurnFlags registers the flags only the slo-burn drill reads on fs.
func sloBurnFlags(fs *flag.FlagSet) *float64 {
	return fs.Float64("slo-window-scale", 1.0/12, "slo-burn: factor every SLO window and the 30-day period are scaled by, keeping the workbook's ratios between them (1/12: the fast page's 1h window lasts 5 simulated minutes; 1: the real windows)")
}

// runSLOBurn runs the slo-burn drill; --rate applies when given, --hold
// keeps the node serving afterwards.
func runSLOBurn(ctx context.Context, fs *flag.FlagSet, seed int64, rate int, scale float64, report string, hold bool) error {
	cfg := drill.SLOBurnConfig{Seed: seed, WindowScale: scale}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "rate" {
			cfg.Rate = rate
		}
	})
	if report == "text" {
		cfg.Progress = os.Stderr
	}
	if hold {
		cfg.Inspect = func(ctx context.Context, base string) error {
			fmt.Printf("serving %s (console %s/alerts, SLOs %s/v1/slos); SIGINT to stop\n", base, base, base)
			<-ctx.Done()
			return nil
		}
	}
	rep, err := drill.RunSLOBurn(ctx, cfg)
	if err != nil {
		return err
	}
	return writeReport(os.Stdout, rep, report)
}

// writeReport writes a drill's report to w as a timeline (report "text")
// or as indented JSON ("json").
func writeReport(w io.Writer, rep interface{ WriteTimeline(io.Writer) }, report string) error {
	switch report {
	case "json":
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	case "text":
		rep.WriteTimeline(w)
		return nil
	}
	return fmt.Errorf("--report %q: want text or json", report)
}
