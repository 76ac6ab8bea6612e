package console_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/console"
)

func TestRolloutsPage(t *testing.T) {
	canary := fixtureRollout()
	rolledBack := fixtureRollout()
	rolledBack.Stage, rolledBack.Share = "rolled_back", 0
	rolledBack.Checks[0] = console.RolloutCheckView{Name: "ctr", Status: "fail", Challenger: 0.012, Champion: 0.03, Limit: -0.1, Detail: "CTR 0.0120 against the champion's 0.0300 (lift -60.0%), always-valid p = 6.6e-05 < 0.001"}
	rolledBack.Timeline = append(rolledBack.Timeline, console.RolloutTransitionView{At: epoch, From: "canary", To: "rolled_back", Reason: "ctr", Detail: "ctr guardrail failed: CTR 0.0120 against the champion's 0.0300"})
	promoted := fixtureRollout()
	promoted.Stage, promoted.Share, promoted.Step = "promoted", 0, 2
	promoted.Timeline = append(promoted.Timeline, console.RolloutTransitionView{At: epoch, From: "promoting", To: "promoted", Reason: "promote", Detail: "every guardrail passed at the last step (50%)"})
	shadow := fixtureRollout()
	shadow.Stage, shadow.Share = "shadow", 0
	shadow.Offline = &console.RolloutOfflineView{At: epoch, Decisions: 4200, Estimator: "snips",
		Challenger: 0.061, ChallengerLow: 0.055, ChallengerHigh: 0.067, Champion: 0.05, ChampionLow: 0.048, ChampionHigh: 0.052,
		Trustworthy: false, Reasons: []string{"low_ess"}, Verdict: "offline estimate of the challenger's CTR 6.10% [5.50, 6.70] above the champion's"}
	for _, tc := range []struct {
		name    string
		r       console.Rollouts
		want    []string
		wantNot []string
	}{
		{"none", nil, []string{"runs no guarded rollouts"}, []string{"rollout-timeline"}},
		{"idle", fakeRollouts(console.RolloutView{Stage: "idle"}), []string{`id="no-rollout"`, "POST /admin/rollouts", "no transition yet"}, []string{"Guardrails"}},
		{"canary", fakeRollouts(canary), []string{
			"<strong>canary</strong>: ftrl-next-7 serves 25.00% of the champion's users, held 4m0s of 10m0s",
			`<span class="step current">25.00%</span>`, `<span class="step done">5.00%</span>`,
			`data-guardrail="ctr" class=""`, `<span class="tag pending">wait</span>`, `data-guardrail="latency_p99" class="good"`,
			`data-arm="challenger"`, ">1450<", "3.10%",
			`href="/traces/4bf92f3577b34da6a3ce929d0e0e4736"`,
		}, []string{"Rolled back", "Promoted", "rollout-offline"}},
		{"shadow with an offline estimate", fakeRollouts(shadow), []string{
			`id="rollout-offline"`, "4200 decisions", `data-offline="challenger"`, "6.10%", "5.50% – 6.70%", "4.80% – 5.20%",
			`<span class="tag pending">not trustworthy</span> offline estimate of the challenger&#39;s CTR 6.10% [5.50, 6.70] above the champion&#39;s`,
		}, nil},
		{"rolled back", fakeRollouts(rolledBack), []string{
			`id="rollout-banner"><strong>Rolled back.</strong> ctr guardrail failed`, `data-guardrail="ctr" class="bad"`, `data-to="rolled_back"`,
		}, []string{"held 4m0s"}},
		{"promoted", fakeRollouts(promoted), []string{"<strong>Promoted.</strong> ftrl-next-7 is the champion", `data-to="promoted"`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, console.Config{Rollouts: tc.r, Now: func() time.Time { return epoch }})
			status, _, body := get(t, srv, "/rollouts")
			if status != 200 {
				t.Fatalf("GET /rollouts = %d", status)
			}
			for _, s := range tc.want {
				if !strings.Contains(body, s) {
					t.Errorf("body lacks %q", s)
				}
			}
			for _, s := range tc.wantNot {
				if strings.Contains(body, s) {
					t.Errorf("body has %q", s)
				}
			}
			// Newest first.
			if tc.name == "rolled back" && strings.Index(body, `data-to="rolled_back"`) > strings.Index(body, `data-to="canary"`) {
				t.Error("the timeline is not newest first")
			}
		})
	}
}

func TestChartAnnotations(t *testing.T) {
	r := fixtureRollout()
	r.Timeline = append([]console.RolloutTransitionView{{At: epoch.Add(-2 * time.Hour), From: "idle", To: "canary", Share: 0.05, Reason: "start"}}, r.Timeline...)
	r.Timeline = append(r.Timeline, console.RolloutTransitionView{At: epoch.Add(-time.Minute), From: "canary", To: "rolled_back", Reason: "ctr"})
	srv := newServer(t, console.Config{Stats: fakeStats{}, Rollouts: fakeRollouts(r), Now: func() time.Time { return epoch }})
	_, _, body := get(t, srv, "/console/api/series")
	var d struct {
		Annotations []struct {
			T    int64  `json:"t"`
			Text string `json:"text"`
			Kind string `json:"kind"`
		} `json:"annotations"`
	}
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	// The transition two hours ago is outside the 15-minute window.
	var got []string
	for _, a := range d.Annotations {
		got = append(got, a.Kind+":"+a.Text)
	}
	want := []string{"rollout:canary 5%", "rollout:canary 25%", "rollback:rolled back (ctr)"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("annotations %v, want %v", got, want)
	}
}
