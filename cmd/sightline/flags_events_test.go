package main

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/app"
)

func TestEventFlags(t *testing.T) {
	var c app.Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	eventFlags(fs, &c)
	if err := fs.Parse(nil); err != nil || c.EventMaxSkew != 5*time.Minute || c.EventMaxAge != 0 {
		t.Fatalf("defaults: skew %v, age %v, %v; want 5m and 0 (the node's 7d)", c.EventMaxSkew, c.EventMaxAge, err)
	}
	if err := fs.Parse([]string{"--event-max-skew", "30s", "--event-max-age", "2d"}); err != nil || c.EventMaxSkew != 30*time.Second || c.EventMaxAge != 48*time.Hour {
		t.Errorf("parse: skew %v, age %v, %v; want 30s and 48h", c.EventMaxSkew, c.EventMaxAge, err)
	}
	for _, bad := range [][]string{{"--event-max-age", "0d"}, {"--event-max-age", "-1h"}, {"--event-max-skew", "soon"}} {
		if err := fs.Parse(bad); err == nil {
			t.Errorf("parse(%v) = nil, want an error", bad)
		}
	}
}
