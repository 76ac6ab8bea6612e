//go:build drills

package drill

import (
	"strings"
	"testing"
)

// TestDrillsSLOBurn runs the slo-burn game day (its name starts with
// TestDrills, so scripts/test's drill step runs it): a model failure on
// about 3% of the answers, under every threshold alert, fires the
// availability SLO's fast-burn page within the fast page's (scaled) hour,
// and no other alert fires; the page resolves once the fault is gone.
func TestDrillsSLOBurn(t *testing.T) {
	rep, err := RunSLOBurn(t.Context(), SLOBurnConfig{Seed: 1})
	if err != nil {
		t.Fatalf("RunSLOBurn: %v", err)
	}
	var out strings.Builder
	rep.WriteTimeline(&out)
	t.Log("\n" + out.String())

	if rep.BurnRate < 14.4 || rep.BadShare >= 0.05 {
		t.Errorf("the fault failed %.2f%% of the answers (burn rate %.1f), want a burn over 14.4 below HighFallbackRate's 5%%", 100*rep.BadShare, rep.BurnRate)
	}
	page, ok := rep.Fired("SLOFastBurn")
	switch {
	case !ok:
		t.Fatalf("SLOFastBurn did not fire")
	case page.Labels["slo"] != "availability":
		t.Errorf("SLOFastBurn labels = %v, want slo availability", page.Labels)
	case page.TimeToDetect <= 0 || page.TimeToDetect > rep.Window:
		t.Errorf("SLOFastBurn fired %v after the fault, want within the fast page's window (%v)", page.TimeToDetect, rep.Window)
	}
	for _, a := range rep.Alerts {
		if a.Name != "SLOFastBurn" || a.Labels["slo"] != "availability" {
			t.Errorf("%s%v fired at T+%v: want nothing but the availability SLO's fast-burn page", a.Name, a.Labels, a.FiredAt)
		}
	}
	if len(rep.SLOs) == 0 {
		t.Fatal("the report has no SLOs")
	}
	avail := rep.SLOs[0]
	for _, a := range avail.Alerts {
		if a.State == "firing" {
			t.Errorf("%s still firing %v after the fault, want resolved", a.Name, rep.Duration-rep.FaultAt-rep.FaultFor)
		}
	}
	if avail.BudgetRemaining >= 1 || avail.BudgetRemaining <= 0 {
		t.Errorf("budget left %.3f after the drill, want some spent and some left", avail.BudgetRemaining)
	}
}
