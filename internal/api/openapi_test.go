package api

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestOpenAPIMatchesRoutes checks that every route is documented and every
// documented operation is routed.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var spec struct {
		OpenAPI    string                                `json:"openapi"`
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas   map[string]json.RawMessage `json:"schemas"`
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPISpec, &spec); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if spec.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", spec.OpenAPI)
	}
	var documented []string
	for path, ops := range spec.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	var routed []string
	for _, rt := range (&Server{}).routes() {
		routed = append(routed, rt.pattern)
	}
	sort.Strings(documented)
	sort.Strings(routed)
	if diff := cmp.Diff(routed, documented); diff != "" {
		t.Errorf("routes vs openapi.json paths (-routed +documented):\n%s", diff)
	}

	// Every $ref resolves, and the Problem schema lists every problem type.
	refs := map[string]bool{}
	collectRefs(t, openAPISpec, refs)
	for ref := range refs {
		name, ok := strings.CutPrefix(ref, "#/components/schemas/")
		if ok {
			if _, found := spec.Components.Schemas[name]; !found {
				t.Errorf("$ref %s does not resolve", ref)
			}
			continue
		}
		name, ok = strings.CutPrefix(ref, "#/components/responses/")
		if _, found := spec.Components.Responses[name]; !ok || !found {
			t.Errorf("$ref %s does not resolve", ref)
		}
	}
	for slug := range problemTitles {
		if !strings.Contains(string(spec.Components.Schemas["Problem"]), problemBase+slug) {
			t.Errorf("Problem schema does not document type %s", slug)
		}
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
