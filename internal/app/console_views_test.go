package app

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/console"
	"github.com/sightline/sightline/internal/evaluate"
	"github.com/sightline/sightline/internal/experiment"
)

func consoleGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestConsoleExperimentView(t *testing.T) {
	p, mde := 0.004, 0.0031
	r := experiment.Report{
		Control: "popularity",
		Variants: []experiment.VariantReport{
			{Name: "ftrl", Weight: 50, Assignments: 510,
				CTR:        experiment.Rate{Trials: 4000, Successes: 120, Value: 0.03, CI: experiment.Interval{Low: 0.025, High: 0.036}},
				Conversion: experiment.Rate{Trials: 120, Successes: 9, Value: 0.075, CI: experiment.Interval{Low: 0.04, High: 0.14}},
				Lift: &experiment.Lift{Absolute: 0.01, AbsoluteCI: experiment.Interval{Low: 0.003, High: 0.017},
					Relative: 0.5, RelativeCI: experiment.Interval{Low: 0.12, High: 0.99}},
				PValue: &p, MDE: &mde},
			{Name: "popularity", Weight: 50, Assignments: 490,
				CTR:        experiment.Rate{Trials: 3900, Successes: 78, Value: 0.02, CI: experiment.Interval{Low: 0.016, High: 0.025}},
				Conversion: experiment.Rate{Trials: 78, Successes: 2, Value: 0.0256, CI: experiment.Interval{Low: 0.007, High: 0.089}}},
		},
		SRM: experiment.SRM{ChiSquare: 0.4, P: 0.527},
	}
	want := console.ExperimentView{
		Control: "popularity",
		Variants: []console.ExperimentVariantView{
			{Name: "ftrl", Weight: 50, Decisions: 510, Impressions: 4000, Clicks: 120, Conversions: 9,
				CTR: console.RateView{Value: 0.03, Low: 0.025, High: 0.036}, Conversion: console.RateView{Value: 0.075, Low: 0.04, High: 0.14},
				Lift:   &console.LiftView{Absolute: 0.01, AbsoluteLow: 0.003, AbsoluteHigh: 0.017, Relative: 0.5, RelativeLow: 0.12, RelativeHigh: 0.99},
				PValue: &p, MDE: &mde},
			{Name: "popularity", Weight: 50, Decisions: 490, Impressions: 3900, Clicks: 78, Conversions: 2,
				CTR: console.RateView{Value: 0.02, Low: 0.016, High: 0.025}, Conversion: console.RateView{Value: 0.0256, Low: 0.007, High: 0.089}},
		},
		SRM: console.SRMView{ChiSquare: 0.4, P: 0.527, Threshold: experiment.SRMThreshold},
	}
	if diff := cmp.Diff(want, experimentView(r)); diff != "" {
		t.Errorf("experimentView (-want +got):\n%s", diff)
	}
}

