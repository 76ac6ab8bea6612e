package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/app"
	"github.com/sightline/sightline/internal/slo"
)

// sloFlags registers the flags of the availability and latency SLOs on fs.
func sloFlags(fs *flag.FlagSet, c *app.Config) {
	s := &c.SLO
	fs.Func("slo-availability", "availability objective over 30 days: the share of recommendation requests answered without a 5xx or a fallback on a failed or late dependency, as 0.999 or 99.9% (default 0.999)", func(v string) error {
		o, err := parseObjective(v)
		s.Availability = o
		return err
	})
	fs.Func("slo-latency", "latency SLO threshold: a recommendation decision that takes longer counts against --slo-latency-objective (default 10ms)", func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > time.Minute {
			return fmt.Errorf("want a positive duration up to 1m such as 10ms, got %q", v)
		}
		s.LatencyThreshold = d
		return nil
	})
	fs.Func("slo-latency-objective", "latency objective over 30 days: the share of decisions at most --slo-latency long, as 0.999 or 99.9% (default 0.999)", func(v string) error {
		o, err := parseObjective(v)
		s.Latency = o
		return err
	})
}

// parseObjective parses an SLO objective written as a ratio (0.999) or a
// percentage (99.9%). The burn-rate alerts need it between
// slo.MinObjective and 1, exclusive.
func parseObjective(v string) (float64, error) {
	s, percent := strings.CutSuffix(strings.TrimSpace(v), "%")
	s = strings.TrimSpace(s)
	if percent {
		s += "e-2" // exactly the ratio's nearest float, as 0.999 would parse
	}
	o, err := strconv.ParseFloat(s, 64)
	if err != nil || !(o > slo.MinObjective && o < 1) {
		return 0, fmt.Errorf("want a ratio such as 0.999 or a percentage such as 99.9%%, above %.4f and below 1 (below it the fast-burn page could never fire), got %q", slo.MinObjective, v)
	}
	return o, nil
}
