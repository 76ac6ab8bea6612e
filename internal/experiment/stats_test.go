package experiment

import (
	"math"
	"math/rand/v2"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestWilson(t *testing.T) {
	tests := []struct {
		s, n     int64
		lo, hi   float64
		wantRate float64
	}{
		{10, 100, 0.0552, 0.1744, 0.1},
		{0, 50, 0, 0.0714, 0},
		{50, 50, 0.9286, 1, 1},
	}
	for _, tc := range tests {
		r := NewRate(tc.s, tc.n)
		if !near(r.Value, tc.wantRate, 1e-12) || !near(r.CI.Low, tc.lo, 1e-4) || !near(r.CI.High, tc.hi, 1e-4) {
			t.Errorf("NewRate(%d, %d) = %v %+v, want %v [%v, %v]", tc.s, tc.n, r.Value, r.CI, tc.wantRate, tc.lo, tc.hi)
		}
	}
	if r := NewRate(0, 0); r.CI != (Interval{0, 1}) {
		t.Errorf("no trials: CI %+v, want [0, 1]", r.CI)
	}
}

func TestChiSquareSurvival(t *testing.T) {
	tests := []struct{ x, k, want float64 }{
		{3.841458820694124, 1, 0.05},
		{10.827566170662733, 1, 0.001},
		{5.991464547107979, 2, 0.05},
		{11.070497693516351, 5, 0.05},
		{0, 3, 1},
		{0.5, 4, 0.9735009788},
	}
	for _, tc := range tests {
		if got := chiSquareSurvival(tc.x, tc.k); !near(got, tc.want, 1e-6) {
			t.Errorf("chiSquareSurvival(%v, %v) = %v, want %v", tc.x, tc.k, got, tc.want)
		}
	}
}

func TestSRM(t *testing.T) {
	tests := []struct {
		name     string
		counts   []int64
		weights  []float64
		mismatch bool
	}{
		{"balanced 50/50", []int64{10_040, 9_960}, []float64{50, 50}, false},
		{"one variant's users dropped", []int64{10_000, 9_000}, []float64{50, 50}, true},
		{"90/10 as configured", []int64{9_030, 970}, []float64{90, 10}, false},
		{"three ways, one starved", []int64{3_400, 3_300, 3_000}, []float64{1, 1, 1}, true},
		{"no traffic yet", []int64{0, 0}, []float64{1, 1}, false},
	}
	for _, tc := range tests {
		got, err := CheckSRM(tc.counts, tc.weights)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got.Mismatch != tc.mismatch {
			t.Errorf("%s: %+v, want mismatch=%v", tc.name, got, tc.mismatch)
		}
	}
	if _, err := CheckSRM([]int64{1}, []float64{1}); err == nil {
		t.Error("one variant: no error")
	}
	if _, err := CheckSRM([]int64{1, 2}, []float64{1, 0}); err == nil {
		t.Error("zero weight: no error")
	}
}

func TestMDE(t *testing.T) {
	if got := MDE(0.05, 10_000, 10_000); !near(got, 0.00863, 1e-4) {
		t.Errorf("MDE(5%%, 10k, 10k) = %v, want ≈ 0.00863", got)
	}
	if !math.IsInf(MDE(0.05, 0, 10), 1) {
		t.Error("MDE without control trials is not +Inf")
	}
}

// experiment simulates one A/B test read after every look of perLook
// impressions per arm, and reports whether the sequential test ever
// declared a difference at 5%, and whether a fixed-horizon z-test read at
// every look would have.
func experiment(rng *rand.Rand, pc, pt float64, looks, perLook int) (seq, naive bool) {
	var s Sequential
	var nc, sc, nt, st int64
	for range looks {
		for range perLook {
			if rng.Float64() < pc {
				sc++
			}
			if rng.Float64() < pt {
				st++
			}
		}
		nc += int64(perLook)
		nt += int64(perLook)
		c, t := NewRate(sc, nc), NewRate(st, nt)
		if s.Observe(t, c) < 0.05 {
			seq = true
		}
		if v := variance(t) + variance(c); v > 0 && math.Abs(t.Value-c.Value)/math.Sqrt(v) > z95 {
			naive = true
		}
	}
	return seq, naive
}

// TestPeekingKeepsFalsePositives: 300 A/A experiments read at each of 30
// looks: the always-valid p-value falls below 5% in at most 5% of them,
// where reading a fixed-horizon test as often declares many more.
func TestPeekingKeepsFalsePositives(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const runs = 300
	var seqFP, naiveFP int
	for range runs {
		seq, naive := experiment(rng, 0.05, 0.05, 30, 400)
		if seq {
			seqFP++
		}
		if naive {
			naiveFP++
		}
	}
	if rate := float64(seqFP) / runs; rate > 0.05 {
		t.Errorf("sequential test: %d of %d A/A experiments declared a difference (%.1f%%), want ≤ 5%%", seqFP, runs, 100*rate)
	}
	if naiveFP <= seqFP {
		t.Errorf("a fixed-horizon test peeked at 30 times declared %d, the sequential one %d: the simulation does not show the peeking problem", naiveFP, seqFP)
	}
	t.Logf("A/A false positives over %d experiments, 30 looks each: sequential %d, fixed-horizon peeked %d", runs, seqFP, naiveFP)
}

// TestSequentialDetectsRealDifference: a 30% relative lift on a 5% CTR is
// declared in nearly every experiment of the same size.
func TestSequentialDetectsRealDifference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const runs = 50
	found := 0
	for range runs {
		if seq, _ := experiment(rng, 0.05, 0.065, 30, 1000); seq {
			found++
		}
	}
	if found < runs*9/10 {
		t.Errorf("declared in %d of %d experiments with a real 5%% → 6.5%% difference, want ≥ 90%%", found, runs)
	}
}

func TestLift(t *testing.T) {
	c, tr := NewRate(500, 10_000), NewRate(650, 10_000)
	l := NewLift(tr, c)
	if !near(l.Absolute, 0.015, 1e-12) || !near(l.Relative, 0.3, 1e-12) {
		t.Errorf("lift = %+v, want +0.015 absolute, +30%%", l)
	}
	if l.AbsoluteCI.Low <= 0 || l.AbsoluteCI.High <= l.Absolute || l.RelativeCI.Low <= 0 || l.RelativeCI.High <= l.Relative {
		t.Errorf("intervals %+v do not bracket a clearly positive lift", l)
	}
	if inf := NewLift(tr, NewRate(0, 0)); !math.IsInf(inf.AbsoluteCI.High, 1) {
		t.Errorf("lift against an empty control = %+v, want unbounded", inf)
	}
}
