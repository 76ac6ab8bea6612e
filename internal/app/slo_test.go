package app

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/faults"
	"github.com/sightline/sightline/internal/slo"
)

// TestSLOs drives a node through its API on a simulated clock with a
// third of the model's inferences failing: the failed answers count
// against the availability SLO, /metrics exports the counters, and after
// ten minutes the in-process fast-burn page fires (on GET /v1/alerts and
// GET /v1/slos) while the slow one, whose 6h window the burn has not
// filled, does not.
func TestSLOs(t *testing.T) {
	clock := &testClock{}
	clock.ns.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	n := startNode(t, Config{AlertInterval: -1, Now: clock.Now, SLO: slo.Config{LatencyThreshold: time.Hour}})
	w := smallWorld()
	if err := w.Load(t.Context(), n.c); err != nil {
		t.Fatal(err)
	}
	n.Engine().Index().Refresh()
	if err := n.SetFault(faults.ModelErrors, true); err != nil {
		t.Fatal(err)
	}
	// failed counts the answers that fell back on a failed or late
	// dependency: model_error, and a feature fetch or inference that
	// missed its budget on a loaded machine.
	var total, failed, modelErrors int64
	for minute := range 10 {
		for i := range 60 {
			u := w.User((minute*60 + i) % len(w.Users()))
			rec, err := n.c.Recommend(t.Context(), client.RecommendRequest{UserID: u.ID, Count: 5})
			if err != nil {
				t.Fatalf("Recommend: %v", err)
			}
			total++
			if rec.Fallback != nil && slo.CountsAgainstAvailability(engine.Reason(rec.Fallback.Reason)) {
				failed++
			}
			if rec.Fallback != nil && rec.Fallback.Reason == string(engine.ReasonModelError) {
				modelErrors++
			}
		}
		clock.advance(time.Minute)
	}
	if modelErrors == 0 {
		t.Fatal("no answer fell back on model_error: the fault did not apply")
	}
	n.EvaluateAlerts(t.Context(), clock.Now())

	var body slosBody
	getJSON(t, n.base+"/v1/slos", &body)
	if len(body.SLOs) != 2 || body.WindowScale != 1 {
		t.Fatalf("GET /v1/slos = %+v, want 2 SLOs at window scale 1", body)
	}
	avail, lat := body.SLOs[0], body.SLOs[1]
	if avail.SLO != slo.Availability || avail.Bad != failed || avail.Good+avail.Bad != total {
		t.Errorf("availability: %d good, %d bad; want %d bad of %d", avail.Good, avail.Bad, failed, total)
	}
	if lat.SLO != slo.Latency || lat.Bad != 0 || lat.Good != total {
		t.Errorf("latency: %d good, %d bad; want all %d good under a 1h threshold", lat.Good, lat.Bad, total)
	}
	states := map[string]string{}
	for _, a := range avail.Alerts {
		states[a.Name] = a.State
	}
	if states["SLOFastBurn"] != "firing" || states["SLOSlowBurn"] != "inactive" || states["SLOSustainedBurn"] != "inactive" {
		t.Errorf("availability alert states = %v, want only SLOFastBurn firing (burn rates %+v)", states, avail.BurnRates)
	}
	for _, a := range lat.Alerts {
		if a.State != "inactive" {
			t.Errorf("latency %s = %s, want inactive", a.Name, a.State)
		}
	}

	var alerts alertsBody
	getJSON(t, n.base+"/v1/alerts", &alerts)
	found := false
	for _, a := range alerts.Alerts {
		if a.Name == "SLOFastBurn" && a.State == "firing" && a.Labels["slo"] == "availability" && a.Severity == "page" {
			found = true
		}
	}
	if !found {
		t.Errorf("GET /v1/alerts has no firing SLOFastBurn{slo=availability}: %+v", alerts.Alerts)
	}

	// A 5xx of a recommendation route counts against availability; one of
	// another route does not.
	n.observeSLOStatus("POST /v1/recommendations", http.StatusServiceUnavailable)
	n.observeSLOStatus("GET /v1/users/{user_id}/recommendations", http.StatusInternalServerError)
	n.observeSLOStatus("POST /v1/events", http.StatusServiceUnavailable)
	n.observeSLOStatus("POST /v1/recommendations", http.StatusBadRequest)
	metrics := string(getBody(t, n.base+"/metrics"))
	for _, want := range []string{
		`sightline_slo_requests_total{result="bad",slo="availability"} ` + strconv.FormatInt(failed+2, 10),
		`sightline_slo_requests_total{result="good",slo="availability"} ` + strconv.FormatInt(total-failed, 10),
		`sightline_slo_requests_total{result="good",slo="latency"} ` + strconv.FormatInt(total, 10),
		`sightline_slo_objective_ratio{slo="availability"} 0.999`,
		`sightline_slo_latency_threshold_seconds 3600`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	page := string(getBody(t, n.base+"/alerts"))
	if !strings.Contains(page, `id="slos"`) || !strings.Contains(page, `class="tag firing" data-alert="SLOFastBurn"`) {
		t.Error("the console's Alerts page has no SLOs panel with SLOFastBurn firing")
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	if err := json.Unmarshal(getBody(t, url), v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
