package telemetry

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestRoutePath(t *testing.T) {
	tel := newTest(t, Config{SampleRatio: -1})
	user := tel.Pseudonymize("+1 555 010 0199")
	tests := []struct {
		pattern, path, want string
	}{
		{"PUT /v1/users/{user_id}", "/v1/users/+1%20555%20010%200199", "/v1/users/" + user},
		{"GET /v1/users/{user_id}/recommendations", "/v1/users/+1%20555%20010%200199/recommendations", "/v1/users/" + user + "/recommendations"},
		{"PUT /v1/items/{item_id}", "/v1/items/alice@example.com", "/v1/items/{item_id}"},
		{"GET /v1/decisions/{request_id}", "/v1/decisions/r-15550100199", "/v1/decisions/{request_id}"},
		{"GET /files/{rest...}", "/files/a/b@example.com", "/files/{rest}"},
		{"GET /{$}", "/", "/"},
		{"POST /v1/recommendations", "/v1/recommendations", "/v1/recommendations"},
		{"GET example.com/x/{id}", "/x/1", "/x/{id}"},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			mux := http.NewServeMux()
			var got string
			mux.HandleFunc(tt.pattern, func(_ http.ResponseWriter, r *http.Request) { got = tel.RoutePath(r) })
			req := httptest.NewRequest("GET", tt.path, nil)
			req.Method = strings.Fields(tt.pattern)[0]
			if strings.HasPrefix(tt.pattern, "GET example.com") {
				req.Host = "example.com"
			}
			mux.ServeHTTP(httptest.NewRecorder(), req)
			if got != tt.want {
				t.Errorf("RoutePath(%s %s) = %q, want %q", tt.pattern, tt.path, got, tt.want)
			}
		})
	}
	if got := tel.RoutePath(httptest.NewRequest("GET", "/v1/users/alice", nil)); got != "" {
		t.Errorf("RoutePath(an unrouted request) = %q, want \"\"", got)
	}
}

// TestServerSpanHasNoRawIdentifiers: the live server span of a routed
// request carries the route and the pseudonymized path, never the raw
// path, query, client address, or personal data in the user agent or host.
func TestServerSpanHasNoRawIdentifiers(t *testing.T) {
	tel := newTest(t, Config{SampleRatio: 1})
	var seen trace.SpanContext
	mux := http.NewServeMux()
	mux.Handle("PUT /v1/users/{user_id}", tel.Server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = trace.SpanContextFromContext(r.Context())
		w.WriteHeader(http.StatusNoContent)
	})))
	req := httptest.NewRequest("PUT", "/v1/users/+15550100199?email=alice@example.com&uid=raw-user-7", strings.NewReader("{}"))
	req.Host = "alice@example.com:8080"
	req.Header.Set("User-Agent", "app/1.0 (alice@example.com; +1 555 010 0199)")
	req.RemoteAddr = "203.0.113.9:4711"
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent || !seen.IsValid() {
		t.Fatalf("status %d, span context %v; want 204 inside a span", rec.Code, seen)
	}
	tv, ok := tel.Flight().Trace(seen.TraceID().String())
	if !ok || len(tv.Spans) != 1 {
		t.Fatalf("trace %s kept = %v (%+v), want one server span", seen.TraceID(), ok, tv)
	}
	s := tv.Spans[0]
	want := map[string]any{
		"http.request.method":       "PUT",
		"http.route":                "/v1/users/{user_id}",
		"url.path":                  "/v1/users/" + tel.Pseudonymize("+15550100199"),
		"url.scheme":                "http",
		"http.response.status_code": int64(204),
		"server.address":            "[email]",
		"server.port":               int64(8080),
		"user_agent.original":       "app/1.0 ([email]; [phone])",
	}
	for k, v := range want {
		if s.Attributes[k] != v {
			t.Errorf("attribute %s = %v (%T), want %v", k, s.Attributes[k], s.Attributes[k], v)
		}
	}
	for k, v := range s.Attributes {
		if _, ok := want[k]; !ok && k != "network.protocol.version" {
			t.Errorf("unexpected attribute %s = %v", k, v)
		}
	}
	if s.Name != "PUT /v1/users/{user_id}" || s.Kind != "server" {
		t.Errorf("span %q kind %q, want PUT /v1/users/{user_id}, server", s.Name, s.Kind)
	}
}

// TestServerSpanOnPanic: a handler that panics still ends its span, as a
// 500 error, and the panic goes on to the recovering layer.
func TestServerSpanOnPanic(t *testing.T) {
	tel := newTest(t, Config{SampleRatio: 1})
	var seen trace.SpanContext
	h := tel.Server(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		seen = trace.SpanContextFromContext(r.Context())
		panic("boom")
	}))
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Errorf("recovered %v, want the handler's panic", v)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
	}()
	tv, ok := tel.Flight().Trace(seen.TraceID().String())
	if !ok || len(tv.Spans) != 1 {
		t.Fatalf("trace kept = %v (%+v), want the server span", ok, tv)
	}
	if s := tv.Spans[0]; s.Status.Code != "error" || s.Attributes["http.response.status_code"] != int64(500) {
		t.Errorf("span status %+v, code %v; want an error with 500", s.Status, s.Attributes["http.response.status_code"])
	}
}
