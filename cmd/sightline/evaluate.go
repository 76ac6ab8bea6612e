package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/evaluate"
)

const evaluateSummary = `Estimate offline, from the Parquet decision log, the click-through rate a target
policy would have had on the logged traffic: IPS, self-normalized IPS and doubly
robust estimates with bootstrap intervals, the effective sample size, weight
clipping and the share of the target's choices the logging policy never makes.
An estimate below the trust thresholds is reported as not trustworthy.

--policy SPEC (repeatable, or several separated by commas):
  logged                    the logging policy itself (a sanity check: equals the logged CTR)
  popularity                rank each decision's candidates by popularity
  shadow                    a rollout's shadow challenger, by its would-be choices the
                            log recorded (shadow_items); takes no keys
  PATH                      a model snapshot file (e.g. data/model.snap)
  ftrl[:key=value,...]      the FTRL model with other settings (alpha, beta, l1, l2, bits,
                            from=SNAPSHOT), trained over the log as it is read: each
                            decision is scored before the model learns its clicks
Every target but logged and shadow takes explore=ε and explore_top=T for a policy of its own exploration,
e.g. --policy 'ftrl:alpha=0.2,l1=0,explore=0.05' --policy popularity.

docs/evaluation.md explains the estimators, their assumptions and the thresholds.`

// evaluateFlags are the parsed flags of the evaluate command.
type evaluateFlags struct {
	dataDir, decisions, out, format string
	specs                           []evaluate.Spec
	cfg                             evaluate.Config
	progress                        string
}

func runEvaluate(ctx context.Context, args []string) error {
	return evaluateMain(ctx, args, os.Stdout, os.Stderr)
}

// evaluateMain is the evaluate command with its output streams.
func evaluateMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseEvaluateFlags(args, stderr)
	if err != nil {
		return err
	}
	src := evaluate.DirSource{Dir: f.decisions}
	if _, err := os.Stat(f.decisions); err != nil {
		return fmt.Errorf("decision log: %w", err)
	}
	if showProgress(f.progress, stderr) {
		total, err := src.CountDecisions(ctx)
		if err != nil {
			return err
		}
		bar := &progressBar{w: stderr, total: total, start: time.Now()}
		fmt.Fprintf(stderr, "reading events, then %d decisions from %s\n", total, f.decisions)
		f.cfg.Progress = bar.update
		defer bar.done()
	}
	r, err := evaluate.Run(ctx, src, f.specs, f.cfg)
	if err != nil {
		return err
	}
	if f.out != "none" {
		if err := r.WriteFile(f.out); err != nil {
			return err
		}
	}
	switch f.format {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	default:
		if err := r.WriteTable(stdout); err != nil {
			return err
		}
		if f.out != "none" {
			_, err = fmt.Fprintf(stdout, "\nReport saved to %s (the console's Evaluate view shows it).\n", f.out)
		}
		return err
	}
}

