package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/decisionlog"
	"github.com/sightline/sightline/internal/evaluate"
	"github.com/sightline/sightline/internal/evaluate/evaluatetest"
)

// smallLog writes a decision log of n decisions under dir: a pool of 8
// items in 4 categories ranked by a fixed score, 2 slots filled as the
// engine explores (every eligible item, share 0.5), with clicks.
func smallLog(t *testing.T, dir string, n int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	var pool []decisionlog.Candidate
	for i := range 8 {
		pool = append(pool, decisionlog.Candidate{ItemID: fmt.Sprintf("item-%d", i), Category: fmt.Sprintf("cat-%d", i%4), Score: 0.2 - 0.02*float64(i), Popularity: float64(i%3) / 3})
	}
	const eps = 0.5
	seg := "regular"
	var ds []decisionlog.Decision
	var es []decisionlog.Event
	for j := range n {
		d := decisionlog.Decision{RequestID: fmt.Sprintf("req-%05d", j), Time: t0.Add(time.Duration(j) * time.Second), Variant: "ftrl", ModelVersion: "ftrl-v1.0",
			UserSegment: &seg, Channel: "web", Hour: 10, Candidates: 8, Eligible: 8, Explore: eps, Pool: pool}
		var left []int
		for i := range pool {
			left = append(left, i)
		}
		for len(d.Items) < 2 {
			m := float64(len(left))
			k, reason, prop := 0, "model", 1-eps+eps/m
			if rng.Float64() < eps {
				if x := rng.IntN(len(left)); x != 0 {
					k, reason, prop = x, "explore", eps/m
				}
			}
			c := pool[left[k]]
			left = append(left[:k], left[k+1:]...)
			d.Items = append(d.Items, decisionlog.Slot{ItemID: c.ItemID, Category: c.Category, Score: c.Score, Reason: reason, Propensity: prop})
			es = append(es, decisionlog.Event{RequestID: d.RequestID, EventID: d.RequestID + c.ItemID, Type: "impression", ItemID: c.ItemID, Time: d.Time})
			if rng.Float64() < c.Score {
				es = append(es, decisionlog.Event{RequestID: d.RequestID, EventID: d.RequestID + c.ItemID + "c", Type: "click", ItemID: c.ItemID, Time: d.Time})
			}
		}
		ds = append(ds, d)
	}
	if err := evaluatetest.WriteLog(dir, ds, es); err != nil {
		t.Fatal(err)
	}
}

func TestEvaluateCommand(t *testing.T) {
	dataDir := t.TempDir()
	smallLog(t, filepath.Join(dataDir, "decisions"), 600)

	t.Run("json", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		err := evaluateMain(context.Background(), []string{"--data-dir", dataDir, "--policy", "logged,popularity", "--policy", "ftrl:alpha=0.2", "--report", "json", "--bootstrap", "50"}, &stdout, &stderr)
		if err != nil {
			t.Fatalf("evaluate: %v (stderr %s)", err, stderr.String())
		}
		var r evaluate.Report
		if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
			t.Fatalf("evaluate --report json printed no report: %v\n%s", err, stdout.String())
		}
		if r.Decisions != 600 || len(r.Policies) != 3 {
			t.Fatalf("report: %d decisions, %d policies; want 600 and 3", r.Decisions, len(r.Policies))
		}
		if got, want := r.Policy("logged").Estimate(evaluate.EstimatorIPS).CTR.Value, r.Logged.CTR.Value; got != want {
			t.Errorf("logged IPS CTR = %v, want the logged CTR %v", got, want)
		}
		saved, err := evaluate.ReadFile(filepath.Join(dataDir, "evaluations", "last.json"))
		if err != nil {
			t.Fatalf("the report was not saved where the console reads it: %v", err)
		}
		if saved.Decisions != r.Decisions || saved.Policy("ftrl:alpha=0.2") == nil {
			t.Errorf("saved report: %d decisions, policies %v; want the printed one", saved.Decisions, saved.Policies)
		}
	})

	t.Run("table", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		out := filepath.Join(t.TempDir(), "r.json")
		err := evaluateMain(context.Background(), []string{"--decisions", filepath.Join(dataDir, "decisions"), "--policy", "popularity", "--out", out, "--progress", "always", "--bootstrap", "20"}, &stdout, &stderr)
		if err != nil {
			t.Fatalf("evaluate: %v", err)
		}
		for _, want := range []string{"Offline evaluation of 600 decisions", "Logged policy (on-policy)", "popularity", "Report saved to " + out} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("table output lacks %q:\n%s", want, stdout.String())
			}
		}
		if !strings.Contains(stderr.String(), "600/600 decisions") {
			t.Errorf("progress on stderr = %q, want it to reach 600/600 decisions", stderr.String())
		}
		if _, err := os.Stat(out); err != nil {
			t.Errorf("report not saved to --out: %v", err)
		}
	})

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no policy", []string{"--data-dir", dataDir}, "want at least one --policy"},
		{"bad policy", []string{"--data-dir", dataDir, "--policy", "popularity:alpha=1"}, "invalid policy spec"},
		{"bad report", []string{"--data-dir", dataDir, "--policy", "logged", "--report", "xml"}, "want table or json"},
		{"no log", []string{"--data-dir", filepath.Join(dataDir, "nope"), "--policy", "logged"}, "decision log"},
		{"missing snapshot", []string{"--data-dir", dataDir, "--policy", filepath.Join(dataDir, "none.snap")}, "load model snapshot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := evaluateMain(context.Background(), append(tc.args, "--out", "none"), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("evaluate %v error = %v, want one saying %q", tc.args, err, tc.want)
			}
		})
	}
}
