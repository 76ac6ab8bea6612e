package app

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestEventTimesAreBounded: a node rejects events stamped far in the
// future or older than the event log keeps, by its own clock, and never
// logs or learns them.
func TestEventTimesAreBounded(t *testing.T) {
	n := startNode(t, Config{})
	now := time.Now().UTC()
	ev := func(id string, ts time.Time) string {
		return `{"event_id":"` + id + `","type":"impression","user_id":"u1","item_id":"i1","timestamp":"` + ts.Format(time.RFC3339Nano) + `"}`
	}
	body := "[" + strings.Join([]string{
		ev("future", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)), ev("zero", time.Time{}),
		ev("skewed", now.Add(10*time.Minute)), ev("old", now.Add(-8*24*time.Hour)), ev("ok", now.Add(-time.Hour)),
	}, ",") + "]"
	resp, err := http.Post(n.base+"/v1/events", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("POST /v1/events = %d, want 202", resp.StatusCode)
	}
	s := waitApplied(t, n.base)
	if s.EventsLogged != 1 || s.EventsApplied != 1 {
		t.Errorf("events logged %d, applied %d; want only the one in bounds", s.EventsLogged, s.EventsApplied)
	}
}
