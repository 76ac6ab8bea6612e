package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/api"
	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
)

func TestRecommendPOST(t *testing.T) {
	e := newEnv(t, nil)
	resp, body := e.do(t, "POST", "/v1/recommendations",
		`{"user_id":"u1","count":2,"context":{"channel":"home","session_id":"s1","page":"/"},"exclude_item_ids":["x"]}`,
		"X-Request-ID", "req-1")
	if resp.StatusCode != 200 {
		t.Fatalf("POST /v1/recommendations status = %d, want 200; body %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-Request-ID"); got != "req-1" {
		t.Errorf("X-Request-ID = %q, want %q", got, "req-1")
	}
	want := `{"request_id":"req-1","variant":"control","model_version":"ftrl-3","fallback":null,"items":[` +
		`{"item_id":"item-0","score":0.5,"reason":"model"},{"item_id":"item-1","score":0.3333333333333333,"reason":"model"}]}` + "\n"
	if string(body) != want {
		t.Errorf("POST /v1/recommendations body = %s, want %s", body, want)
	}
	wantReq := engine.Request{RequestID: "req-1", UserID: "u1", Count: 2, Channel: "home", SessionID: "s1", Page: "/", Exclude: []string{"x"}}
	if diff := cmp.Diff(wantReq, e.rec.lastRequest()); diff != "" {
		t.Errorf("engine request mismatch (-want +got):\n%s", diff)
	}
}

func TestRecommendDefaultsAndFallback(t *testing.T) {
	e := newEnv(t, nil)
	e.rec.fallback = engine.ReasonModelTimeout
	resp, body := e.do(t, "POST", "/v1/recommendations", `{"user_id":"u1"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d, want 200; body %s", resp.StatusCode, body)
	}
	var got struct {
		RequestID string `json:"request_id"`
		Fallback  *struct{ Reason, Detail string }
		Items     []json.RawMessage
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("response %s: %v", body, err)
	}
	if len(got.Items) != 10 {
		t.Errorf("default count: got %d items, want 10", len(got.Items))
	}
	if got.Fallback == nil || got.Fallback.Reason != "model_timeout" || got.Fallback.Detail == "" {
		t.Errorf("fallback = %+v, want reason model_timeout with a detail", got.Fallback)
	}
	if len(got.RequestID) != 16 || resp.Header.Get("X-Request-ID") != got.RequestID {
		t.Errorf("generated request id = %q (header %q), want 16 hex digits echoed", got.RequestID, resp.Header.Get("X-Request-ID"))
	}
}

func TestRecommendGET(t *testing.T) {
	e := newEnv(t, nil)
	resp, body := e.do(t, "GET", "/v1/users/a%2Fb/recommendations?count=3&channel=email&exclude_item_ids=i1,i2", "")
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d, want 200; body %s", resp.StatusCode, body)
	}
	want := engine.Request{RequestID: resp.Header.Get("X-Request-ID"), UserID: "a/b", Count: 3, Channel: "email", Exclude: []string{"i1", "i2"}}
	if diff := cmp.Diff(want, e.rec.lastRequest()); diff != "" {
		t.Errorf("engine request mismatch (-want +got):\n%s", diff)
	}
}

func TestInvalidRequestIDHeaderIsReplaced(t *testing.T) {
	e := newEnv(t, nil)
	for _, h := range []string{"has space", strings.Repeat("a", 65), "semi;colon"} {
		resp, _ := e.do(t, "GET", "/healthz", "", "X-Request-ID", h)
		if got := resp.Header.Get("X-Request-ID"); got == h || len(got) != 16 {
			t.Errorf("X-Request-ID %q echoed as %q, want a generated 16-digit id", h, got)
		}
	}
}

func TestEvents(t *testing.T) {
	var stamped atomic.Int32
	e := newEnv(t, func(c *api.Config) {
		c.OnEvents = func(_ context.Context, evs []event.Event) {
			for i := range evs {
				evs[i].TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
			}
			stamped.Add(int32(len(evs)))
		}
	})
	before := time.Now().UTC()
	body := `[
		{"event_id":"e1","type":"click","user_id":"u1","item_id":"i1","request_id":"r1","channel":"home","timestamp":"2026-01-02T03:04:05Z","dwell_ms":1200},
		{"event_id":"e2","type":"impression","user_id":"u1","item_id":"i1"},
		{"event_id":"e3","type":"like","user_id":"u1","item_id":"i1"},
		{"event_id":"e4","type":"click","user_id":"u1"},
		{"event_id":"e5","type":"click","user_id":"u1","item_id":"i1","colour":"red"},
		{"event_id":"e6","type":"click","user_id":"u1","item_id":"i1","dwell_ms":"long"},
		{"event_id":"e7","type":"click","user_id":"u1","item_id":"i1","timestamp":"yesterday"},
		{"event_id":"e8","type":"click","user_id":"u1","item_id":"i1","channel":"Home Page"},
		{"event_id":"e1","type":"click","user_id":"u1","item_id":"i1"}
	]`
	resp, got := e.do(t, "POST", "/v1/events", body)
	if resp.StatusCode != 202 {
		t.Fatalf("POST /v1/events status = %d, want 202; body %s", resp.StatusCode, got)
	}
	var res struct {
		Accepted, Duplicates int
		Rejected             []api.Rejection
	}
	if err := json.Unmarshal(got, &res); err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 3 || res.Duplicates != 1 {
		t.Errorf("accepted, duplicates = %d, %d, want 3, 1", res.Accepted, res.Duplicates)
	}
	wantIdx := []int{2, 3, 4, 5, 6, 7}
	wantFrag := []string{`field type: unknown event type "like"`, "item_id: missing required field", `unknown field "colour"`,
		"field dwell_ms: expected number, got string", "field timestamp: expected an RFC 3339 time", "channel must contain only lowercase"}
	if len(res.Rejected) != len(wantIdx) {
		t.Fatalf("rejected = %+v, want indexes %v", res.Rejected, wantIdx)
	}
	for i, r := range res.Rejected {
		if r.Index != wantIdx[i] || !strings.Contains(r.Error, wantFrag[i]) {
			t.Errorf("rejected[%d] = %+v, want index %d with %q", i, r, wantIdx[i], wantFrag[i])
		}
	}
	evs := e.pub.events()
	if len(evs) != 2 || stamped.Load() != 3 {
		t.Fatalf("published %d distinct events (%d stamped), want 2 (3 stamped)", len(evs), stamped.Load())
	}
	if want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC); !evs[0].Timestamp.Equal(want) || evs[0].Type != event.Click || evs[0].DwellMS != 1200 {
		t.Errorf("event e1 = %+v, want a click at %v with dwell 1200", evs[0], want)
	}
	if ts := evs[1].Timestamp; ts.Before(before) || ts.After(time.Now().UTC()) {
		t.Errorf("event e2 timestamp = %v, want server time (missing in the request)", ts)
	}
	if evs[1].TraceParent == "" {
		t.Errorf("event e2 TraceParent is empty, want OnEvents to stamp it before Publish")
	}
}

func TestEventsPublishFailure(t *testing.T) {
	tests := []struct {
		name, err, detail string
		fail              error
	}{
		{name: "bus error", fail: errBusDown, err: "bus down", detail: "could not all be stored durably, though some may have been; retry the whole batch"},
		{
			name: "not acknowledged in time", fail: fmt.Errorf("append: 3 of 3 events unacknowledged: %w", context.DeadlineExceeded),
			err: "unacknowledged", detail: "did not acknowledge the events in time; some of them may be stored all the same; retry the whole batch",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.pub.fail = tt.fail
			resp, body := e.do(t, "POST", "/v1/events", `[{"event_id":"e1","type":"click","user_id":"alice@example.com","item_id":"i1"}]`)
			if logs := e.logs.String(); !strings.Contains(logs, tt.err) || strings.Contains(logs, "alice") {
				t.Errorf("logs = %s, want the publish error without the user id", logs)
			}
			p := checkProblem(t, resp, body, 503, "unavailable", tt.detail)
			if resp.Header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After; problem %+v", p)
			}
			if bytes.Contains(body, []byte(`"accepted"`)) || strings.Contains(p.Detail, "none") {
				t.Errorf("503 body claims acceptance, or that none were stored: %s", body)
			}
		})
	}
}

func TestEventsEmptyBatch(t *testing.T) {
	e := newEnv(t, nil)
	resp, body := e.do(t, "POST", "/v1/events", `[]`)
	if resp.StatusCode != 202 || string(body) != `{"accepted":0,"duplicates":0,"rejected":[]}`+"\n" {
		t.Errorf("POST /v1/events [] = %d %s, want 202 with nothing accepted", resp.StatusCode, body)
	}
}

func TestCatalog(t *testing.T) {
	e := newEnv(t, nil)
	resp, body := e.do(t, "PUT", "/v1/users/u%201", `{"user_id":"u 1","segment":"sports","attributes":{"k":"v"}}`)
	if resp.StatusCode != 204 {
		t.Fatalf("PUT user status = %d, want 204; body %s", resp.StatusCode, body)
	}
	resp, body = e.do(t, "PUT", "/v1/items/i1", `{"category":"shoes","tags":["red"]}`)
	if resp.StatusCode != 204 {
		t.Fatalf("PUT item status = %d, want 204; body %s", resp.StatusCode, body)
	}
	resp, _ = e.do(t, "PUT", "/v1/items/i2", `{"category":"shoes","available":false}`)
	if resp.StatusCode != 204 {
		t.Fatalf("PUT item i2 status = %d, want 204", resp.StatusCode)
	}
	u := e.cat.users["u 1"]
	if u.Segment != "sports" || u.Attrs["k"] != "v" || u.UpdatedAt.IsZero() {
		t.Errorf("stored user = %+v, want segment sports, attribute k=v, an update time", u)
	}
	want := map[string]event.Item{
		"i1": {ID: "i1", Category: "shoes", Tags: []string{"red"}, Available: true},
		"i2": {ID: "i2", Category: "shoes", Available: false},
	}
	if diff := cmp.Diff(want, e.cat.items); diff != "" {
		t.Errorf("stored items mismatch (-want +got):\n%s", diff)
	}
}

func TestImport(t *testing.T) {
	e := newEnv(t, nil)
	ndjson := `{"user_id":"u1","segment":"a"}` + "\n" + `{"segment":"no id"}` + "\n\n" + `{"user_id":"u2"}` + "\n"
	resp, body := e.do(t, "POST", "/v1/users:import", ndjson)
	if resp.StatusCode != 200 {
		t.Fatalf("import status = %d, want 200; body %s", resp.StatusCode, body)
	}
	var res api.ImportResult
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	want := api.ImportResult{Imported: 2, Rejected: 1, Errors: []api.LineError{{Line: 2, Error: "user_id: missing required field"}}}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("import result mismatch (-want +got):\n%s", diff)
	}
	// The literal "users:import" segment is not a user id.
	if len(e.cat.users) != 2 {
		t.Errorf("users stored = %d, want 2", len(e.cat.users))
	}
	resp, body = e.do(t, "POST", "/v1/items:import", `{"item_id":"i1","category":"c"}`+"\n")
	if resp.StatusCode != 200 || e.cat.items["i1"].Category != "c" {
		t.Errorf("items import = %d %s, want 200 and item i1 stored", resp.StatusCode, body)
	}
	// And PUT to a user literally named "users:import" is a user write.
	resp, _ = e.do(t, "PUT", "/v1/users/users:import", `{}`)
	if _, ok := e.cat.users["users:import"]; resp.StatusCode != 204 || !ok {
		t.Errorf("PUT /v1/users/users:import = %d, want 204 storing that user", resp.StatusCode)
	}
}

func TestImportTooLarge(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.MaxImportBytes = 100 })
	resp, body := e.do(t, "POST", "/v1/users:import", strings.Repeat(`{"user_id":"u1"}`+"\n", 20))
	checkProblem(t, resp, body, 413, "payload-too-large", "request body exceeds 100 bytes")
}

func TestDecisionAndStats(t *testing.T) {
	e := newEnv(t, nil)
	e.do(t, "POST", "/v1/recommendations", `{"user_id":"u1","count":1}`, "X-Request-ID", "abc.1")
	resp, body := e.do(t, "GET", "/v1/decisions/abc.1", "")
	if resp.StatusCode != 200 {
		t.Fatalf("GET decision = %d, want 200; %s", resp.StatusCode, body)
	}
	var d engine.Decision
	if err := json.Unmarshal(body, &d); err != nil || d.RequestID != "abc.1" || len(d.Items) != 1 {
		t.Errorf("decision = %+v (err %v), want request abc.1 with one item", d, err)
	}
	resp, body = e.do(t, "GET", "/v1/decisions/nope", "")
	checkProblem(t, resp, body, 404, "not-found", `no decision with request_id "nope"`)

	resp, body = e.do(t, "GET", "/v1/stats", "")
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"requests_per_second":10.5`)) {
		t.Errorf("GET /v1/stats = %d %s, want 200 with the stats", resp.StatusCode, body)
	}
}

