package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/app"
)

// newFlagSet returns a flag set whose usage names the command and the
// environment variables.
func newFlagSet(name, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: sightline %s [flags]\n\n%s\n\nflags (each also settable as SIGHTLINE_<FLAG>):\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

// parse applies SIGHTLINE_* environment variables, then the arguments.
func parse(fs *flag.FlagSet, args []string) error {
	var errs []string
	fs.VisitAll(func(f *flag.Flag) {
		env := "SIGHTLINE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q: %v", env, v, err))
			}
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("environment: %s", strings.Join(errs, "; "))
	}
	return fs.Parse(args)
}

// nodeFlags registers the flags of a node on fs and returns the config they fill.
func nodeFlags(fs *flag.FlagSet) (*app.Config, *string) {
	c := &app.Config{Version: version}
	level := fs.String("log-level", "info", "minimum log level: debug, info, warn, error")
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "HTTP listen address")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "directory for the event log, snapshots and journals")
	fs.StringVar(&c.Split, "split", "ftrl=50,popularity=50", "variant split, name=weight pairs")
	fs.Float64Var(&c.Explore, "explore", 0.05, "share of slots filled by exploration (negative disables)")
	fs.DurationVar(&c.FeatureBudget, "feature-budget", 5*time.Millisecond, "feature fetch deadline")
	fs.DurationVar(&c.ModelBudget, "model-budget", 5*time.Millisecond, "model inference deadline")
	fs.Float64Var(&c.MinConfidence, "min-confidence", 0.005, "fall back with low_confidence below this top score")
	fs.StringVar(&c.Fsync, "fsync", "always", "event log fsync policy: always, interval, never")
	fs.DurationVar(&c.SnapshotInterval, "snapshot-interval", time.Minute, "how often model and features are snapshotted")
	fs.Float64Var(&c.TraceSampleRatio, "trace-sample-ratio", 0.01, "head sampling ratio (errors, fallbacks and slow requests are always kept)")
	fs.DurationVar(&c.SlowThreshold, "slow-threshold", 50*time.Millisecond, "keep every trace slower than this")
	fs.Float64Var(&c.DecisionLogRatio, "decision-log-ratio", 0.01, "share of normal decisions logged at INFO (fallbacks always)")
	fs.StringVar(&c.TraceExporter, "trace-exporter", "none", "trace export: none, otlp (OTEL_EXPORTER_OTLP_* variables), stdout")
	fs.StringVar(&c.PseudonymKey, "pseudonym-key", "", "key for user id pseudonyms in logs and traces (default: random per process)")
	fs.StringVar(&c.AdminToken, "admin-token", "", "bearer token for /admin and /debug/pprof (empty disables them)")
	fs.DurationVar(&c.QualityWindow, "quality-window", 5*time.Minute, "sliding window of feature null rate, drift (PSI) and CTR signals")
	fs.DurationVar(&c.AlertInterval, "alert-interval", 15*time.Second, "how often alert rules are evaluated in process")
	return c, level
}

// finish turns flag values into config values: explicit zeros mean "off"
// where the config's zero value means "default".
func finish(c *app.Config, level string) error {
	if c.TraceSampleRatio == 0 {
		c.TraceSampleRatio = -1 // tail retention only
	}
	if c.Explore == 0 {
		c.Explore = -1
	}
	if c.DecisionLogRatio == 0 {
		c.DecisionLogRatio = -1
	}
	return c.LogLevel.UnmarshalText([]byte(level))
}

var _ = slog.LevelInfo
