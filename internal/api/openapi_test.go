package api

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
)

// openAPIDoc is the part of openapi.json the structural tests read.
type openAPIDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components map[string]map[string]json.RawMessage `json:"components"`
}

func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	var spec openAPIDoc
	if err := json.Unmarshal(openAPISpec, &spec); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return spec
}

// documented returns the operations of the document as ServeMux patterns.
func (d openAPIDoc) documented() []string {
	var out []string
	for path, ops := range d.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			out = append(out, strings.ToUpper(method)+" "+path)
		}
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIMatchesRoutes checks that every API route is documented. The
// document also holds the operational routes a node mounts beside the API
// (/v1/traces, /metrics, /admin/...): internal/app's contract test checks
// that the node routes exactly the documented operations.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	spec := loadOpenAPI(t)
	if spec.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", spec.OpenAPI)
	}
	documented := spec.documented()
	var missing []string
	for _, rt := range (&Server{}).routes() {
		if !slices.Contains(documented, rt.pattern) {
			missing = append(missing, rt.pattern)
		}
	}
	if len(missing) > 0 {
		t.Errorf("routes missing from openapi.json: %v", missing)
	}
	// Every $ref resolves, and the Problem schema lists every problem type.
	refs := map[string]bool{}
	collectRefs(t, openAPISpec, refs)
	for ref := range refs {
		kind, name, ok := strings.Cut(strings.TrimPrefix(ref, "#/components/"), "/")
		if !ok || !strings.HasPrefix(ref, "#/components/") {
			t.Errorf("$ref %s is not a local component", ref)
			continue
		}
		if _, found := spec.Components[kind][name]; !found {
			t.Errorf("$ref %s does not resolve", ref)
		}
	}
	for slug := range problemTitles {
		if !strings.Contains(string(spec.Components["schemas"]["Problem"]), problemBase+slug) {
			t.Errorf("Problem schema does not document type %s", slug)
		}
	}
}

// TestOpenAPISchemasAreClosed checks that every object schema with named
// properties forbids others (additionalProperties: false), so that a field
// renamed in a handler but not in the document fails the contract tests
// instead of passing as an extra property. Free-form maps (attributes, a
// log record) name no properties and stay open.
func TestOpenAPISchemasAreClosed(t *testing.T) {
	var doc any
	if err := json.Unmarshal(openAPISpec, &doc); err != nil {
		t.Fatal(err)
	}
	var open []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if _, named := v["properties"].(map[string]any); named && v["additionalProperties"] != false {
				open = append(open, path)
			}
			for k, x := range v {
				walk(path+"/"+k, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s/%d", path, i), x)
			}
		}
	}
	walk("#", doc)
	sort.Strings(open)
	for _, p := range open {
		t.Errorf("schema %s names properties but does not set additionalProperties: false", p)
	}
}

func collectRefs(t *testing.T, b []byte, refs map[string]bool) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "$ref" {
					refs[s] = true
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
}

// TestOpenAPIAccessResponses checks that the document says what access and
// admission control answer: every operation names its scope (x-scope),
// the API routes' agree with the server's, every operation that needs a
// key documents 401 and 403 and its security requirement, and the routes
// behind a limiter document 429.
func TestOpenAPIAccessResponses(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]struct {
			Scope     string                     `json:"x-scope"`
			Security  []map[string][]string      `json:"security"`
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openAPISpec, &doc); err != nil {
		t.Fatal(err)
	}
	routes := map[string]route{}
	for _, rt := range (&Server{}).routes() {
		routes[rt.pattern] = rt
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			pattern := strings.ToUpper(method) + " " + path
			sc := Scope(op.Scope)
			if sc != ScopePublic && scopeBits[sc] == 0 {
				t.Errorf("%s: x-scope %q is not a scope", pattern, op.Scope)
				continue
			}
			if rt, ok := routes[pattern]; ok && rt.scope != sc {
				t.Errorf("%s: x-scope %q, but the route's scope is %q", pattern, sc, rt.scope)
			}
			if sc == ScopePublic {
				if len(op.Security) != 0 {
					t.Errorf("%s: a public operation with a security requirement", pattern)
				}
				continue
			}
			for _, st := range []string{"401", "403"} {
				if op.Responses[st] == nil {
					t.Errorf("%s (scope %s) does not document %s", pattern, sc, st)
				}
			}
			var named bool
			for _, req := range op.Security {
				for scheme, scopes := range req {
					named = named || (scheme == "apiKey" && slices.Equal(scopes, []string{string(sc)}))
				}
			}
			if !named {
				t.Errorf("%s: security %v does not require an apiKey with the scope %s", pattern, op.Security, sc)
			}
			if rt, ok := routes[pattern]; ok && (rt.admit != admitNone) != (op.Responses["429"] != nil) {
				t.Errorf("%s: documents 429: %v, behind a limiter: %v", pattern, op.Responses["429"] != nil, rt.admit != admitNone)
			}
		}
	}
}
