// Command sightline is the Sightline personalization engine: it serves
// recommendations (serve), runs a self-contained demo with simulated users
// (demo), drives load against a running server (loadgen) and batch-loads
// user attributes (etl).
//
// Every flag can also be set with an environment variable SIGHTLINE_<FLAG>
// (upper case, dashes as underscores); a flag on the command line wins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

var version = "dev"

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string) error
}

var commands = []command{
	{"serve", "run a node: the API, the engine, the event log and the console", runServe},
	{"demo", "run a node with a synthetic world and simulated users, printing live figures", runDemo},
	{"loadgen", "drive simulated users against a running node", runLoadgen},
	{"etl", "batch-load user attributes from an NDJSON file into a running node", runETL},
	{"drill", "run a game day: inject a fault on an accelerated clock and time its detection", runDrill},
	{"evaluate", "estimate offline, from the decision log, how a model or policy would have done", runEvaluate},
	{"keys", "make an API key and its line of the --api-keys-file", runKeys},
	{"quality", "measure the learning curve of model variants on a simulated clock (docs/quality.md)", runQuality},
	{"healthcheck", "probe a node's /healthz (the container image's HEALTHCHECK); exit 0 when it answers 200", runHealthcheck},
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: sightline <command> [flags]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(os.Stderr, "\nrun 'sightline <command> --help' for the flags of a command.\n")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, c := range commands {
		if c.name == os.Args[1] {
			err := c.run(ctx, os.Args[2:])
			if errors.Is(err, flag.ErrHelp) {
				os.Exit(0)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "sightline %s: %v\n", c.name, err)
				os.Exit(1)
			}
			return
		}
	}
	fmt.Fprintf(os.Stderr, "sightline: unknown command %q\n\n", os.Args[1])
	usage()
	os.Exit(2)
}
