package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/drill"
)

func runDrill(ctx context.Context, args []string) error {
	fs := newFlagSet("drill", "Run a game day: a node on an accelerated clock, simulated users, one fault injected at a known\ntime, and the alert rules evaluated in process. Prints the timeline: the fault, each alert's first\nfiring with its root-cause hints, and the time to detect.\nThe model-release drills register a challenger model for a guarded rollout instead: a broken one\nmust be rolled back before the 25% step, a better one and a copy of the champion promoted.\n\nusage: sightline drill [flags] NAME\nNAME is one of: "+strings.Join(drillNames(), ", "))
	seed := fs.Int64("seed", 1, "seed of the world, the traffic and the clicks")
	duration := fs.Duration("duration", 75*time.Minute, "simulated length of the drill")
	faultAt := fs.Duration("fault-at", 45*time.Minute, "simulated time of the fault")
	rate := fs.Int("rate", 16, "requests per simulated second")
	report := fs.String("report", "text", "output: text (a timeline) or json")
	hold := fs.Bool("hold", false, "after the drill, keep the node serving (console, API) until SIGINT; prints its URL")
	sloScale := sloBurnFlags(fs)
	// Accept the name before the flags too: sightline drill NAME --flag.
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		args = append(append([]string{}, args[1:]...), args[0])
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("want one drill name: %s", strings.Join(drillNames(), ", "))
	}
	if fs.Arg(0) == drill.SLOBurn {
		return runSLOBurn(ctx, fs, *seed, *rate, *sloScale, *report, *hold)
	}
	if slices.Contains(drill.ReleaseNames, fs.Arg(0)) {
		return runRelease(ctx, fs, fs.Arg(0), *seed, *rate, *report)
	}
	cfg := drill.Config{Seed: *seed, Duration: *duration, FaultAt: *faultAt, Rate: *rate}
	if *report == "text" {
		cfg.Progress = os.Stderr
	}
	if *hold {
		cfg.Inspect = func(ctx context.Context, base string) error {
			fmt.Printf("serving %s (console %s/alerts); SIGINT to stop\n", base, base)
			<-ctx.Done()
			return nil
		}
	}
	rep, err := drill.Run(ctx, fs.Arg(0), cfg)
	if err != nil {
		return err
	}
	switch *report {
	case "json":
		b, err := rep.JSON()
		if err != nil {
			return err
		}
		fmt.Println(string(b))
	case "text":
		rep.WriteTimeline(os.Stdout)
	default:
		return fmt.Errorf("--report %q: want text or json", *report)
	}
	return nil
}

// drillNames lists every drill: the faults', the model releases' and the
// SLO's.
func drillNames() []string {
	return slices.Concat(drill.Names, drill.ReleaseNames, []string{drill.SLOBurn})
}

// runRelease runs a model-release drill; --rate applies when given.
func runRelease(ctx context.Context, fs *flag.FlagSet, name string, seed int64, rate int, report string) error {
	cfg := drill.ReleaseConfig{Seed: seed}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "rate" {
			cfg.Rate = rate
		}
	})
	if report == "text" {
		cfg.Progress = os.Stderr
	}
	rep, err := drill.RunRelease(ctx, name, cfg)
	if err != nil {
		return err
	}
	switch report {
	case "json":
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		fmt.Println(string(b))
	case "text":
		rep.WriteTimeline(os.Stdout)
	default:
		return fmt.Errorf("--report %q: want text or json", report)
	}
	return nil
}
