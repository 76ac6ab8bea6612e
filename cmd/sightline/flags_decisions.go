package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/app"
)

// decisionFlags registers the flags of the exploration policy and the
// Parquet decision log on fs.
func decisionFlags(fs *flag.FlagSet, c *app.Config) {
	fs.IntVar(&c.ExploreTop, "explore-top", 0, "explore only among the best N eligible candidates of each slot (0: all); with a larger --explore this logs traffic offline evaluation can use without showing poor items")
	fs.BoolFunc("decision-store", "write every decision and the events answering it as Parquet under --data-dir/decisions (default true; a --role api node never writes: the trainer does)", func(v string) error {
		on, err := strconv.ParseBool(v)
		c.DecisionStore.Disabled = !on
		return err
	})
	fs.Func("decision-store-ratio", "share of decisions the Parquet log keeps, sampled by request id and recorded in each file (default 1)", func(s string) error {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v <= 0 || v > 1 {
			return fmt.Errorf("want a share in (0, 1], got %q", s)
		}
		c.DecisionStore.Ratio = v
		return nil
	})
	fs.Func("decision-retention", "delete decision log hours older than this: a duration such as 36h, or days such as 7d (default 7d)", func(s string) error {
		d, err := parseDays(s)
		if err != nil {
			return err
		}
		c.DecisionStore.Retention = d
		return nil
	})
	fs.Func("decision-max-bytes", "delete the oldest decision log files while it is larger than this, e.g. 10GiB; 0 means no limit (default 10GiB)", func(s string) error {
		var b byteSize
		if err := b.Set(s); err != nil {
			return err
		}
		c.DecisionStore.MaxBytes = int64(b)
		if b == 0 {
			c.DecisionStore.MaxBytes = -1
		}
		return nil
	})
	fs.Func("decision-pool", "best eligible candidates recorded with each decision for offline evaluation (default 20; 0: none)", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 1000 {
			return fmt.Errorf("want 0 to 1000 candidates, got %q", s)
		}
		c.DecisionStore.Pool = n
		if n == 0 {
			c.DecisionStore.Pool = -1
		}
		return nil
	})
}

// parseDays parses a Go duration or a whole number of days ("7d").
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(strings.TrimSpace(s), "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 || days > 3650 {
			return 0, fmt.Errorf("want a positive number of days, got %q", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("want a positive duration (36h) or days (7d), got %q", s)
	}
	return d, nil
}