func TestHealthReadyAndSpec(t *testing.T) {
	var ready atomic.Bool
	e := newEnv(t, func(c *api.Config) {
		c.Ready = func(context.Context) error {
			if !ready.Load() {
				return fmt.Errorf("model not loaded")
			}
			return nil
		}
	})
	resp, body := e.do(t, "GET", "/healthz", "")
	if resp.StatusCode != 200 || string(body) != `{"status":"ok"}`+"\n" {
		t.Errorf("GET /healthz = %d %s, want 200 {\"status\":\"ok\"}", resp.StatusCode, body)
	}
	resp, body = e.do(t, "GET", "/readyz", "")
	checkProblem(t, resp, body, 503, "unavailable", "not ready: model not loaded")
	ready.Store(true)
	if resp, _ = e.do(t, "GET", "/readyz", ""); resp.StatusCode != 200 {
		t.Errorf("GET /readyz when ready = %d, want 200", resp.StatusCode)
	}
	resp, body = e.do(t, "GET", "/openapi.json", "")
	var spec map[string]any
	if resp.StatusCode != 200 || json.Unmarshal(body, &spec) != nil || spec["openapi"] != "3.1.0" {
		t.Errorf("GET /openapi.json = %d, openapi %v; want 200 and an OpenAPI 3.1.0 document", resp.StatusCode, spec["openapi"])
	}
}

