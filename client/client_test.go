package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/api/apitest"
)

// captured is what the test server saw of one request.
type captured struct {
	Method, Path, ContentType, UserAgent, TraceParent string
	Body                                              string
}

// newServer starts a server that records the request and answers with
// status and body. The client's transport checks every request it sends
// and every response it reads against the API's OpenAPI document
// (internal/api/openapi.json): the canned answers are held to it as the
// client's requests are.
func newServer(t *testing.T, status int, ctype, body string) (*client.Client, *captured) {
	t.Helper()
	return newServerChecking(t, apitest.Requests|apitest.Responses, status, ctype, body)
}

// newServerChecking is newServer checking only what checks says, for
// answers that are off the document on purpose (a proxy's error page, a
// truncated body).
func newServerChecking(t *testing.T, checks apitest.Check, status int, ctype, body string) (*client.Client, *captured) {
	t.Helper()
	var got captured
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = captured{
			Method: r.Method, Path: r.URL.EscapedPath(), ContentType: r.Header.Get("Content-Type"),
			UserAgent: r.Header.Get("User-Agent"), TraceParent: r.Header.Get("Traceparent"), Body: string(b),
		}
		w.Header().Set("X-Request-ID", "req-1")
		if ctype != "" {
			w.Header().Set("Content-Type", ctype)
		}
		w.WriteHeader(status)
		// A failed write is the client's error to report.
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL+"/", client.WithHTTPClient(&http.Client{Transport: validator(t).Transport(t, nil, checks)}))
	if err != nil {
		t.Fatalf("New(%q) error = %v", srv.URL, err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c, &got
}

// validator returns the checker of the API's OpenAPI document.
func validator(t *testing.T) *apitest.Validator {
	t.Helper()
	v, err := apitest.Default()
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return v
}

// example returns the example body of a schema of the OpenAPI document.
func example(t *testing.T, schema string) string {
	t.Helper()
	b, err := validator(t).Example(schema)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "localhost:8080", "ftp://x", "http://", "::"} {
		if _, err := client.New(u); err == nil {
			t.Errorf("New(%q) error = nil, want an error", u)
		}
	}
}

func TestRecommend(t *testing.T) {
	c, got := newServer(t, 200, "application/json", `{"request_id":"r1","variant":"b","model_version":"m7",
		"fallback":{"reason":"model_timeout","detail":"model took too long"},
		"items":[{"item_id":"i1","score":0.5,"reason":"popular"}]}`)
	rec, err := c.Recommend(context.Background(), client.RecommendRequest{
		UserID: "u1", Count: 3, Context: client.Context{Channel: "home"}, ExcludeItemIDs: []string{"i9"},
	})
	if err != nil {
		t.Fatalf("Recommend() error = %v", err)
	}
	want := &client.Recommendation{
		RequestID: "r1", Variant: "b", ModelVersion: "m7",
		Fallback: &client.Fallback{Reason: "model_timeout", Detail: "model took too long"},
		Items:    []client.ScoredItem{{ItemID: "i1", Score: 0.5, Reason: "popular"}},
	}
	if diff := cmp.Diff(want, rec); diff != "" {
		t.Errorf("Recommend() mismatch (-want +got):\n%s", diff)
	}
	wantReq := captured{
		Method: "POST", Path: "/v1/recommendations", ContentType: "application/json", UserAgent: "sightline-go-client",
		Body: `{"user_id":"u1","count":3,"context":{"channel":"home"},"exclude_item_ids":["i9"]}`,
	}
	if diff := cmp.Diff(wantReq, *got); diff != "" {
		t.Errorf("Recommend() request mismatch (-want +got):\n%s", diff)
	}
}

