// Package apitest checks HTTP exchanges against the API's OpenAPI document
// (internal/api/openapi.json, served at GET /openapi.json) with kin-openapi,
// so that a test fails when a handler and the document disagree: a route or
// status the document does not list, a response field its schema does not
// name (response objects are closed with additionalProperties: false), a
// required field missing, a wrong type or content type, or a request the Go
// client sends that the document would refuse.
//
// [Validator.Handler] wraps a server and checks every response it writes;
// [Validator.Transport] wraps a client's transport and checks every request
// it sends and every response it reads. Failures go to a [Reporter] such as
// *testing.T. The package is for tests: nothing in the binary imports it.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/sightline/sightline/internal/api"
)

// Reporter receives validation failures. *testing.T and *testing.B satisfy
// it; Errorf may be called from any goroutine.
type Reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// Validator checks requests and responses against the OpenAPI document. It
// is safe for concurrent use.
type Validator struct {
	doc     *openapi3.T
	mux     *http.ServeMux // "METHOD path" of every operation, to route like the server
	routes  map[string]*routers.Route
	problem *openapi3.SchemaRef
	opts    *openapi3filter.Options
}

var (
	registerOnce sync.Once
	// load parses the document once per test binary.
	load = sync.OnceValues(func() (*Validator, error) { return New(api.OpenAPI()) })
)

// Default returns the Validator of the API's own document, parsed once.
func Default() (*Validator, error) { return load() }

// New returns a Validator of the OpenAPI document spec. It fails when the
// document does not parse or does not validate.
func New(spec []byte) (*Validator, error) {
	registerOnce.Do(func() {
		// NDJSON imports and the Prometheus text formats are opaque text
		// to the document: a bad import line is refused per line in the
		// response, not by the request's schema.
		for _, ct := range []string{"application/x-ndjson", "application/openmetrics-text"} {
			openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
		}
	})
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("apitest: load openapi document: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("apitest: invalid openapi document: %w", err)
	}
	v := &Validator{
		doc:    doc,
		mux:    http.NewServeMux(),
		routes: map[string]*routers.Route{},
		opts: &openapi3filter.Options{
			IncludeResponseStatus: true, // an undocumented status fails
			AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
			MultiError:            true,
		},
	}
	// The path and reason say enough; the schema and value dumps would
	// drown them.
	v.opts.WithCustomSchemaErrorFunc(reason)
	if s := doc.Components.Schemas["Problem"]; s != nil {
		v.problem = s
	} else {
		return nil, errors.New("apitest: the document has no Problem schema")
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			pattern := method + " " + path
			v.routes[pattern] = &routers.Route{Spec: doc, Path: path, PathItem: item, Method: method, Operation: op}
			v.mux.Handle(pattern, http.NotFoundHandler())
		}
	}
	return v, nil
}

// Example returns the first example of the document's schema name, as JSON,
// for fakes and canned answers that must match the document. It fails when
// the schema has no example or its example does not validate against it.
func (v *Validator) Example(name string) ([]byte, error) {
	s := v.doc.Components.Schemas[name]
	if s == nil || s.Value == nil || len(s.Value.Examples) == 0 {
		return nil, fmt.Errorf("apitest: schema %s has no example", name)
	}
	ex := s.Value.Examples[0]
	if err := s.Value.VisitJSON(ex, openapi3.EnableJSONSchema2020(), openapi3.VisitAsResponse(), openapi3.MultiErrors(), openapi3.SetSchemaErrorMessageCustomizer(reason)); err != nil {
		return nil, fmt.Errorf("apitest: the example of schema %s does not validate: %w", name, err)
	}
	b, err := json.Marshal(ex)
	if err != nil {
		return nil, fmt.Errorf("apitest: encode the example of schema %s: %w", name, err)
	}
	return b, nil
}

// Operations returns the documented operations as ServeMux patterns
// ("GET /v1/stats"), sorted.
func (v *Validator) Operations() []string {
	out := make([]string, 0, len(v.routes))
	for p := range v.routes {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// route finds the documented operation of req and its path parameters; nil
// when none matches.
func (v *Validator) route(req *http.Request) (*routers.Route, map[string]string) {
	_, pattern := v.mux.Handler(req)
	rt := v.routes[pattern]
	if rt == nil {
		return nil, nil
	}
	params := map[string]string{}
	tmpl := strings.Split(rt.Path, "/")
	segs := strings.Split(req.URL.EscapedPath(), "/")
	for i, t := range tmpl {
		if strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") && i < len(segs) {
			val, err := url.PathUnescape(segs[i])
			if err != nil {
				val = segs[i]
			}
			params[strings.Trim(t, "{}")] = val
		}
	}
	return rt, params
}

// Request checks req against its documented operation: path and query
// parameters, content type and body. It reads req.Body and puts back an
// identical one.
func (v *Validator) Request(req *http.Request) error {
	rt, params := v.route(req)
	if rt == nil {
		return fmt.Errorf("%s %s: no operation in openapi.json matches the request", req.Method, req.URL.EscapedPath())
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: rt, Options: v.opts}
	if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
		return fmt.Errorf("%s %s: request does not match openapi.json (%s %s): %w", req.Method, req.URL.EscapedPath(), rt.Method, rt.Path, err)
	}
	return nil
}

