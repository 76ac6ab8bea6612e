package evaluate

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestReportFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "evaluations", "last.json")
	iv := &Interval{Value: 0.05, Low: 0.04, High: 0.06}
	want := &Report{
		Version:   ReportVersion,
		Created:   time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Source:    "data/decisions",
		Decisions: 10,
		Slots:     100,
		Policies: []Policy{{
			Spec: "popularity", Kind: "popularity", Trustworthy: false, Reasons: []string{ReasonLowESS},
			Estimates: []Estimate{{Estimator: EstimatorIPS, CTR: iv, ClicksPerDecision: iv}, {Estimator: EstimatorSNIPS}},
		}},
		Notes: []string{"a note"},
	}
	if err := want.WriteFile(path); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatalf("ReadFile: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadFile(WriteFile(r)) differs (-want +got):\n%s", diff)
	}
	if e := got.Policy("popularity").Estimate(EstimatorIPS); e == nil || !e.CTR.Contains(0.05) || e.CTR.Contains(0.07) {
		t.Errorf("Policy(popularity).Estimate(ips) = %+v, want the interval [0.04, 0.06]", e)
	}
	if p := got.Policy("popularity"); !p.Covers(EstimatorIPS, 0.05) || p.Covers(EstimatorIPS, 0.07) || p.Covers(EstimatorSNIPS, 0.05) {
		t.Errorf("Covers: want ips to cover 0.05 but not 0.07, and snips (undefined) nothing")
	}
	if got.Policy("nope") != nil {
		t.Errorf("Policy(nope) = non-nil, want nil")
	}

	if err := os.WriteFile(path, []byte(`{"version": 99}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path); !errors.Is(err, ErrReportVersion) {
		t.Errorf("ReadFile(version 99) error = %v, want ErrReportVersion", err)
	}
}