func TestRecommendOmitsEmptyFields(t *testing.T) {
	c, got := newServer(t, 200, "application/json", `{"request_id":"r1","variant":"control","model_version":"m1","fallback":null,"items":[]}`)
	rec, err := c.Recommend(context.Background(), client.RecommendRequest{UserID: "u1"})
	if err != nil {
		t.Fatalf("Recommend() error = %v", err)
	}
	if rec.Fallback != nil {
		t.Errorf("Recommend().Fallback = %v, want nil", rec.Fallback)
	}
	if want := `{"user_id":"u1"}`; got.Body != want {
		t.Errorf("Recommend() body = %s, want %s", got.Body, want)
	}
}

func TestSendEvents(t *testing.T) {
	// The second event has no item id, on purpose: the server rejects it
	// by index (the request is off the document's Event schema, so only
	// the answer is checked).
	c, got := newServerChecking(t, apitest.Responses, 202, "application/json",
		`{"accepted":1,"duplicates":1,"rejected":[{"index":1,"error":"item_id: missing required field"}]}`)
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	res, err := c.SendEvents(context.Background(), []client.Event{
		{EventID: "e1", Type: client.TypeClick, UserID: "u1", ItemID: "i1", RequestID: "r1", Timestamp: ts, DwellMS: 1500},
		{EventID: "e2", Type: client.TypeImpression, UserID: "u1"},
	})
	if err != nil {
		t.Fatalf("SendEvents() error = %v", err)
	}
	want := &client.EventsResult{Accepted: 1, Duplicates: 1,
		Rejected: []client.Rejection{{Index: 1, Error: "item_id: missing required field"}}}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("SendEvents() mismatch (-want +got):\n%s", diff)
	}
	wantBody := `[{"event_id":"e1","type":"click","user_id":"u1","item_id":"i1","request_id":"r1","timestamp":"2026-01-02T03:04:05Z","dwell_ms":1500},` +
		`{"event_id":"e2","type":"impression","user_id":"u1","item_id":""}]`
	if got.Body != wantBody {
		t.Errorf("SendEvents() body = %s, want %s", got.Body, wantBody)
	}

	// A valid batch is a valid request.
	c, _ = newServer(t, 202, "application/json", `{"accepted":2,"duplicates":0,"rejected":[]}`)
	if _, err := c.SendEvents(context.Background(), []client.Event{
		{EventID: "e1", Type: client.TypeClick, UserID: "u1", ItemID: "i1", RequestID: "r1", Channel: "home", Timestamp: ts, DwellMS: 1500},
		{EventID: "e2", Type: client.TypeConversion, UserID: "u1", ItemID: "i1"},
	}); err != nil {
		t.Errorf("SendEvents(valid) error = %v", err)
	}
}

func TestPutEscapesIDs(t *testing.T) {
	c, got := newServer(t, 204, "", "")
	if err := c.PutUser(context.Background(), client.User{UserID: "a/b c", Segment: "s"}); err != nil {
		t.Fatalf("PutUser() error = %v", err)
	}
	if want := "/v1/users/a%2Fb%20c"; got.Path != want || got.Method != "PUT" {
		t.Errorf("PutUser() sent %s %s, want PUT %s", got.Method, got.Path, want)
	}
	if err := c.PutItem(context.Background(), client.Item{ItemID: "i?1", Category: "c", Available: true}); err != nil {
		t.Fatalf("PutItem() error = %v", err)
	}
	if want := "/v1/items/i%3F1"; got.Path != want {
		t.Errorf("PutItem() path = %s, want %s", got.Path, want)
	}
	if want := `{"item_id":"i?1","category":"c","available":true}`; got.Body != want {
		t.Errorf("PutItem() body = %s, want %s", got.Body, want)
	}
	if err := c.PutUser(context.Background(), client.User{}); err == nil {
		t.Errorf("PutUser(empty id) error = nil, want an error")
	}
}

