package api_test

import (
	"strings"
	"testing"
)

// TestInvalidUTF8IsRejected sends ids and text that are not UTF-8 (raw
// bytes, or lone surrogate escapes that encoding/json would turn into
// U+FFFD) in bodies, paths and query strings of every route that takes
// them: each is a 400 problem, and nothing is stored or published.
func TestInvalidUTF8IsRejected(t *testing.T) {
	const (
		notUTF8   = "request body is not valid UTF-8"
		surrogate = "request body has a lone UTF-16 surrogate"
		pathUTF8  = "must be valid UTF-8 without control characters"
	)
	event := func(field, v string) string {
		f := map[string]string{"event_id": `"e1"`, "type": `"click"`, "user_id": `"u1"`, "item_id": `"i1"`}
		f[field] = v
		return `[{"event_id":` + f["event_id"] + `,"type":` + f["type"] + `,"user_id":` + f["user_id"] + `,"item_id":` + f["item_id"] + `},` +
			`{"event_id":"e2","type":"click","user_id":"u1","item_id":"i1"}]`
	}
	tests := []struct {
		name, method, path, body, detail string
	}{
		{"recommend user raw", "POST", "/v1/recommendations", "{\"user_id\":\"u\xff1\"}", notUTF8 + ": byte 0xff at byte offset 13"},
		{"recommend user escape", "POST", "/v1/recommendations", `{"user_id":"u\ud8001"}`, surrogate + ` \ud800 at byte offset 13`},
		{"recommend low surrogate", "POST", "/v1/recommendations", `{"user_id":"\udc00"}`, surrogate + ` \udc00`},
		{"recommend exclude", "POST", "/v1/recommendations", "{\"user_id\":\"u1\",\"exclude_item_ids\":[\"\xc0\xaf\"]}", notUTF8},
		{"recommend session", "POST", "/v1/recommendations", "{\"user_id\":\"u1\",\"context\":{\"session_id\":\"\xed\xa0\x80\"}}", notUTF8},
		{"recommend cut at the end", "POST", "/v1/recommendations", "{\"user_id\":\"u1\xe6", notUTF8},
		{"recommend path user", "GET", "/v1/users/u%FF1/recommendations", "", "user_id " + pathUTF8},
		{"recommend query exclude", "GET", "/v1/users/u1/recommendations?exclude_item_ids=a,%C0%AF", "", "exclude_item_ids[1] " + pathUTF8},
		{"recommend query session", "GET", "/v1/users/u1/recommendations?session_id=%FF", "", "session_id " + pathUTF8},
		{"recommend query page", "GET", "/v1/users/u1/recommendations?page=%ED%A0%80", "", "page " + pathUTF8},
		{"put user path", "PUT", "/v1/users/%FF", `{}`, "user_id in the path " + pathUTF8},
		{"put user body id", "PUT", "/v1/users/u1", "{\"user_id\":\"u\xff\"}", notUTF8},
		{"put user segment", "PUT", "/v1/users/u1", `{"segment":"\udbff"}`, surrogate},
		{"put user attribute key", "PUT", "/v1/users/u1", "{\"attributes\":{\"k\xfe\":\"v\"}}", notUTF8},
		{"put user attribute value", "PUT", "/v1/users/u1", `{"attributes":{"k":"\ud83d"}}`, surrogate},
		{"put item path", "PUT", "/v1/items/i%FE", `{"category":"c"}`, "item_id in the path " + pathUTF8},
		{"put item category", "PUT", "/v1/items/i1", "{\"category\":\"c\x80\"}", notUTF8},
		{"put item category escape", "PUT", "/v1/items/i1", `{"category":"\udfff"}`, surrogate},
		{"put item tag", "PUT", "/v1/items/i1", `{"category":"c","tags":["\ud800\ud800"]}`, surrogate},
		{"event user", "POST", "/v1/events", event("user_id", "\"u\xff\""), notUTF8},
		{"event user escape", "POST", "/v1/events", event("user_id", `"\ud800"`), surrogate},
		{"event item", "POST", "/v1/events", event("item_id", "\"\xf8\x88\x80\x80\x80\""), notUTF8},
		{"event id", "POST", "/v1/events", event("event_id", `"e\udc01"`), surrogate},
		{"event request id", "POST", "/v1/events", `[{"event_id":"e1","type":"click","user_id":"u","item_id":"i","request_id":"r` + "\xff" + `"}]`, notUTF8},
		{"event in a later element", "POST", "/v1/events", `[{"event_id":"e1","type":"click","user_id":"u","item_id":"i"},{"event_id":"e2","type":"click","user_id":"u","item_id":"i","channel":"\ud800"}]`, surrogate},
		{"decision path", "GET", "/v1/decisions/r%FF", "", "request_id must be 1 to 64 characters"},
	}
	e := newEnv(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.do(t, tt.method, tt.path, tt.body)
			checkProblem(t, resp, body, 400, "invalid-request", tt.detail)
		})
	}
	if n := len(e.pub.events()); n != 0 {
		t.Errorf("invalid UTF-8 published %d events, want 0", n)
	}
	if len(e.cat.users) != 0 || len(e.cat.items) != 0 {
		t.Errorf("invalid UTF-8 stored users %v and items %v, want none", e.cat.users, e.cat.items)
	}
}

