package api

import (
	"strings"
	"testing"
	"time"
)

// TestEventTimeLimits decodes batches against an injected clock: events
// stamped too far ahead or too long ago are rejected one by one with the
// reason, the zero time always; events without a timestamp get the
// server's time.
func TestEventTimeLimits(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	lim := EventTimeLimits{MaxSkew: DefaultEventMaxSkew, MaxAge: DefaultEventMaxAge}
	ev := func(id, ts string) string {
		s := `{"event_id":"` + id + `","type":"click","user_id":"u","item_id":"i"`
		if ts != "" {
			s += `,"timestamp":` + ts
		}
		return s + "}"
	}
	tests := []struct {
		name, ts string
		lim      EventTimeLimits
		want     time.Time // zero: rejected
		reason   string
	}{
		{name: "now", ts: `"2026-12-06T12:00:00Z"`, lim: lim, want: now},
		{name: "absent", lim: lim, want: now},
		{name: "null", ts: `null`, lim: lim, want: now},
		{name: "at the skew", ts: `"2026-12-06T12:05:00Z"`, lim: lim, want: now.Add(5 * time.Minute)},
		{name: "past the skew", ts: `"2026-12-06T12:05:00.001Z"`, lim: lim, reason: "timestamp 2026-12-06T12:05:00.001Z is more than 5m0s ahead of the server's clock"},
		{name: "past the skew in another zone", ts: `"2026-12-06T13:06:00+01:00"`, lim: lim, reason: "more than 5m0s ahead of the server's clock"},
		{name: "year 9999", ts: `"9999-12-31T23:59:59Z"`, lim: lim, reason: "timestamp 9999-12-31T23:59:59Z is more than 5m0s ahead"},
		{name: "at the age", ts: `"2026-11-29T12:00:00Z"`, lim: lim, want: now.Add(-7 * 24 * time.Hour)},
		{name: "past the age", ts: `"2026-11-29T11:59:59Z"`, lim: lim, reason: "timestamp 2026-11-29T11:59:59Z is more than 168h0m0s before the server's clock"},
		{name: "zero time", ts: `"0001-01-01T00:00:00Z"`, lim: lim, reason: "timestamp 0001-01-01T00:00:00Z is the zero time"},
		{name: "zero time without limits", ts: `"0001-01-01T00:00:00Z"`, reason: "is the zero time"},
		{name: "year 9999 without limits", ts: `"9999-12-31T23:59:59Z"`, want: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
		{name: "custom skew", ts: `"2026-12-06T12:00:02Z"`, lim: EventTimeLimits{MaxSkew: time.Second}, reason: "more than 1s ahead"},
		{name: "custom age", ts: `"2026-12-06T10:00:00Z"`, lim: EventTimeLimits{MaxAge: time.Hour}, reason: "more than 1h0m0s before"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := "[" + ev("ok", "") + "," + ev("e", tt.ts) + "]"
			evs, rejected, p := decodeEventsWithin(strings.NewReader(body), 10, now, tt.lim)
			if p != nil {
				t.Fatalf("decodeEventsWithin(%s) problem = %q, want none", body, p.detail)
			}
			if tt.reason != "" {
				if len(evs) != 1 || len(rejected) != 1 || rejected[0].Index != 1 || !strings.Contains(rejected[0].Error, tt.reason) {
					t.Fatalf("decodeEventsWithin(%s) = %d events, rejected %+v; want event 1 rejected with %q", body, len(evs), rejected, tt.reason)
				}
				// One event alone is a problem with the same reason.
				_, _, p := decodeEventsWithin(strings.NewReader("["+ev("e", tt.ts)+"]"), 10, now, tt.lim)
				if p == nil || p.status != 400 || !strings.Contains(p.detail, "event 0: "+rejected[0].Error) {
					t.Errorf("a single rejected event: problem %+v, want a 400 with %q", p, rejected[0].Error)
				}
				return
			}
			if len(evs) != 2 || len(rejected) != 0 {
				t.Fatalf("decodeEventsWithin(%s) = %d events, rejected %+v; want both accepted", body, len(evs), rejected)
			}
			if got := evs[1].Timestamp; !got.Equal(tt.want) || got.Location() == absent {
				t.Errorf("event timestamp = %v (%v), want %v", got, got.Location(), tt.want)
			}
			if got := evs[0].Timestamp; !got.Equal(now) || got.Location() == absent {
				t.Errorf("event without a timestamp got %v, want the server's time %v", got, now)
			}
		})
	}
}

// TestEventTimeRejectionKeepsTheRest: a batch with events out of bounds
// keeps its other events, in order, and reports each rejected index.
func TestEventTimeRejectionKeepsTheRest(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	body := `[
		{"event_id":"a","type":"click","user_id":"u","item_id":"i","timestamp":"9999-12-31T23:59:59Z"},
		{"event_id":"b","type":"click","user_id":"u","item_id":"i","timestamp":"2026-12-06T11:59:00Z"},
		{"event_id":"c","type":"click","user_id":"u","item_id":"i","timestamp":"0001-01-01T00:00:00Z"},
		{"event_id":"d","type":"click","user_id":"u","item_id":"i"}
	]`
	evs, rejected, p := decodeEventsWithin(strings.NewReader(body), 10, now, EventTimeLimits{MaxSkew: DefaultEventMaxSkew, MaxAge: DefaultEventMaxAge})
	if p != nil {
		t.Fatalf("problem = %q", p.detail)
	}
	if len(evs) != 2 || evs[0].ID != "b" || evs[1].ID != "d" {
		t.Errorf("accepted %+v, want b and d", evs)
	}
	if len(rejected) != 2 || rejected[0].Index != 0 || rejected[1].Index != 2 {
		t.Errorf("rejected %+v, want events 0 and 2", rejected)
	}
}