func TestImportStreamsNDJSON(t *testing.T) {
	c, got := newServer(t, 200, "application/json", `{"imported":2,"rejected":1,"errors":[{"line":3,"error":"bad"}]}`)
	ndjson := "{\"user_id\":\"u1\"}\n{\"user_id\":\"u2\"}\nnot json\n"
	res, err := c.ImportUsers(context.Background(), strings.NewReader(ndjson))
	if err != nil {
		t.Fatalf("ImportUsers() error = %v", err)
	}
	want := &client.ImportResult{Imported: 2, Rejected: 1, Errors: []client.LineError{{Line: 3, Error: "bad"}}}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("ImportUsers() mismatch (-want +got):\n%s", diff)
	}
	if got.Path != "/v1/users:import" || got.Body != ndjson || got.ContentType != "application/x-ndjson" {
		t.Errorf("ImportUsers() sent %s %q (%s), want /v1/users:import with the NDJSON", got.Path, got.Body, got.ContentType)
	}
	if _, err := c.ImportItems(context.Background(), strings.NewReader("")); err != nil || got.Path != "/v1/items:import" {
		t.Errorf("ImportItems() path = %s, err = %v; want /v1/items:import, nil", got.Path, err)
	}
}

func TestStatsAndDecision(t *testing.T) {
	c, _ := newServer(t, 200, "application/json", example(t, "Stats"))
	st, err := c.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats() error = %v", err)
	}
	want := &client.Stats{RequestsPerSecond: 10.5, Latency: client.Latency{P50: 1.2, P95: 3.4, P99: 5.6}, ErrorRate: 0,
		FallbackRate: 0.1, FallbackRateByReason: map[string]float64{"model_timeout": 0.1},
		CTRByVariant:    map[string]client.VariantCTR{"control": {Impressions: 100, Clicks: 5, CTR: 0.05}},
		EventsPerSecond: 3, ModelVersion: "ftrl-3", WindowSeconds: 60}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("Stats() mismatch (-want +got):\n%s", diff)
	}

	dec := example(t, "Decision")
	c, got := newServer(t, 200, "application/json", dec)
	raw, err := c.Decision(context.Background(), "r-1.a")
	if err != nil {
		t.Fatalf("Decision() error = %v", err)
	}
	if string(raw) != dec || got.Path != "/v1/decisions/r-1.a" {
		t.Errorf("Decision() = %s via %s, want the body via /v1/decisions/r-1.a", raw, got.Path)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		ctype, body string
		want        *client.Error
		temporary   bool
	}{
		{"problem", 400, "application/problem+json",
			`{"type":"https://sightline.dev/problems/invalid-request","title":"Invalid request","status":400,"detail":"count must be between 1 and 100, got 500"}`,
			&client.Error{Status: 400, Type: "https://sightline.dev/problems/invalid-request", Title: "Invalid request",
				Detail: "count must be between 1 and 100, got 500", Attempts: 1}, false},
		{"plain text", 502, "text/plain", "bad gateway\n",
			&client.Error{Status: 502, Title: "Bad Gateway", Detail: "bad gateway", Attempts: 1}, true},
		// A 503 without Retry-After is not retried.
		{"empty", 503, "", "", &client.Error{Status: 503, Title: "Service Unavailable", Attempts: 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Error answers of any status, some not problems (a proxy's):
			// only the request is checked.
			c, _ := newServerChecking(t, apitest.Requests, tt.status, tt.ctype, tt.body)
			err := c.Health(context.Background())
			e, ok := errors.AsType[*client.Error](err)
			if !ok {
				t.Fatalf("Health() error = %v, want *client.Error", err)
			}
			if diff := cmp.Diff(tt.want, e); diff != "" {
				t.Errorf("Health() error mismatch (-want +got):\n%s", diff)
			}
			if e.Temporary() != tt.temporary {
				t.Errorf("Error.Temporary() = %v, want %v", e.Temporary(), tt.temporary)
			}
			if tt.want.Detail != "" && !strings.Contains(e.Error(), tt.want.Detail) {
				t.Errorf("Error.Error() = %q, want it to contain %q", e.Error(), tt.want.Detail)
			}
		})
	}
}

