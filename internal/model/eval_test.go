package model

import (
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/event"
)

// TestEvalWindow checks the sliding window on the fake clock of synctest
// (the default Config.Now is time.Now, which synctest controls).
func TestEvalWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newTestModel(t, Config{Bits: 8, L1: 1e9, EvalWindow: time.Minute}) // L1 so large the model stays at 0.5
		x := testContext()
		it := event.Item{ID: "i", Category: "c"}
		l0, l1 := -math.Log(0.5), -math.Log(0.5)

		if diff := cmp.Diff(EvalStats{Window: time.Minute}, m.Eval()); diff != "" {
			t.Errorf("Eval() of a new model mismatch (-want +got):\n%s", diff)
		}
		for range 3 {
			m.Learn(&x, it, Negative)
		}
		m.Learn(&x, it, Positive)
		want := EvalStats{Window: time.Minute, Count: 4, LogLoss: (3*l0 + l1) / 4, MeanPredicted: 0.5, ObservedCTR: 0.25}
		if diff := cmp.Diff(want, m.Eval(), cmp.Comparer(approx)); diff != "" {
			t.Errorf("Eval() after 3 negatives and a positive mismatch (-want +got):\n%s", diff)
		}

		time.Sleep(40 * time.Second)
		m.Learn(&x, it, Negative)
		want = EvalStats{Window: time.Minute, Count: 5, LogLoss: (4*l0 + l1) / 5, MeanPredicted: 0.5, ObservedCTR: 0.2}
		if diff := cmp.Diff(want, m.Eval(), cmp.Comparer(approx)); diff != "" {
			t.Errorf("Eval() at 40s mismatch (-want +got):\n%s", diff)
		}

		// At 70s the first four have left the window; the one at 40s has not.
		time.Sleep(30 * time.Second)
		want = EvalStats{Window: time.Minute, Count: 1, LogLoss: l0, MeanPredicted: 0.5, ObservedCTR: 0}
		if diff := cmp.Diff(want, m.Eval(), cmp.Comparer(approx)); diff != "" {
			t.Errorf("Eval() at 70s mismatch (-want +got):\n%s", diff)
		}

		// A click on that impression turns it into a positive.
		m.Learn(&x, it, Flip)
		want = EvalStats{Window: time.Minute, Count: 1, LogLoss: l1, MeanPredicted: 0.5, ObservedCTR: 1}
		if diff := cmp.Diff(want, m.Eval(), cmp.Comparer(approx)); diff != "" {
			t.Errorf("Eval() after Flip mismatch (-want +got):\n%s", diff)
		}

		// Long after, the ring has wrapped many times and nothing is left.
		time.Sleep(10 * time.Minute)
		if diff := cmp.Diff(EvalStats{Window: time.Minute}, m.Eval()); diff != "" {
			t.Errorf("Eval() after 10m mismatch (-want +got):\n%s", diff)
		}
	})
}

// TestEvalCalibration checks MeanPredicted and LogLoss with predictions
// other than 1/2, through an injected clock.
func TestEvalCalibration(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m := newTestModel(t, Config{Bits: 8, L1: -1, Now: func() time.Time { return now }})
	x := testContext()
	it := event.Item{ID: "i", Category: "c"}
	var preds []float64
	labels := []Label{Positive, Negative, Positive, Negative, Negative}
	for _, l := range labels {
		preds = append(preds, m.Learn(&x, it, l))
		now = now.Add(time.Second)
	}
	var loss, mean float64
	for i, p := range preds {
		loss += logLoss(p, labels[i] == Positive)
		mean += p
	}
	want := EvalStats{Window: DefaultEvalWindow, Count: 5, LogLoss: loss / 5, MeanPredicted: mean / 5, ObservedCTR: 0.4}
	if diff := cmp.Diff(want, m.Eval(), cmp.Comparer(approx)); diff != "" {
		t.Errorf("Eval() mismatch (-want +got):\n%s", diff)
	}
	if preds[1] == 0.5 || preds[2] == preds[1] {
		t.Errorf("predictions %v did not move; the test checks nothing", preds)
	}
}
