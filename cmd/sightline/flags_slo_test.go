package main

import (
	"io"
	"testing"
	"time"
)

func TestSLOFlags(t *testing.T) {
	fs := newFlagSet("serve", "")
	c, _ := nodeFlags(fs)
	if err := parse(fs, []string{"--slo-availability", "99.95%", "--slo-latency", "25ms", "--slo-latency-objective", "0.99"}); err != nil {
		t.Fatal(err)
	}
	if s := c.SLO; s.Availability != 0.9995 || s.LatencyThreshold != 25*time.Millisecond || s.Latency != 0.99 {
		t.Errorf("flags gave %+v, want availability 0.9995, latency 25ms at 0.99", s)
	}

	fs = newFlagSet("serve", "")
	c, _ = nodeFlags(fs)
	if err := parse(fs, nil); err != nil {
		t.Fatal(err)
	}
	if s := c.SLO; s.Availability != 0 || s.Latency != 0 || s.LatencyThreshold != 0 {
		t.Errorf("no flags gave %+v, want the zero value (the defaults: 99.9%%, 10ms)", s)
	}

	for _, bad := range [][]string{
		{"--slo-availability", "1"},
		{"--slo-availability", "100%"},
		{"--slo-availability", "0.9"}, // 14.4 × 10% > 100%: the fast page could never fire
		{"--slo-availability", "nines"},
		{"--slo-latency-objective", "-0.999"},
		{"--slo-latency", "0s"},
		{"--slo-latency", "-5ms"},
		{"--slo-latency", "2m"},
	} {
		fs := newFlagSet("serve", "")
		nodeFlags(fs)
		fs.SetOutput(io.Discard)
		if err := parse(fs, bad); err == nil {
			t.Errorf("parse(%v) = nil, want an error", bad)
		}
	}
}

func TestParseObjective(t *testing.T) {
	for in, want := range map[string]float64{"0.999": 0.999, "99.9%": 0.999, " 99.99 % ": 0.9999, "0.95": 0.95} {
		got, err := parseObjective(in)
		if err != nil || got != want {
			t.Errorf("parseObjective(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}