func TestMissingDependenciesAnswer501(t *testing.T) {
	rec := &fakeRecommender{}
	s, err := api.New(api.Config{Recommender: rec})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{rec: rec}
	e.srv = newServer(t, s)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/events", "[]"}, {"PUT", "/v1/users/u1", "{}"}, {"PUT", "/v1/items/i1", "{}"},
		{"POST", "/v1/users:import", ""}, {"POST", "/v1/items:import", ""}, {"GET", "/v1/stats", ""},
	} {
		resp, body := e.do(t, c.method, c.path, c.body)
		checkProblem(t, resp, body, 501, "not-implemented", "this node does not serve")
	}
}

func TestNewValidates(t *testing.T) {
	rec := &fakeRecommender{}
	tests := []struct {
		name string
		cfg  api.Config
	}{
		{"no recommender", api.Config{}},
		{"negative body", api.Config{Recommender: rec, MaxBodyBytes: -1}},
		{"conflicting mount", api.Config{Recommender: rec, Mount: map[string]http.Handler{"POST /v1/events": http.NotFoundHandler()},
			Access: api.AccessConfig{MountScopes: map[string]api.Scope{"POST /v1/events": api.ScopeIngest}}}},
		{"bad mount pattern", api.Config{Recommender: rec, Mount: map[string]http.Handler{"GET metrics": http.NotFoundHandler()},
			Access: api.AccessConfig{MountScopes: map[string]api.Scope{"GET metrics": api.ScopeRead}}}},
		{"nil mount", api.Config{Recommender: rec, Mount: map[string]http.Handler{"/metrics": nil}}},
		{"mount without a scope", api.Config{Recommender: rec, Mount: map[string]http.Handler{"GET /metrics": http.NotFoundHandler()}}},
		{"mount with an unknown scope", api.Config{Recommender: rec, Mount: map[string]http.Handler{"GET /metrics": http.NotFoundHandler()},
			Access: api.AccessConfig{MountScopes: map[string]api.Scope{"GET /metrics": "everything"}}}},
	}
	for _, tt := range tests {
		if s, err := api.New(tt.cfg); err == nil || s != nil {
			t.Errorf("New(%s) = %v, %v; want nil and an error", tt.name, s, err)
		}
	}
}

