package apitest_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sightline/sightline/internal/api/apitest"
)

// spec is a small OpenAPI 3.1 document: one closed response object, a
// request body and a problem.
const spec = `{
  "openapi": "3.1.0",
  "info": {"title": "t", "version": "1"},
  "paths": {
    "/v1/things/{id}": {
      "get": {
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "maxLength": 3}}],
        "responses": {
          "200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}},
          "404": {"description": "no", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        }
      },
      "put": {
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}},
        "responses": {"204": {"description": "stored"}}
      }
    }
  },
  "components": {"schemas": {
    "Thing": {"type": "object", "additionalProperties": false, "required": ["name"],
      "properties": {"name": {"type": "string"}, "count": {"type": "integer"}}},
    "Problem": {"type": "object", "additionalProperties": false, "required": ["status"],
      "properties": {"status": {"type": "integer"}, "detail": {"type": "string"}}}
  }}
}`

// reporter collects failures.
type reporter struct {
	mu   sync.Mutex
	errs []string
}

func (r *reporter) Helper() {}
func (r *reporter) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func newValidator(t *testing.T) *apitest.Validator {
	t.Helper()
	v, err := apitest.New([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestResponse(t *testing.T) {
	v := newValidator(t)
	json := http.Header{"Content-Type": {"application/json"}}
	problem := http.Header{"Content-Type": {"application/problem+json"}}
	tests := []struct {
		name, method, path string
		status             int
		header             http.Header
		body               string
		wantErr            string // "" for a valid response
	}{
		{"valid", "GET", "/v1/things/a%2Fb", 200, json, `{"name":"x","count":2}`, ""},
		{"renamed field", "GET", "/v1/things/a", 200, json, `{"name":"x","cnt":2}`, "cnt"},
		{"missing required field", "GET", "/v1/things/a", 200, json, `{"count":2}`, "name"},
		{"wrong type", "GET", "/v1/things/a", 200, json, `{"name":7}`, "/name"},
		{"undocumented status", "GET", "/v1/things/a", 500, problem, `{"status":500}`, "status is not supported"},
		{"wrong content type", "GET", "/v1/things/a", 200, http.Header{"Content-Type": {"text/plain"}}, `x`, "text/plain"},
		{"documented problem", "GET", "/v1/things/a", 404, problem, `{"status":404,"detail":"d"}`, ""},
		{"problem as json", "GET", "/v1/things/a", 404, json, `{"status":404}`, "application/json"},
		{"undocumented route", "GET", "/v1/other", 200, json, `{}`, "no operation in openapi.json"},
		{"unrouted 404 problem", "GET", "/v1/other", 404, problem, `{"status":404}`, ""},
		{"unrouted 405 bad problem", "DELETE", "/v1/things/a", 405, problem, `{"status":405,"extra":1}`, "Problem schema"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, nil)
			err := v.Response(req, tt.status, tt.header, []byte(tt.body))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Response() error = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Response() error = %v, want one mentioning %s", err, tt.wantErr)
			}
		})
	}
}

func TestRequest(t *testing.T) {
	v := newValidator(t)
	tests := []struct {
		name, method, path, body string
		wantErr                  string
	}{
		{"valid", "PUT", "/v1/things/a", `{"name":"x"}`, ""},
		{"unknown field", "PUT", "/v1/things/a", `{"name":"x","colour":"red"}`, "colour"},
		{"path parameter too long", "GET", "/v1/things/abcd", "", "id"},
		{"no operation", "POST", "/v1/things/a", `{}`, "no operation in openapi.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			err := v.Request(req)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Request() error = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Request() error = %v, want one mentioning %s", err, tt.wantErr)
			}
			if b, _ := io.ReadAll(req.Body); string(b) != tt.body {
				t.Errorf("Request() left body %q, want %q", b, tt.body)
			}
		})
	}
}

// TestHandlerAndTransport checks that both wrappers report a bad response
// and pass the exchange through unchanged.
func TestHandlerAndTransport(t *testing.T) {
	v := newValidator(t)
	body := `{"name":"x","cnt":1}`
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Test", "kept")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, body) // a failed write is the client's error to report
	})
	var server, client reporter
	srv := httptest.NewServer(v.Handler(&server, h))
	defer srv.Close()
	hc := &http.Client{Transport: v.Transport(&client, nil, apitest.Requests|apitest.Responses)}
	req, _ := http.NewRequest("PUT", srv.URL+"/v1/things/a", strings.NewReader(`{"nme":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != body || resp.Header.Get("X-Test") != "kept" {
		t.Errorf("response = %s (X-Test %q), want the handler's %s", got, resp.Header.Get("X-Test"), body)
	}
	// The client's request has an unknown field and no name; the PUT's 200
	// is undocumented (only 204 is).
	if len(client.errs) != 2 || !strings.Contains(client.errs[0], "nme") || !strings.Contains(client.errs[1], "status is not supported") {
		t.Errorf("transport reported %q, want the bad request and the undocumented status", client.errs)
	}
	if len(server.errs) != 1 || !strings.Contains(server.errs[0], "status is not supported") {
		t.Errorf("handler reported %q, want the undocumented status", server.errs)
	}
}

// TestDefault checks that the API's own document loads and validates.
func TestDefault(t *testing.T) {
	v, err := apitest.Default()
	if err != nil {
		t.Fatal(err)
	}
	if ops := v.Operations(); len(ops) < 20 {
		t.Errorf("Operations() = %v, want the API's and the node's routes", ops)
	}
}

// TestExample checks that the API document's examples validate and are
// served.
func TestExample(t *testing.T) {
	v, err := apitest.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Stats", "Decision"} {
		b, err := v.Example(name)
		if err != nil || !strings.HasPrefix(string(b), "{") {
			t.Errorf("Example(%s) = %s, %v; want a JSON object", name, b, err)
		}
	}
	if _, err := v.Example("Problem"); err == nil {
		t.Errorf("Example(Problem) error = nil, want one (it has no example)")
	}
	// An example that does not match its schema is refused.
	bad := strings.Replace(spec, `"required": ["name"],`, `"required": ["name"], "examples": [{"name": 1}],`, 1)
	bv, err := apitest.New([]byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bv.Example("Thing"); err == nil || !strings.Contains(err.Error(), "does not validate") {
		t.Errorf("Example(Thing) with a bad example error = %v, want it refused", err)
	}
}
