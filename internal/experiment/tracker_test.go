package experiment

import (
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
)

// TestTrackerSRMDrill: a 50/50 split served as such passes the SRM check;
// when one variant's users are dropped (a tenth of its decisions lost),
// the check fires.
func TestTrackerSRMDrill(t *testing.T) {
	split := model.Split{{Name: "ftrl", Weight: 50}, {Name: "popularity", Weight: 50}}
	rng := rand.New(rand.NewPCG(5, 6))
	run := func(drop float64) Report {
		tr := NewTracker(split, "popularity")
		for range 40_000 {
			v := split[rng.IntN(2)].Name
			if v == "ftrl" && rng.Float64() < drop {
				continue // the broken path loses these users
			}
			tr.ObserveDecision(v)
		}
		return tr.Report()
	}
	if r := run(0); r.SRM.Mismatch {
		t.Errorf("healthy split flagged: %+v", r.SRM)
	}
	if r := run(0.1); !r.SRM.Mismatch {
		t.Errorf("a variant losing 10%% of its users not flagged: %+v", r.SRM)
	}
}

// TestTrackerReport: the report compares each treatment with the control,
// and encodes as JSON before any data (no infinities).
func TestTrackerReport(t *testing.T) {
	split := model.Split{{Name: "ftrl", Weight: 50}, {Name: "popularity", Weight: 50}}
	tr := NewTracker(split, "popularity")
	if _, err := json.Marshal(tr.Report()); err != nil {
		t.Fatalf("empty report does not encode: %v", err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for range 20_000 {
		for _, a := range split {
			tr.ObserveDecision(a.Name)
			tr.ObserveEvent(a.Name, "web", event.Impression)
			p := 0.05
			if a.Name == "ftrl" {
				p = 0.08
			}
			if rng.Float64() < p {
				tr.ObserveEvent(a.Name, "web", event.Click)
			}
		}
	}
	tr.ObserveEvent("unknown-variant", "web", event.Click) // ignored
	r := tr.Report()
	if _, err := json.Marshal(r); err != nil {
		t.Fatal(err)
	}
	var ftrl, pop VariantReport
	for _, v := range r.Variants {
		switch v.Name {
		case "ftrl":
			ftrl = v
		case "popularity":
			pop = v
		}
	}
	if pop.Lift != nil || pop.PValue != nil {
		t.Errorf("control has a lift or p-value: %+v", pop)
	}
	if ftrl.Lift == nil || ftrl.PValue == nil || ftrl.MDE == nil {
		t.Fatalf("treatment lacks lift, p-value or MDE: %+v", ftrl)
	}
	if *ftrl.PValue > 0.001 || ftrl.Lift.AbsoluteCI.Low <= 0 {
		t.Errorf("a 5%% → 8%% CTR difference on 20,000 impressions each: p=%v, lift %+v; want significant", *ftrl.PValue, ftrl.Lift)
	}
	if r.Control != "popularity" || r.SRM.Mismatch {
		t.Errorf("control %q, srm %+v", r.Control, r.SRM)
	}
}