// parseEvaluateFlags parses and checks the evaluate command's flags.
func parseEvaluateFlags(args []string, stderr io.Writer) (*evaluateFlags, error) {
	fs := newFlagSet("evaluate", evaluateSummary)
	fs.SetOutput(stderr)
	f := &evaluateFlags{}
	fs.StringVar(&f.dataDir, "data-dir", "./data", "the node's data directory: the decision log is --data-dir/decisions and the report is saved to --data-dir/evaluations/last.json unless --decisions or --out say otherwise")
	fs.StringVar(&f.decisions, "decisions", "", "directory of the Parquet decision log (default --data-dir/decisions)")
	fs.Func("policy", "target policy SPEC to evaluate (repeatable; several may be separated by commas): logged, popularity, a snapshot PATH or ftrl[:key=value,...]", func(s string) error {
		specs, err := evaluate.ParseSpecs(s)
		if err != nil {
			return err
		}
		f.specs = append(f.specs, specs...)
		return nil
	})
	fs.Float64Var(&f.cfg.Clip, "clip", evaluate.DefaultClip, "clip importance weights above this (0 or negative: no clipping); the report gives the share clipped")
	fs.IntVar(&f.cfg.Bootstrap, "bootstrap", evaluate.DefaultBootstrap, "bootstrap resamples of the 95% intervals (0: no intervals)")
	fs.Uint64Var(&f.cfg.Seed, "seed", 1, "seed of the bootstrap")
	fs.IntVar(&f.cfg.MaxPerCategory, "max-per-category", evaluate.DefaultMaxPerCategory, "diversity cap of the target slates: set it to the serving node's")
	fs.IntVar(&f.cfg.RecentSlots, "recent-slots", evaluate.DefaultRecentSlots, "the user's recent categories that get a slot in a model target's slate, as serving does (0: none)")
	fs.Float64Var(&f.cfg.Thresholds.MinESS, "min-ess", evaluate.DefaultThresholds.MinESS, "trust threshold: least effective sample size, in slots")
	fs.Float64Var(&f.cfg.Thresholds.MinESSShare, "min-ess-share", evaluate.DefaultThresholds.MinESSShare, "trust threshold: least effective sample size as a share of the slots")
	fs.Float64Var(&f.cfg.Thresholds.MaxUnsupported, "max-unsupported", evaluate.DefaultThresholds.MaxUnsupported, "trust threshold: largest share of the target's choices the logging policy never makes")
	fs.Float64Var(&f.cfg.Thresholds.MaxClippedMass, "max-clipped", evaluate.DefaultThresholds.MaxClippedMass, "trust threshold: largest share of the weight mass clipping may remove")
	fs.StringVar(&f.format, "report", "table", "output on stdout: table or json")
	fs.StringVar(&f.out, "out", "", "where to save the JSON report (default --data-dir/evaluations/last.json; none: do not save)")
	fs.StringVar(&f.progress, "progress", "auto", "progress bar on stderr: auto (when stderr is a terminal), always or never")
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q (targets go in --policy)", fs.Args())
	}
	if len(f.specs) == 0 {
		fs.Usage()
		return nil, errors.New("want at least one --policy")
	}
	switch f.format {
	case "table", "json":
	default:
		return nil, fmt.Errorf("--report %q: want table or json", f.format)
	}
	switch f.progress {
	case "auto", "always", "never":
	default:
		return nil, fmt.Errorf("--progress %q: want auto, always or never", f.progress)
	}
	if f.decisions == "" {
		f.decisions = filepath.Join(f.dataDir, "decisions")
	}
	if f.out == "" {
		f.out = filepath.Join(f.dataDir, "evaluations", "last.json")
	}
	// The flags' zero means "none"; the Config's zero means "default".
	if f.cfg.Clip <= 0 {
		f.cfg.Clip = -1
	}
	if f.cfg.Bootstrap <= 0 {
		f.cfg.Bootstrap = -1
	}
	if f.cfg.RecentSlots <= 0 {
		f.cfg.RecentSlots = -1
	}
	for _, v := range []float64{f.cfg.Thresholds.MinESSShare, f.cfg.Thresholds.MaxUnsupported, f.cfg.Thresholds.MaxClippedMass} {
		if !(v > 0 && v <= 1) {
			return nil, fmt.Errorf("trust thresholds given as shares must be in (0, 1], got %v", v)
		}
	}
	if !(f.cfg.Thresholds.MinESS > 0) {
		return nil, fmt.Errorf("--min-ess %v: want a positive number of slots", f.cfg.Thresholds.MinESS)
	}
	f.cfg.Source = f.decisions
	return f, nil
}

// showProgress reports whether to draw the progress bar on w.
func showProgress(mode string, w io.Writer) bool {
	switch mode {
	case "always":
		return true
	case "never":
		return false
	}
	fi, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := fi.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressBar draws the decisions read so far on one terminal line.
type progressBar struct {
	w     io.Writer
	total int64
	start time.Time
	last  time.Time
	drawn bool
}

// update is evaluate.Config.Progress: it redraws at most ten times a second.
func (p *progressBar) update(n int64) {
	now := time.Now()
	if p.drawn && now.Sub(p.last) < 100*time.Millisecond && n < p.total {
		return
	}
	p.last, p.drawn = now, true
	const width = 30
	frac := 1.0
	if p.total > 0 {
		frac = min(float64(n)/float64(p.total), 1)
	}
	fill := int(frac * width)
	rate := float64(n) / max(now.Sub(p.start).Seconds(), 1e-9)
	fmt.Fprintf(p.w, "\r[%s%s] %3.0f%% %d/%d decisions, %.0f/s", strings.Repeat("=", fill), strings.Repeat(" ", width-fill), 100*frac, n, p.total, rate)
}

// done ends the bar's line.
func (p *progressBar) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