func TestMountAndMiddleware(t *testing.T) {
	var patterns []string
	var ids []string
	e := newEnv(t, func(c *api.Config) {
		c.Mount = map[string]http.Handler{"GET /metrics": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("metrics")) // a failed write is the client's error to report
		})}
		c.Access.MountScopes = map[string]api.Scope{"GET /metrics": api.ScopeRead}
		c.Middleware = func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				patterns = append(patterns, r.Pattern)
				ids = append(ids, api.RequestIDFromContext(r.Context()))
				next.ServeHTTP(w, r)
			})
		}
	})
	e.do(t, "GET", "/v1/users/u1/recommendations", "", "X-Request-ID", "mw-1")
	resp, body := e.do(t, "GET", "/metrics", "")
	if string(body) != "metrics" || resp.StatusCode != 200 {
		t.Errorf("GET /metrics = %d %s, want the mounted handler", resp.StatusCode, body)
	}
	if diff := cmp.Diff([]string{"GET /v1/users/{user_id}/recommendations"}, patterns); diff != "" {
		t.Errorf("middleware saw patterns (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"mw-1"}, ids); diff != "" {
		t.Errorf("middleware saw request ids (-want +got):\n%s", diff)
	}
}

func TestPanicBecomes500AndIsLogged(t *testing.T) {
	e := newEnv(t, nil)
	resp, body := e.do(t, "POST", "/v1/recommendations", `{"user_id":"boom"}`)
	checkProblem(t, resp, body, 500, "internal", "has been logged")
	logs := e.logs.String()
	if !strings.Contains(logs, "fake recommender exploded") || !strings.Contains(logs, `"route":"POST /v1/recommendations"`) {
		t.Errorf("logs = %s, want the panic with its route", logs)
	}
	// The server keeps serving.
	if resp, _ := e.do(t, "GET", "/healthz", ""); resp.StatusCode != 200 {
		t.Errorf("GET /healthz after panic = %d, want 200", resp.StatusCode)
	}
}

