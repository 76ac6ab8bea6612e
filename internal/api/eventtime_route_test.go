package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/api"
)

// TestEventTimesOnTheRoute: POST /v1/events judges timestamps by the
// configured clock and limits: out-of-bounds events are listed as rejected
// with the reason and not published; alone, one is a 400 problem.
func TestEventTimesOnTheRoute(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, func(c *api.Config) {
		c.Now = func() time.Time { return now }
		c.EventTimes = api.EventTimeLimits{MaxSkew: api.DefaultEventMaxSkew, MaxAge: api.DefaultEventMaxAge}
	})
	ev := func(id, ts string) string {
		return `{"event_id":"` + id + `","type":"click","user_id":"u","item_id":"i","timestamp":"` + ts + `"}`
	}
	body := "[" + strings.Join([]string{
		ev("future", "9999-12-31T23:59:59Z"), ev("zero", "0001-01-01T00:00:00Z"), ev("ok", "2026-12-06T11:00:00Z"),
		ev("skewed", "2026-12-06T12:06:00Z"), ev("old", "2026-11-28T12:00:00Z"),
	}, ",") + "]"
	resp, got := e.do(t, "POST", "/v1/events", body)
	if resp.StatusCode != 202 {
		t.Fatalf("POST /v1/events = %d %s, want 202", resp.StatusCode, got)
	}
	for _, want := range []string{
		`{"index":0,"error":"timestamp 9999-12-31T23:59:59Z is more than 5m0s ahead of the server's clock (2026-12-06T12:00:00Z)`,
		`{"index":1,"error":"timestamp 0001-01-01T00:00:00Z is the zero time`,
		`{"index":3,"error":"timestamp 2026-12-06T12:06:00Z is more than 5m0s ahead`,
		`{"index":4,"error":"timestamp 2026-11-28T12:00:00Z is more than 168h0m0s before the server's clock`,
		`"accepted":1`,
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("answer %s lacks %s", got, want)
		}
	}
	if evs := e.pub.events(); len(evs) != 1 || evs[0].ID != "ok" {
		t.Errorf("published %+v, want only the event in bounds", evs)
	}
	resp, got = e.do(t, "POST", "/v1/events", "["+ev("future", "9999-12-31T23:59:59Z")+"]")
	checkProblem(t, resp, got, 400, "invalid-request", "event 0: timestamp 9999-12-31T23:59:59Z is more than 5m0s ahead")
}
