package rollout

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// fakeEstimator returns est (or err) and records its calls.
type fakeEstimator struct {
	est   *Offline
	err   error
	calls []string
}

func (f *fakeEstimator) EstimateShadow(_ context.Context, version string, since time.Time) (*Offline, error) {
	f.calls = append(f.calls, version+"@"+since.Format("15:04"))
	return f.est, f.err
}

// TestShadowOfflineEstimate checks that the shadow stage's offline
// estimate is made at each check of the stage (and only then), shown in
// the state, carried by the transition that ends the stage (its detail,
// its timeline entry) and logged with it; a failing estimator is logged
// and changes nothing.
func TestShadowOfflineEstimate(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	tg := &fakeTarget{}
	var logs bytes.Buffer
	est := &fakeEstimator{err: errors.New("log not readable")}
	c := newController(t, tg, clk, Config{ShadowHold: 3 * time.Minute, Estimator: est,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	start(t, c)
	clk.advance(time.Minute)
	c.Check(t.Context())
	if st := c.State(); st.Offline != nil || len(est.calls) != 1 || !strings.Contains(logs.String(), "no offline estimate") {
		t.Fatalf("failing estimator: offline %+v, calls %v, logs %s; want no estimate, one call, a warning", st.Offline, est.calls, logs.String())
	}
	want := &Offline{At: clk.now(), Decisions: 4000, Slots: 40000, Estimator: "snips",
		Challenger: Interval{0.061, 0.055, 0.067}, Champion: Interval{0.050, 0.048, 0.052}, Trustworthy: true, ESS: 900}
	est.est, est.err = want, nil
	clk.advance(time.Minute)
	c.Check(t.Context())
	if st := c.State(); st.Stage != Shadow || st.Offline != want {
		t.Fatalf("after an estimate: %s, offline %+v; want shadow with the estimate", st.Stage, st.Offline)
	}
	clk.advance(time.Minute)
	c.Check(t.Context()) // the shadow hold is over: canary
	st := c.State()
	last := st.Timeline[len(st.Timeline)-1]
	if st.Stage != Canary || last.Offline != want || !strings.Contains(last.Detail, "above the champion's") {
		t.Fatalf("end of the shadow stage: %s, transition %+v; want canary carrying the estimate, above the champion's", st.Stage, last)
	}
	if !strings.Contains(logs.String(), `"offline":{"estimator":"snips","challenger_ctr":0.061`) {
		t.Errorf("the transition's log line lacks the estimate:\n%s", logs.String())
	}
	calls := len(est.calls)
	clk.advance(time.Minute)
	c.Check(t.Context())
	if len(est.calls) != calls {
		t.Errorf("the estimator was called in the canary stage: %v", est.calls)
	}
	for _, tc := range []struct {
		ch, ca Interval
		want   string
	}{
		{Interval{0.03, 0.02, 0.04}, Interval{0.05, 0.045, 0.055}, "below the champion's"},
		{Interval{0.05, 0.04, 0.06}, Interval{0.05, 0.045, 0.055}, "not distinguishable"},
	} {
		o := &Offline{Challenger: tc.ch, Champion: tc.ca, Reasons: []string{"low_ess"}}
		if v := o.Verdict(); !strings.Contains(v, tc.want) || !strings.Contains(v, "not trustworthy") {
			t.Errorf("Verdict(%v vs %v) = %q, want %q and not trustworthy", tc.ch, tc.ca, v, tc.want)
		}
	}
}