// TestConsoleExperiments: on a single node the Experiments page shows
// the decisions of GET /v1/experiments, and the Overview has no cluster
// panel.
func TestConsoleExperiments(t *testing.T) {
	n := startNode(t, Config{})
	w := smallWorld()
	if err := w.Load(t.Context(), n.c); err != nil {
		t.Fatal(err)
	}
	n.Engine().Index().Refresh()
	evs := recommendAndEvents(t, n.c, w, 0, 30)
	if _, err := n.c.SendEvents(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitApplied(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, raw := consoleGet(t, n.base+"/v1/experiments")
	var r experiment.Report
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		t.Fatal(err)
	}
	status, body := consoleGet(t, n.base+"/experiments")
	if status != http.StatusOK {
		t.Fatalf("GET /experiments status = %d, want 200", status)
	}
	if len(r.Variants) != 2 {
		t.Fatalf("/v1/experiments variants = %+v, want 2", r.Variants)
	}
	for _, v := range r.Variants {
		// The decision count is the first number of the variant's row.
		re := regexp.MustCompile(`(?s)<tr data-variant="` + v.Name + `"[^>]*>\s*<th[^>]*>.*?</th>\s*<td class="num">(\d+)</td>\s*<td class="num">(\d+)</td>`)
		m := re.FindStringSubmatch(body)
		if m == nil {
			t.Errorf("Experiments page has no row for %s", v.Name)
			continue
		}
		if m[1] != fmt.Sprint(v.Assignments) || m[2] != fmt.Sprint(v.CTR.Trials) {
			t.Errorf("Experiments row %s: decisions %s, impressions %s; /v1/experiments says %d, %d", v.Name, m[1], m[2], v.Assignments, v.CTR.Trials)
		}
	}
	if !strings.Contains(body, "(control: popularity)") || !strings.Contains(body, "Sample ratio check") {
		t.Errorf("Experiments page lacks the control or the sample ratio check")
	}
	_, overview := consoleGet(t, n.base+"/")
	if strings.Contains(overview, `id="cluster"`) {
		t.Errorf("the Overview of a --role all node shows a cluster panel")
	}
}

// TestConsoleCluster runs a trainer, a standby trainer and an API node on
// kfake and the test Redis: every node's Overview names the active
// trainer, and the API node's and the active trainer's show which API
// node served which model version.
func TestConsoleCluster(t *testing.T) {
	addr, prefix := testRedis(t)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(kc.Close)
	base := Config{
		Bus: BusKafka, KafkaBrokers: kc.ListenAddrs(), KafkaTopic: "events", KafkaDecisionsTopic: "decisions", KafkaPartitions: 2,
		FeatureStore: StoreRedis, RedisAddr: addr, RedisPrefix: prefix,
		PublishInterval: 100 * time.Millisecond, FollowInterval: 50 * time.Millisecond, TrainerLease: time.Second,
		AlertInterval: 100 * time.Millisecond,
	}
	tc := base
	tc.Role, tc.NodeName = RoleTrainer, "trainer-1"
	trainer := startNode(t, tc)
	poll(t, 10*time.Second, func() (bool, string) {
		s := getStats(t, trainer.base)
		return s.Active != nil && *s.Active, fmt.Sprintf("trainer active=%v", s.Active)
	})
	sc := base
	sc.Role, sc.NodeName = RoleTrainer, "trainer-2"
	standby := startNode(t, sc)
	ac := base
	ac.Role, ac.NodeName = RoleAPI, "api-1"
	apiNode := startNode(t, ac)

	w := smallWorld()
	if err := w.Load(t.Context(), apiNode.c); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, func() (bool, string) {
		r, err := apiNode.c.Recommend(t.Context(), client.RecommendRequest{UserID: w.User(1).ID, Count: 5, Context: client.Context{Channel: "web"}})
		return err == nil && len(r.Items) > 0, fmt.Sprintf("recommendation: %v", err)
	})
	evs := recommendAndEvents(t, apiNode.c, w, 0, 20)
	if _, err := apiNode.c.SendEvents(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	// api-1's row names the version it serves, on the API node's and the
	// active trainer's Overview.
	servedRow := regexp.MustCompile(`(?s)<tr[^>]*><th scope="row" class="id">api-1</th><td>(\w+)</td><td><span class="id">([^<]+)</span>.*?<td class="num">(\d+)</td>`)
	u := 0
	for _, nd := range []*testNode{apiNode, trainer} {
		poll(t, 10*time.Second, func() (bool, string) {
			// Fresh decisions of either variant, so the rows show the
			// version served now.
			u++
			if _, err := apiNode.c.Recommend(t.Context(), client.RecommendRequest{UserID: w.User(u % 50).ID, Count: 5, Context: client.Context{Channel: "web"}}); err != nil {
				return false, err.Error()
			}
			_, body := consoleGet(t, nd.base+"/")
			version := getStats(t, apiNode.base).ModelVersion
			if !strings.Contains(body, `id="active-trainer"><span class="id">trainer-1</span>`) {
				return false, nd.cfg.NodeName + ": no active trainer trainer-1 in the Overview"
			}
			m := servedRow.FindStringSubmatch(body)
			if m == nil {
				return false, nd.cfg.NodeName + ": no served row of api-1 in the Overview"
			}
			return m[2] == version && m[3] != "0", fmt.Sprintf("%s: api-1 row variant %s version %s decisions %s; api-1 serves %s", nd.cfg.NodeName, m[1], m[2], m[3], version)
		})
	}
	_, body := consoleGet(t, trainer.base+"/")
	if !strings.Contains(body, "(trainer, active)") {
		t.Errorf("the active trainer's Overview does not say it is active")
	}
	_, body = consoleGet(t, standby.base+"/")
	for _, want := range []string{"(trainer, standby)", `id="active-trainer"><span class="id">trainer-1</span>`, "A standby trainer reads no decisions"} {
		if !strings.Contains(body, want) {
			t.Errorf("the standby trainer's Overview lacks %q", want)
		}
	}
}

// testReport is an evaluation report with every field the console shows.
func testReport() *evaluate.Report {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	iv := func(v float64) *evaluate.Interval {
		return &evaluate.Interval{Value: v, Low: v - 0.001, High: v + 0.001}
	}
	return &evaluate.Report{
		Version: evaluate.ReportVersion, Created: t0, ElapsedSeconds: 12.3456, Source: "data/decisions",
		From: t0.Add(-time.Hour), To: t0.Add(-time.Minute),
		Decisions: 1000, Slots: 5000, Events: 5300, Fallbacks: 4, Duplicates: 2, Invalid: 1,
		Settings:   evaluate.Settings{Clip: 100, Bootstrap: 200, Level: 0.95},
		Thresholds: evaluate.Thresholds{MinESS: 100, MinESSShare: 0.01, MaxUnsupported: 0.1, MaxClippedMass: 0.1},
		Logged: evaluate.Logged{
			CTR: *iv(0.02), ClicksPerDecision: *iv(0.1), ConversionRate: 0.001,
			Positions: []evaluate.LoggedPosition{{Position: 1, Slots: 1000, CTR: 0.03}},
			Variants:  []evaluate.LoggedVariant{{Variant: "ftrl", Decisions: 500, Slots: 2500, CTR: 0.022, ConversionRate: 0.001}},
		},
		Policies: []evaluate.Policy{{
			Spec: "popularity", Kind: "popularity", Explore: 0.05, Trustworthy: false, Reasons: []string{evaluate.ReasonLowESS},
			Estimates: []evaluate.Estimate{
				{Estimator: evaluate.EstimatorIPS, CTR: iv(0.021), ClicksPerDecision: iv(0.105)},
				{Estimator: evaluate.EstimatorSNIPS},
			},
			Conversions: []evaluate.Estimate{{Estimator: evaluate.EstimatorIPS, CTR: iv(0.002)}},
			Diagnostics: evaluate.Diagnostics{Slots: 5000, ESS: 40, ESSShare: 0.008, Unsupported: 0.03, Matched: 0.5, MeanWeight: 0.9, MaxWeight: 30, ClippedShare: 0.01, ClippedMass: 0.02},
			Positions: []evaluate.Position{{
				Position: 1, LoggedCTR: 0.03, Estimates: []evaluate.Estimate{{Estimator: evaluate.EstimatorDR, CTR: iv(0.031)}},
				Diagnostics: evaluate.Diagnostics{Slots: 1000, ESS: 300}, Trustworthy: true,
			}},
			Warnings: []string{"trained on the evaluated period"},
		}},
		Notes: []string{"slate: per position"},
	}
}

func TestConsoleEvaluationView(t *testing.T) {
	r := testReport()
	t0 := r.Created
	iv := func(v float64) *console.IntervalView {
		return &console.IntervalView{Value: v, Low: v - 0.001, High: v + 0.001}
	}
	want := console.EvaluationView{
		Created: t0, Elapsed: 12346 * time.Millisecond, Source: "data/decisions", From: t0.Add(-time.Hour), To: t0.Add(-time.Minute),
		Decisions: 1000, Slots: 5000, Events: 5300, Fallbacks: 4, Duplicates: 2, Invalid: 1,
		Clip: 100, Bootstrap: 200, Level: 0.95,
		Thresholds: console.EvaluationThresholds{MinESS: 100, MinESSShare: 0.01, MaxUnsupported: 0.1, MaxClippedMass: 0.1},
		Logged: console.LoggedView{
			CTR: *iv(0.02), ClicksPerDecision: *iv(0.1), ConversionRate: 0.001,
			Positions: []console.LoggedPositionView{{Position: 1, Slots: 1000, CTR: 0.03}},
			Variants:  []console.LoggedVariantView{{Variant: "ftrl", Decisions: 500, Slots: 2500, CTR: 0.022, ConversionRate: 0.001}},
		},
		Policies: []console.PolicyView{{
			Spec: "popularity", Kind: "popularity", Explore: 0.05, Reasons: []string{"low_effective_sample_size"},
			Estimates:   []console.EstimateView{{Estimator: "ips", CTR: iv(0.021), ClicksPerDecision: iv(0.105)}, {Estimator: "snips"}},
			Conversions: []console.EstimateView{{Estimator: "ips", CTR: iv(0.002)}},
			Diagnostics: console.DiagnosticsView{Slots: 5000, ESS: 40, ESSShare: 0.008, Unsupported: 0.03, Matched: 0.5, MeanWeight: 0.9, MaxWeight: 30, ClippedShare: 0.01, ClippedMass: 0.02},
			Positions: []console.PositionView{{
				Position: 1, LoggedCTR: 0.03, Estimates: []console.EstimateView{{Estimator: "dr", CTR: iv(0.031)}},
				Diagnostics: console.DiagnosticsView{Slots: 1000, ESS: 300}, Trustworthy: true,
			}},
			Warnings: []string{"trained on the evaluated period"},
		}},
		Notes: []string{"slate: per position"},
	}
	if diff := cmp.Diff(want, evaluationView(r)); diff != "" {
		t.Errorf("evaluationView (-want +got):\n%s", diff)
	}
}

// TestConsoleEvaluate: the Evaluate page of a node says how to run an
// evaluation until <data-dir>/evaluations/last.json exists, then shows
// it, and says so when the file cannot be read.
func TestConsoleEvaluate(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, Config{DataDir: dir})
	path := filepath.Join(dir, "evaluations", "last.json")

	_, body := consoleGet(t, n.base+"/evaluate")
	for _, want := range []string{"No evaluation has run yet", "sightline evaluate --data-dir " + dir, "<code>" + path + "</code>"} {
		if !strings.Contains(body, want) {
			t.Errorf("Evaluate page before any run lacks %q", want)
		}
	}

	if err := testReport().WriteFile(path); err != nil {
		t.Fatal(err)
	}
	_, body = consoleGet(t, n.base+"/evaluate")
	for _, want := range []string{`<section class="policy" data-policy="popularity"`, "not trustworthy", "The effective sample size is below 100 slots", "Run another evaluation"} {
		if !strings.Contains(body, want) {
			t.Errorf("Evaluate page after a run lacks %q", want)
		}
	}

	if err := os.WriteFile(path, []byte(`{"version": 99}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, body = consoleGet(t, n.base+"/evaluate")
	if !strings.Contains(body, `id="evaluation-error"`) || !strings.Contains(body, "unknown report version") || strings.Contains(body, `class="policy"`) {
		t.Errorf("Evaluate page of a report of another version does not say it cannot be read, or still shows the old one")
	}
}
