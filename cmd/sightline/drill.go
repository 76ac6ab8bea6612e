package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/drill"
)

func runDrill(ctx context.Context, args []string) error {
	fs := newFlagSet("drill", "Run a game day: a node on an accelerated clock, simulated users, one fault injected at a known\ntime, and the alert rules evaluated in process. Prints the timeline: the fault, each alert's first\nfiring with its root-cause hints, and the time to detect.\n\nusage: sightline drill [flags] NAME\nNAME is one of: "+strings.Join(drill.Names, ", "))
	seed := fs.Int64("seed", 1, "seed of the world, the traffic and the clicks")
	duration := fs.Duration("duration", 75*time.Minute, "simulated length of the drill")
	faultAt := fs.Duration("fault-at", 45*time.Minute, "simulated time of the fault")
	rate := fs.Int("rate", 16, "requests per simulated second")
	report := fs.String("report", "text", "output: text (a timeline) or json")
	hold := fs.Bool("hold", false, "after the drill, keep the node serving (console, API) until SIGINT; prints its URL")
	// Accept the name before the flags too: sightline drill NAME --flag.
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		args = append(append([]string{}, args[1:]...), args[0])
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("want one drill name: %s", strings.Join(drill.Names, ", "))
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