// TestValidUnicodeIsKept: ids in UTF-8 and in escapes (surrogate pairs
// included) are stored as sent.
func TestValidUnicodeIsKept(t *testing.T) {
	e := newEnv(t, nil)
	resp, body := e.do(t, "PUT", "/v1/users/j%C3%BCrgen-%F0%9F%98%80", `{"segment":"\ud83d\ude00-東京","attributes":{"名前":"\u00fc"}}`)
	if resp.StatusCode != 204 {
		t.Fatalf("PUT user = %d %s, want 204", resp.StatusCode, body)
	}
	u, ok := e.cat.users["jürgen-😀"]
	if !ok || u.Segment != "😀-東京" || u.Attrs["名前"] != "ü" {
		t.Errorf("stored users %+v, want jürgen-😀 with segment 😀-東京", e.cat.users)
	}
	resp, body = e.do(t, "POST", "/v1/events", `[{"event_id":"e-\u00e9","type":"click","user_id":"jürgen-\ud83d\ude00","item_id":"i1"}]`)
	if resp.StatusCode != 202 || !strings.Contains(string(body), `"accepted":1`) {
		t.Errorf("POST events = %d %s, want 202 with the event accepted", resp.StatusCode, body)
	}
	if evs := e.pub.events(); len(evs) != 1 || evs[0].ID != "e-é" || evs[0].UserID != "jürgen-😀" {
		t.Errorf("published %+v, want e-é of jürgen-😀", evs)
	}
}

// TestZeroTimeEvent: an event stamped with the zero time is rejected, not
// given the server's time; alone in its batch, it is a 400 problem.
func TestZeroTimeEvent(t *testing.T) {
	e := newEnv(t, nil)
	zero := `{"event_id":"e1","type":"click","user_id":"u","item_id":"i","timestamp":"0001-01-01T00:00:00Z"}`
	resp, body := e.do(t, "POST", "/v1/events", "["+zero+"]")
	checkProblem(t, resp, body, 400, "invalid-request", "event 0: timestamp 0001-01-01T00:00:00Z is the zero time")
	resp, body = e.do(t, "POST", "/v1/events", "["+zero+`,{"event_id":"e2","type":"click","user_id":"u","item_id":"i"}]`)
	if resp.StatusCode != 202 || !strings.Contains(string(body), `"rejected":[{"index":0,"error":"timestamp 0001-01-01T00:00:00Z is the zero time`) {
		t.Errorf("POST events = %d %s, want 202 with event 0 rejected", resp.StatusCode, body)
	}
	if evs := e.pub.events(); len(evs) != 1 || evs[0].ID != "e2" {
		t.Errorf("published %+v, want only e2", evs)
	}
}
