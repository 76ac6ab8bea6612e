package main

import (
	"flag"

	"github.com/sightline/sightline/internal/api"
	"github.com/sightline/sightline/internal/app"
)

// eventFlags registers the flags that bound event timestamps on fs.
func eventFlags(fs *flag.FlagSet, c *app.Config) {
	fs.DurationVar(&c.EventMaxSkew, "event-max-skew", api.DefaultEventMaxSkew, "reject events stamped more than this ahead of the server's clock (negative: no bound)")
	fs.Func("event-max-age", "reject events stamped longer ago than this: a duration such as 36h, or days such as 7d (default 7d, the event log's retention)", func(s string) error {
		d, err := parseDays(s)
		c.EventMaxAge = d
		return err
	})
}
