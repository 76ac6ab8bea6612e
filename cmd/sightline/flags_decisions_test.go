package main

import (
	"io"
	"testing"
	"time"
)

func TestParseDays(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"7d", 7 * 24 * time.Hour, false},
		{"36h", 36 * time.Hour, false},
		{"90m", 90 * time.Minute, false},
		{"0d", 0, true},
		{"-1h", 0, true},
		{"d", 0, true},
		{"seven", 0, true},
	}
	for _, tt := range tests {
		got, err := parseDays(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseDays(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestDecisionFlags(t *testing.T) {
	fs := newFlagSet("serve", "")
	c, _ := nodeFlags(fs)
	err := parse(fs, []string{"--explore-top", "5", "--decision-store-ratio", "0.25", "--decision-retention", "2d", "--decision-max-bytes", "1GiB", "--decision-pool", "0", "--decision-store=false"})
	if err != nil {
		t.Fatal(err)
	}
	d := c.DecisionStore
	if c.ExploreTop != 5 || d.Ratio != 0.25 || d.Retention != 48*time.Hour || d.MaxBytes != 1<<30 || d.Pool != -1 || !d.Disabled {
		t.Errorf("flags gave explore top %d, store %+v", c.ExploreTop, d)
	}
	for _, bad := range [][]string{{"--decision-store-ratio", "0"}, {"--decision-store-ratio", "1.5"}, {"--decision-pool", "-3"}, {"--decision-retention", "0d"}} {
		fs := newFlagSet("serve", "")
		nodeFlags(fs)
		fs.SetOutput(io.Discard)
		if err := parse(fs, bad); err == nil {
			t.Errorf("parse(%v) = nil, want an error", bad)
		}
	}
}