// Response checks a response to req: its status must be documented for
// the operation and its headers and body must match the documented
// response. A request that matches no operation may only be answered with
// a 404 or 405 problem.
func (v *Validator) Response(req *http.Request, status int, h http.Header, body []byte) error {
	rt, params := v.route(req)
	if rt == nil {
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			return fmt.Errorf("%s %s: answered %d, but no operation in openapi.json matches the request (an undocumented route?)", req.Method, req.URL.EscapedPath(), status)
		}
		return v.problemBody(req, status, h, body)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: rt, Options: v.opts},
		Status:                 status,
		Header:                 h,
		Options:                v.opts,
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(req.Context(), in); err != nil {
		return fmt.Errorf("%s %s: %d response does not match openapi.json (%s %s): %w\nbody: %s", req.Method, req.URL.EscapedPath(), status, rt.Method, rt.Path, err, clip(body))
	}
	if status >= 400 && !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") {
		return fmt.Errorf("%s %s: %d response has Content-Type %q, want application/problem+json", req.Method, req.URL.EscapedPath(), status, h.Get("Content-Type"))
	}
	return nil
}

// problemBody checks an answer to an unrouted request against the Problem
// schema.
func (v *Validator) problemBody(req *http.Request, status int, h http.Header, body []byte) error {
	if ct := h.Get("Content-Type"); ct != "application/problem+json" {
		return fmt.Errorf("%s %s: %d response has Content-Type %q, want application/problem+json", req.Method, req.URL.EscapedPath(), status, ct)
	}
	val, err := decodeJSON(body)
	if err != nil {
		return fmt.Errorf("%s %s: %d problem body: %w", req.Method, req.URL.EscapedPath(), status, err)
	}
	if err := v.problem.Value.VisitJSON(val, openapi3.EnableJSONSchema2020(), openapi3.VisitAsResponse(), openapi3.MultiErrors(), openapi3.SetSchemaErrorMessageCustomizer(reason)); err != nil {
		return fmt.Errorf("%s %s: %d problem does not match the Problem schema: %w\nbody: %s", req.Method, req.URL.EscapedPath(), status, err, clip(body))
	}
	return nil
}

// reason is a schema error's message without the dumps of the schema and
// the value.
func reason(e *openapi3.SchemaError) string {
	if p := e.JSONPointer(); len(p) > 0 && !strings.HasPrefix(e.Reason, "at '") {
		return fmt.Sprintf("at %q: %s", "/"+strings.Join(p, "/"), e.Reason)
	}
	return e.Reason
}

func decodeJSON(b []byte) (any, error) {
	var val any
	if err := json.Unmarshal(b, &val); err != nil {
		return nil, fmt.Errorf("decode JSON: %w", err)
	}
	return val, nil
}

func clip(b []byte) string {
	if len(b) > 2048 {
		return string(b[:2048]) + "..."
	}
	return string(b)
}

// Handler returns h wrapped so that every response it writes is checked
// with [Validator.Response] and failures reported to r. Requests are not
// checked: tests send invalid ones on purpose. The response is buffered
// whole before it is passed on, so streaming handlers lose their
// streaming; a panic in h is passed on.
func (v *Validator) Handler(r Reporter, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec := httptest.NewRecorder()
		// The check needs the request as it arrived (method and path); h
		// may consume its body.
		orig := req.Clone(req.Context())
		h.ServeHTTP(rec, req)
		res := rec.Result()
		body := rec.Body.Bytes()
		if err := v.Response(orig, res.StatusCode, res.Header, body); err != nil {
			r.Helper()
			r.Errorf("openapi contract: %v", err)
		}
		for k, vs := range res.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(res.StatusCode)
		w.Write(body) //nolint:errcheck // the client may be gone
	})
}

// Transport returns base wrapped so that every request is checked with
// [Validator.Request] before it is sent and every response with
// [Validator.Response], failures reported to r. A nil base means
// http.DefaultTransport. checks selects what is checked.
func (v *Validator) Transport(r Reporter, base http.RoundTripper, checks Check) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{v: v, r: r, base: base, checks: checks}
}

// Client returns an *http.Client whose transport checks requests and
// responses against the document (see [Validator.Transport]).
func (v *Validator) Client(r Reporter) *http.Client {
	return &http.Client{Transport: v.Transport(r, nil, Requests|Responses)}
}

// Check selects what [Validator.Transport] checks.
type Check uint8

// The checks of [Validator.Transport].
const (
	// Requests checks each request before it is sent.
	Requests Check = 1 << iota
	// Responses checks each response.
	Responses
)

type transport struct {
	v      *Validator
	r      Reporter
	base   http.RoundTripper
	checks Check
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.checks&Requests != 0 {
		// Validate a copy: RoundTrip must not modify req.
		cp := req.Clone(req.Context())
		if req.Body != nil && req.Body != http.NoBody {
			b, err := io.ReadAll(req.Body)
			req.Body.Close()
			if err != nil {
				return nil, fmt.Errorf("apitest: read request body: %w", err)
			}
			cp.Body = io.NopCloser(bytes.NewReader(b))
			req = req.Clone(req.Context())
			req.Body = io.NopCloser(bytes.NewReader(b))
			req.ContentLength = int64(len(b))
		}
		if err := t.v.Request(cp); err != nil {
			t.r.Helper()
			t.r.Errorf("openapi contract: %v", err)
		}
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil || t.checks&Responses == 0 {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("apitest: read response body: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := t.v.Response(req, resp.StatusCode, resp.Header, body); err != nil {
		t.r.Helper()
		t.r.Errorf("openapi contract: %v", err)
	}
	return resp, nil
}
