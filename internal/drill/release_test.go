//go:build drills

package drill

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/rollout"
)

// logRelease logs a release drill's outcome.
func logRelease(t *testing.T, rep *ReleaseReport) {
	t.Helper()
	t.Logf("%s seed %d: %s (%s) %v after registration, max share %.2f, %d of %d users exposed (%.1f%%), CTR champion %.4f challenger %.4f, %d requests in %v\n  %s",
		rep.Drill, rep.Seed, rep.Outcome, rep.Reason, rep.DecidedAfter, rep.MaxShare, rep.UsersExposed, rep.UsersServed,
		100*rep.ExposedShare, rep.CTRChampion, rep.CTRChallenger, rep.Requests, rep.Elapsed.Round(time.Millisecond), rep.Detail)
}

// TestReleaseDrills: a challenger broken for one segment is rolled back by
// a guardrail before the 25% step with under 5% of users exposed; a better
// one is promoted; and a copy of the champion is never rolled back, over
// 20 seeds (on a smaller world, to keep the run short: the guardrails are
// the same).
func TestReleaseDrills(t *testing.T) {
	t.Run("bad", func(t *testing.T) {
		t.Parallel()
		for _, seed := range []int64{1, 2} {
			rep, err := RunRelease(t.Context(), BadRelease, ReleaseConfig{Seed: seed})
			if err != nil {
				t.Fatal(err)
			}
			logRelease(t, rep)
			if rep.Outcome != rollout.RolledBack || !slices.Contains(rollout.Guardrails, rep.Reason) {
				t.Errorf("seed %d: outcome %s (%s), want rolled back by a guardrail", seed, rep.Outcome, rep.Reason)
			}
			if rep.MaxShare >= 0.25 {
				t.Errorf("seed %d: the bad challenger reached %.0f%% of the champion's users, want rolled back before 25%%", seed, 100*rep.MaxShare)
			}
			if rep.ExposedShare >= 0.05 || rep.UsersExposed == 0 {
				t.Errorf("seed %d: %d of %d users exposed (%.1f%%), want some and under 5%%", seed, rep.UsersExposed, rep.UsersServed, 100*rep.ExposedShare)
			}
		}
	})
	t.Run("good", func(t *testing.T) {
		t.Parallel()
		rep, err := RunRelease(t.Context(), GoodRelease, ReleaseConfig{Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		logRelease(t, rep)
		if rep.Outcome != rollout.Promoted || rep.MaxShare != 0.5 {
			t.Errorf("outcome %s (%s) at most %.2f, want promoted after the 50%% step", rep.Outcome, rep.Detail, rep.MaxShare)
		}
	})
	var promoted atomic.Int64
	t.Run("control", func(t *testing.T) {
		for seed := range int64(20) {
			t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
				t.Parallel()
				rep, err := RunRelease(t.Context(), SameRelease, ReleaseConfig{
					Seed: 100 + seed, Users: 5000, Items: 500, Rate: 16, WarmUp: 10 * time.Minute, StepHold: 5 * time.Minute,
				})
				if err != nil {
					t.Fatal(err)
				}
				logRelease(t, rep)
				if rep.Outcome == rollout.RolledBack {
					t.Errorf("a copy of the champion was rolled back: %s", rep.Detail)
				}
				if rep.Outcome == rollout.Promoted {
					promoted.Add(1)
				}
			})
		}
	})
	if n := promoted.Load(); n < 15 {
		t.Errorf("%d of 20 copies of the champion promoted, want nearly all (the rest undecided, none rolled back)", n)
	}
}
