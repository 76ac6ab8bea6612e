package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/sightline/sightline/internal/api"
)

// eraseCatalog is a memCatalog with erasure (api.Eraser); fail makes every
// erasure fail.
type eraseCatalog struct {
	*memCatalog
	decisions map[string]int // recent decisions by user
	erased    []string
	fail      error
}

var _ api.Eraser = (*eraseCatalog)(nil)

func (c *eraseCatalog) EraseUser(_ context.Context, id string) (api.UserErasure, error) {
	if c.fail != nil {
		return api.UserErasure{}, c.fail
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, had := c.users[id]
	delete(c.users, id)
	e := api.UserErasure{Profile: had, Decisions: c.decisions[id]}
	delete(c.decisions, id)
	c.erased = append(c.erased, id)
	return e, nil
}

// TestEraseUser checks DELETE /v1/users/{user_id}: 200 with what was
// erased, the same 200 with nothing erased for a user already erased or
// never known (erasure is idempotent: no 404), 400 for a bad id, 503 with
// Retry-After when the stores fail, and 501 on a catalog without erasure.
func TestEraseUser(t *testing.T) {
	ec := &eraseCatalog{memCatalog: newMemCatalog(), decisions: map[string]int{"u/1": 2}}
	e := newEnv(t, func(c *api.Config) { c.Catalog = ec })
	if resp, body := e.do(t, "PUT", "/v1/users/u%2F1", `{"segment":"s"}`); resp.StatusCode != 204 {
		t.Fatalf("PUT user = %d %s, want 204", resp.StatusCode, body)
	}
	for _, tt := range []struct {
		name, path string
		want       api.UserErasure
	}{
		{"stored user", "/v1/users/u%2F1", api.UserErasure{Profile: true, Decisions: 2}},
		{"erased again", "/v1/users/u%2F1", api.UserErasure{}},
		{"never known", "/v1/users/nobody", api.UserErasure{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.do(t, "DELETE", tt.path, "")
			var got api.UserErasure
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &got) != nil {
				t.Fatalf("DELETE %s = %d %s %s, want 200 application/json", tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			if got != tt.want {
				t.Errorf("DELETE %s = %+v, want %+v", tt.path, got, tt.want)
			}
		})
	}
	if len(ec.erased) != 3 || ec.erased[0] != "u/1" {
		t.Errorf("EraseUser called with %q, want u/1 (unescaped), u/1, nobody", ec.erased)
	}
	resp, body := e.do(t, "DELETE", "/v1/users/"+longID(), "")
	checkProblem(t, resp, body, 400, "invalid-request", "user_id in the path must be at most 128 bytes")

	ec.fail = errors.New("store down")
	resp, body = e.do(t, "DELETE", "/v1/users/u1", "")
	checkProblem(t, resp, body, 503, "unavailable", "retry (erasure is idempotent")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("DELETE: 503 without Retry-After")
	}

	plain := newEnv(t, nil) // memCatalog has no erasure
	resp, body = plain.do(t, "DELETE", "/v1/users/u1", "")
	checkProblem(t, resp, body, http.StatusNotImplemented, "not-implemented", "this node does not serve user erasure")
}