func TestTransportErrorHidesUserID(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens any more
	c, err := client.New(srv.URL, client.WithHTTPClient(validator(t).Client(t)))
	if err != nil {
		t.Fatal(err)
	}
	err = c.PutUser(context.Background(), client.User{UserID: "alice@example.com"})
	if err == nil || strings.Contains(err.Error(), "alice") {
		t.Errorf("PutUser() error = %v, want a connection error without the user id", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Health(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Health(canceled) error = %v, want context.Canceled", err)
	}
}

func TestTracing(t *testing.T) {
	var traceparent string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		traceparent = r.Header.Get("Traceparent")
		w.Header().Set("X-Request-ID", "req-1")
		w.Header().Set("Content-Type", "application/json")
		// A failed write is the client's error to report.
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	}))
	defer srv.Close()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() {
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Errorf("TracerProvider.Shutdown() error = %v", err)
		}
	}()

	c, err := client.New(srv.URL, client.WithHTTPClient(validator(t).Client(t)), client.WithTracerProvider(tp), client.WithUserAgent("test/1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	if err := c.Health(context.Background()); err != nil {
		t.Fatalf("Health() error = %v", err)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("Health() ended %d spans, want 1", len(spans))
	}
	sc := spans[0].SpanContext()
	want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
	if traceparent != want {
		t.Errorf("traceparent = %q, want %q", traceparent, want)
	}

	// Without the option there is no propagation.
	plain, _ := client.New(srv.URL, client.WithHTTPClient(validator(t).Client(t)))
	if err := plain.Health(context.Background()); err != nil || traceparent != "" {
		t.Errorf("Health() without tracing: traceparent = %q, err = %v; want none", traceparent, err)
	}
}

func TestDecodeErrorOnBadJSON(t *testing.T) {
	c, _ := newServerChecking(t, apitest.Requests, 200, "application/json", `{"request_id":`)
	_, err := c.Recommend(context.Background(), client.RecommendRequest{UserID: "u"})
	if err == nil {
		t.Fatal("Recommend() error = nil, want a decode error")
	}
	if _, ok := errors.AsType[*client.Error](err); ok {
		t.Errorf("Recommend() error = %v, want a decode error, not *client.Error", err)
	}
}

func TestUserAndEraseUser(t *testing.T) {
	c, got := newServer(t, 200, "application/json",
		`{"user_id":"a/b","segment":"s","updated_at":"2026-01-02T03:04:05Z","activity":{"recent_items":["i1"],"recent_categories":["c"],"clicked_items":["i1"]}}`)
	p, err := c.User(context.Background(), "a/b")
	if err != nil {
		t.Fatalf("User() error = %v", err)
	}
	want := &client.UserProfile{User: client.User{UserID: "a/b", Segment: "s"}, UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Activity: client.Activity{RecentItems: []string{"i1"}, RecentCategories: []string{"c"}, ClickedItems: []string{"i1"}}}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("User() mismatch (-want +got):\n%s", diff)
	}
	if wantPath := "/v1/users/a%2Fb"; got.Method != "GET" || got.Path != wantPath {
		t.Errorf("User() sent %s %s, want GET %s", got.Method, got.Path, wantPath)
	}

	c, got = newServer(t, 200, "application/json", `{"profile":true,"activity":false,"decisions":3}`)
	e, err := c.EraseUser(context.Background(), "a/b")
	if err != nil {
		t.Fatalf("EraseUser() error = %v", err)
	}
	if want := (client.Erasure{Profile: true, Decisions: 3}); *e != want {
		t.Errorf("EraseUser() = %+v, want %+v", *e, want)
	}
	if wantPath := "/v1/users/a%2Fb"; got.Method != "DELETE" || got.Path != wantPath {
		t.Errorf("EraseUser() sent %s %s, want DELETE %s", got.Method, got.Path, wantPath)
	}
	if _, err := c.EraseUser(context.Background(), ""); err == nil {
		t.Errorf("EraseUser(empty id) error = nil, want an error")
	}
	if _, err := c.User(context.Background(), ""); err == nil {
		t.Errorf("User(empty id) error = nil, want an error")
	}
}
