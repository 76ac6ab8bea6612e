package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sightline/sightline/internal/api"
)

func newServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(checked(t, h))
	t.Cleanup(srv.Close)
	return srv
}

// checkProblem checks that a response is an RFC 9457 problem with the
// given status, type slug and a detail containing detail.
func checkProblem(t testing.TB, resp *http.Response, body []byte, status int, slug, detail string) api.Problem {
	t.Helper()
	var p api.Problem
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json (body %s)", ct, body)
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem body %s: %v", body, err)
	}
	if resp.StatusCode != status || p.Status != status {
		t.Errorf("status = %d (problem %d), want %d; detail %q", resp.StatusCode, p.Status, status, p.Detail)
	}
	if want := "https://sightline.dev/problems/" + slug; p.Type != want {
		t.Errorf("problem type = %q, want %q", p.Type, want)
	}
	if p.Title == "" || p.Instance == "" || p.RequestID != resp.Header.Get("X-Request-ID") {
		t.Errorf("problem = %+v, want a title, an instance and the request id %q", p, resp.Header.Get("X-Request-ID"))
	}
	if !strings.Contains(p.Detail, detail) {
		t.Errorf("problem detail = %q, want it to contain %q", p.Detail, detail)
	}
	return p
}

func TestBadInputs(t *testing.T) {
	bigEvents := "[" + strings.Repeat(`{"event_id":"e","type":"click","user_id":"u","item_id":"i"},`, 1000) +
		`{"event_id":"e","type":"click","user_id":"u","item_id":"i"}]`
	tests := []struct {
		name, method, path, body string
		status                   int
		slug, detail             string
	}{
		{"malformed json", "POST", "/v1/recommendations", `{"user_id":`, 400, "invalid-request", "malformed JSON: the request body ends before"},
		{"syntax error", "POST", "/v1/recommendations", `{"user_id" "u1"}`, 400, "invalid-request", "malformed JSON at byte offset"},
		{"wrong type", "POST", "/v1/recommendations", `{"user_id":"u1","count":"5"}`, 400, "invalid-request", "field count: expected number, got string"},
		{"fractional count", "POST", "/v1/recommendations", `{"user_id":"u1","count":1.5}`, 400, "invalid-request", "field count: expected an integer in range, got number 1.5"},
		{"nested wrong type", "POST", "/v1/recommendations", `{"user_id":"u1","context":{"channel":7}}`, 400, "invalid-request", "field context.channel: expected string, got number"},
		{"unknown field", "POST", "/v1/recommendations", `{"user_id":"u1","colour":"red"}`, 400, "invalid-request", `unknown field "colour" in request body`},
		{"count 0", "POST", "/v1/recommendations", `{"user_id":"u1","count":0}`, 400, "invalid-request", "count must be between 1 and 100, got 0"},
		{"count 101", "POST", "/v1/recommendations", `{"user_id":"u1","count":101}`, 400, "invalid-request", "count must be between 1 and 100, got 101"},
		{"count 500", "POST", "/v1/recommendations", `{"user_id":"u1","count":500}`, 400, "invalid-request", "count must be between 1 and 100, got 500"},
		{"missing user", "POST", "/v1/recommendations", `{"count":5}`, 400, "invalid-request", "user_id is required"},
		{"long user", "POST", "/v1/recommendations", `{"user_id":"` + strings.Repeat("u", 129) + `"}`, 400, "invalid-request", "user_id must be at most 128 bytes, got 129"},
		{"control char user", "POST", "/v1/recommendations", `{"user_id":"a\u0000b"}`, 400, "invalid-request", "user_id must be valid UTF-8 without control characters"},
		{"bad channel", "POST", "/v1/recommendations", `{"user_id":"u1","context":{"channel":"Home!"}}`, 400, "invalid-request", "context.channel must contain only lowercase letters"},
		{"long channel", "POST", "/v1/recommendations", `{"user_id":"u1","context":{"channel":"` + strings.Repeat("c", 65) + `"}}`, 400, "invalid-request", "context.channel must be at most 64 bytes"},
		{"too many excludes", "POST", "/v1/recommendations", `{"user_id":"u1","exclude_item_ids":[` + strings.Repeat(`"i",`, 500) + `"i"]}`, 400, "invalid-request", "exclude_item_ids may hold at most 500 ids, got 501"},
		{"empty exclude id", "POST", "/v1/recommendations", `{"user_id":"u1","exclude_item_ids":["a",""]}`, 400, "invalid-request", "exclude_item_ids[1] is required"},
		{"empty body", "POST", "/v1/recommendations", ``, 400, "invalid-request", "request body is empty"},
		{"trailing garbage", "POST", "/v1/recommendations", `{"user_id":"u1"} xyz`, 400, "invalid-request", "unexpected data after the JSON value"},
		{"two objects", "POST", "/v1/recommendations", `{"user_id":"u1"}{"user_id":"u2"}`, 400, "invalid-request", "unexpected data after the JSON value"},
		{"array instead of object", "POST", "/v1/recommendations", `[1]`, 400, "invalid-request", "request body must be a JSON object, got array"},
		{"oversized body", "POST", "/v1/recommendations", `{"user_id":"` + strings.Repeat("u", 1<<20) + `"}`, 413, "payload-too-large", "request body exceeds 1048576 bytes"},
		{"get bad count", "GET", "/v1/users/u1/recommendations?count=abc", "", 400, "invalid-request", `count must be an integer between 1 and 100, got "abc"`},
		{"get count 0", "GET", "/v1/users/u1/recommendations?count=0", "", 400, "invalid-request", "count must be between 1 and 100, got 0"},
		{"get unknown param", "GET", "/v1/users/u1/recommendations?colour=red", "", 400, "invalid-request", `unknown query parameter "colour"`},
		{"get bad channel", "GET", "/v1/users/u1/recommendations?channel=A%20B", "", 400, "invalid-request", "channel must contain only lowercase letters"},
		{"get long user id", "GET", "/v1/users/" + strings.Repeat("u", 129) + "/recommendations", "", 400, "invalid-request", "user_id must be at most 128 bytes"},
		{"events not array", "POST", "/v1/events", `{"event_id":"e1"}`, 400, "invalid-request", "request body must be a JSON array of events, got object"},
		{"events array of numbers", "POST", "/v1/events", `[1,2]`, 400, "invalid-request", "event 0: expected a JSON object, got number"},
		{"events null element", "POST", "/v1/events", `[null]`, 400, "invalid-request", "event 0: expected a JSON object, got null"},
		{"events malformed", "POST", "/v1/events", `[{"event_id":"e1",}]`, 400, "invalid-request", "malformed JSON at byte offset"},
		{"events empty body", "POST", "/v1/events", ``, 400, "invalid-request", "request body is empty"},
		{"events trailing garbage", "POST", "/v1/events", `[] []`, 400, "invalid-request", "unexpected data after the JSON array"},
		{"events batch 1001", "POST", "/v1/events", bigEvents, 413, "payload-too-large", "batch has more than 1000 events; send at most 1000"},
		{"events oversized", "POST", "/v1/events", `["` + strings.Repeat("x", 1<<20) + `"]`, 413, "payload-too-large", "request body exceeds 1048576 bytes"},
		{"put user id conflict", "PUT", "/v1/users/u1", `{"user_id":"u2"}`, 400, "invalid-request", "user_id in the body does not match the user_id in the path"},
		{"put user unknown field", "PUT", "/v1/users/u1", `{"segmnet":"a"}`, 400, "invalid-request", `unknown field "segmnet"`},
		{"put user long id", "PUT", "/v1/users/" + strings.Repeat("u", 129), `{}`, 400, "invalid-request", "user_id in the path must be at most 128 bytes"},
		{"put user control id", "PUT", "/v1/users/a%0Ab", `{}`, 400, "invalid-request", "user_id in the path must be valid UTF-8 without control characters"},
		{"put user too many attrs", "PUT", "/v1/users/u1", `{"attributes":{` + manyAttrs(33) + `}}`, 400, "invalid-request", "attributes: invalid value: at most 32"},
		{"put item missing category", "PUT", "/v1/items/i1", `{"tags":["a"]}`, 400, "invalid-request", "category: missing required field"},
		{"put item id conflict", "PUT", "/v1/items/i1", `{"item_id":"i2","category":"c"}`, 400, "invalid-request", "item_id in the body does not match"},
		{"put item wrong type", "PUT", "/v1/items/i1", `{"category":"c","available":"yes"}`, 400, "invalid-request", "field available: expected boolean, got string"},
		{"put item empty body", "PUT", "/v1/items/i1", ``, 400, "invalid-request", "request body is empty"},
		{"bad decision id", "GET", "/v1/decisions/a%20b", "", 400, "invalid-request", "request_id must be 1 to 64 characters"},
		{"unknown path", "GET", "/v2/nothing", "", 404, "not-found", "no route for GET /v2/nothing"},
		{"empty user id", "PUT", "/v1/users/", `{}`, 404, "not-found", "no route for PUT /v1/users/"},
		{"wrong method", "GET", "/v1/recommendations", "", 405, "method-not-allowed", "method GET is not allowed on /v1/recommendations; use POST"},
		{"wrong method import", "GET", "/v1/users:import", "", 405, "method-not-allowed", "use POST"},
		{"wrong method events", "DELETE", "/v1/events", "", 405, "method-not-allowed", "use POST"},
	}
	e := newEnv(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.do(t, tt.method, tt.path, tt.body)
			checkProblem(t, resp, body, tt.status, tt.slug, tt.detail)
			if tt.status == 405 && resp.Header.Get("Allow") == "" {
				t.Errorf("%s %s: 405 without an Allow header", tt.method, tt.path)
			}
		})
	}
	if n := len(e.pub.events()); n != 0 {
		t.Errorf("bad inputs published %d events, want 0", n)
	}
	if strings.Contains(e.logs.String(), "panic") {
		t.Errorf("bad inputs caused panics: %s", e.logs.String())
	}
}

func manyAttrs(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = `"k` + strings.Repeat("x", i) + `":"v"`
	}
	return strings.Join(parts, ",")
}