func TestCanceledRecommendation(t *testing.T) {
	s, err := api.New(api.Config{Recommender: &fakeRecommender{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", "/v1/recommendations", strings.NewReader(`{"user_id":"u1"}`))
	w := &recorder{h: http.Header{}}
	s.ServeHTTP(w, req)
	if w.code != 503 || w.h.Get("Content-Type") != "application/problem+json" {
		t.Errorf("canceled request = %d %s, want 503 problem", w.code, w.h.Get("Content-Type"))
	}
}

// recorder is a minimal ResponseWriter for calls without a network.
type recorder struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) WriteHeader(c int) {
	if r.code == 0 {
		r.code = c
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return r.body.Write(b)
}

func TestConcurrentRecommendations(t *testing.T) {
	e := newEnv(t, nil)
	errs := make(chan error, 20)
	for g := range 20 {
		go func() {
			for i := range 10 {
				id := fmt.Sprintf("g%d-%d", g, i)
				req, _ := http.NewRequest("POST", e.srv.URL+"/v1/recommendations", strings.NewReader(fmt.Sprintf(`{"user_id":"u%d","count":%d}`, g, i+1)))
				req.Header.Set("X-Request-ID", id)
				resp, err := e.srv.Client().Do(req)
				if err != nil {
					errs <- err
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var got struct {
					RequestID string            `json:"request_id"`
					Items     []json.RawMessage `json:"items"`
				}
				if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 || got.RequestID != id || len(got.Items) != i+1 {
					errs <- fmt.Errorf("request %s = %d %s, want 200 with %d items", id, resp.StatusCode, body, i+1)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 20 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestRecommendKeepsConnection: recommendation answers on one keep-alive
// connection, each with a current Date, whether the body of declared
// length ends at the JSON value or after white space.
func TestRecommendKeepsConnection(t *testing.T) {
	e := newEnv(t, nil)
	c, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i, body := range []string{`{"user_id":"u1","count":2}`, `{"user_id":"u2"}` + " \n\t ", `{"user_id":"u3","count":1}`} {
		before := time.Now().Truncate(time.Second)
		fmt.Fprintf(c, "POST /v1/recommendations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on the kept connection: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("request %d: status %d, close %v, body %s; want 200 on a kept connection", i, resp.StatusCode, resp.Close, b)
		}
		date, err := http.ParseTime(resp.Header.Get("Date"))
		if err != nil || date.Before(before) || date.After(time.Now()) {
			t.Errorf("request %d: Date %q (%v), want a time from %v to now", i, resp.Header.Get("Date"), err, before)
		}
	}
}
