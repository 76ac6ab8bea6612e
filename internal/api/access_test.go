package api_test

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sightline/sightline/internal/api"
)

// testKeys makes one key per scope set, named after it.
func testKeys(t *testing.T, sets map[string][]api.Scope) (map[string]string, []api.Key) {
	t.Helper()
	secrets := map[string]string{}
	var keys []api.Key
	for name, scopes := range sets {
		s, k, err := api.NewKey(name, scopes...)
		if err != nil {
			t.Fatal(err)
		}
		secrets[name] = s
		keys = append(keys, k)
	}
	return secrets, keys
}

// adminHandler is a mounted admin route that answers only when the request
// was granted the admin scope (what the node's admin routes check too).
func adminHandler(w http.ResponseWriter, r *http.Request) {
	if !api.Granted(r.Context(), api.ScopeAdmin) {
		http.Error(w, "not granted", http.StatusTeapot)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"model_version":"v","model_offset":1}`))
}

func accessEnv(t *testing.T, keys []api.Key, token string, reg prometheus.Registerer, logs *bytes.Buffer) *env {
	t.Helper()
	return newEnv(t, func(c *api.Config) {
		c.Access = api.AccessConfig{Keys: keys, AdminToken: token,
			MountScopes: map[string]api.Scope{"POST /admin/snapshot": api.ScopeAdmin, "GET /metrics": api.ScopeRead}}
		c.Mount = map[string]http.Handler{
			"POST /admin/snapshot": http.HandlerFunc(adminHandler),
			"GET /metrics":         http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("m 1\n")) }),
		}
		c.Registerer = reg
		if logs != nil {
			c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	})
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// TestAccessWithKeys: each route answers a key holding its scope, 401 to no
// credential, a malformed one or an unknown key, and 403 to a valid key
// without the scope; the admin token grants the admin routes only; Basic
// credentials work on GET routes of the read scope only.
func TestAccessWithKeys(t *testing.T) {
	secrets, keys := testKeys(t, map[string][]api.Scope{
		"rec": {api.ScopeRecommend}, "ing": {api.ScopeIngest}, "rd": {api.ScopeRead}, "adm": {api.ScopeAdmin},
		"all": {api.ScopeRecommend, api.ScopeIngest, api.ScopeRead, api.ScopeAdmin},
	})
	const token = "the-admin-token"
	reg := prometheus.NewRegistry()
	e := accessEnv(t, keys, token, reg, nil)
	bearer := func(name string) string { return "Bearer " + secrets[name] }
	const (
		recBody = `{"user_id":"u1"}`
		evBody  = `[{"event_id":"e1","type":"click","user_id":"u1","item_id":"i1"}]`
	)
	tests := []struct {
		name, method, path, body, auth string
		status                         int
		slug                           string
		basicChallenge                 bool
	}{
		{"recommend, no key", "POST", "/v1/recommendations", recBody, "", 401, "unauthorized", false},
		{"recommend, recommend key", "POST", "/v1/recommendations", recBody, bearer("rec"), 200, "", false},
		{"recommend, lower-case scheme", "POST", "/v1/recommendations", recBody, "bearer " + secrets["rec"], 200, "", false},
		{"recommend, key of all scopes", "POST", "/v1/recommendations", recBody, bearer("all"), 200, "", false},
		{"recommend, read key", "POST", "/v1/recommendations", recBody, bearer("rd"), 403, "forbidden", false},
		{"recommend, admin token", "POST", "/v1/recommendations", recBody, "Bearer " + token, 403, "forbidden", false},
		{"recommend, unknown key", "POST", "/v1/recommendations", recBody, "Bearer slk_not-a-key", 401, "unauthorized", false},
		{"recommend, key with a suffix", "POST", "/v1/recommendations", recBody, bearer("rec") + "x", 401, "unauthorized", false},
		{"recommend, basic on POST", "POST", "/v1/recommendations", recBody, basic("", secrets["rec"]), 401, "unauthorized", false},
		{"recommend, other scheme", "POST", "/v1/recommendations", recBody, "Token " + secrets["rec"], 401, "unauthorized", false},
		{"recommend GET, recommend key", "GET", "/v1/users/u1/recommendations", "", bearer("rec"), 200, "", false},
		{"recommend GET, basic", "GET", "/v1/users/u1/recommendations", "", basic("", secrets["rec"]), 401, "unauthorized", false},
		{"events, ingest key", "POST", "/v1/events", evBody, bearer("ing"), 202, "", false},
		{"events, recommend key", "POST", "/v1/events", evBody, bearer("rec"), 403, "forbidden", false},
		{"events, no key", "POST", "/v1/events", evBody, "", 401, "unauthorized", false},
		{"put user, ingest key", "PUT", "/v1/users/u9", `{"segment":"new"}`, bearer("ing"), 204, "", false},
		{"read back user, ingest key", "GET", "/v1/users/u9", "", bearer("ing"), 501, "not-implemented", false},
		{"read back user, read key", "GET", "/v1/users/u9", "", bearer("rd"), 403, "forbidden", false},
		{"stats, read key", "GET", "/v1/stats", "", bearer("rd"), 200, "", false},
		{"stats, read key as basic password", "GET", "/v1/stats", "", basic("me", secrets["rd"]), 200, "", false},
		{"stats, read key as basic user", "GET", "/v1/stats", "", basic(secrets["rd"], ""), 200, "", false},
		{"stats, wrong basic", "GET", "/v1/stats", "", basic("me", "wrong"), 401, "unauthorized", true},
		{"stats, malformed basic", "GET", "/v1/stats", "", "Basic !!!", 401, "unauthorized", true},
		{"stats, no key", "GET", "/v1/stats", "", "", 401, "unauthorized", true},
		{"stats, ingest key", "GET", "/v1/stats", "", bearer("ing"), 403, "forbidden", false},
		{"metrics (mounted), read key", "GET", "/metrics", "", bearer("rd"), 200, "", false},
		{"metrics (mounted), no key", "GET", "/metrics", "", "", 401, "unauthorized", true},
		{"healthz, no key", "GET", "/healthz", "", "", 200, "", false},
		{"openapi, no key", "GET", "/openapi.json", "", "", 200, "", false},
		{"admin, admin token", "POST", "/admin/snapshot", "", "Bearer " + token, 200, "", false},
		{"admin, admin key", "POST", "/admin/snapshot", "", bearer("adm"), 200, "", false},
		{"admin, read key", "POST", "/admin/snapshot", "", bearer("rd"), 403, "forbidden", false},
		{"admin, no key", "POST", "/admin/snapshot", "", "", 401, "unauthorized", false},
		{"admin, token with a suffix", "POST", "/admin/snapshot", "", "Bearer " + token + "x", 401, "unauthorized", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.auth != "" {
				hdr = []string{"Authorization", tt.auth}
			}
			resp, body := e.do(t, tt.method, tt.path, tt.body, hdr...)
			if tt.slug != "" {
				checkProblem(t, resp, body, tt.status, tt.slug, "")
			} else if resp.StatusCode != tt.status {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, resp.StatusCode, body, tt.status)
			}
			ch := resp.Header.Values("WWW-Authenticate")
			if tt.status == 401 {
				if len(ch) == 0 || ch[0] != `Bearer realm="sightline"` {
					t.Errorf("WWW-Authenticate = %q, want the Bearer challenge first", ch)
				}
				if hasBasic := len(ch) == 2 && strings.HasPrefix(ch[1], "Basic "); hasBasic != tt.basicChallenge {
					t.Errorf("WWW-Authenticate = %q, want a Basic challenge: %v", ch, tt.basicChallenge)
				}
			} else if len(ch) != 0 {
				t.Errorf("WWW-Authenticate = %q on a %d, want none", ch, tt.status)
			}
			if tt.status == 403 && bytes.Contains(body, []byte("slk_")) {
				t.Errorf("403 body %s holds a key", body)
			}
		})
	}
	if got := counterValue(t, reg, "sightline_http_auth_failures_total", map[string]string{"route": "POST /v1/recommendations", "reason": "forbidden"}); got != 2 {
		t.Errorf("auth failures {POST /v1/recommendations, forbidden} = %v, want 2", got)
	}
	if got := counterValue(t, reg, "sightline_http_auth_failures_total", map[string]string{"route": "POST /v1/recommendations", "reason": "malformed"}); got != 2 {
		t.Errorf("auth failures {POST /v1/recommendations, malformed} = %v, want 2 (basic on POST, another scheme)", got)
	}
	if got := counterValue(t, reg, "sightline_http_auth_failures_total", map[string]string{"route": "GET /v1/stats", "reason": "missing"}); got != 1 {
		t.Errorf("auth failures {GET /v1/stats, missing} = %v, want 1", got)
	}
	if got := counterValue(t, reg, "sightline_http_auth_failures_total", map[string]string{"route": "POST /admin/snapshot", "reason": "invalid"}); got != 1 {
		t.Errorf("auth failures {POST /admin/snapshot, invalid} = %v, want 1", got)
	}
}

// TestAccessOpen: without keys every route but the admin ones answers
// without a credential; the admin routes take the admin token, and are
// refused when there is none.
func TestAccessOpen(t *testing.T) {
	e := accessEnv(t, nil, "tok", nil, nil)
	for _, p := range []struct{ method, path, body string }{
		{"POST", "/v1/recommendations", `{"user_id":"u1"}`}, {"GET", "/v1/stats", ""}, {"GET", "/metrics", ""},
	} {
		if resp, body := e.do(t, p.method, p.path, p.body); resp.StatusCode != 200 {
			t.Errorf("open %s %s = %d %s, want 200", p.method, p.path, resp.StatusCode, body)
		}
	}
	resp, body := e.do(t, "POST", "/admin/snapshot", "")
	checkProblem(t, resp, body, 401, "unauthorized", "needs the admin token (--admin-token)")
	resp, body = e.do(t, "POST", "/admin/snapshot", "", "Authorization", "Bearer wrong")
	checkProblem(t, resp, body, 401, "unauthorized", "not a key of this node")
	if resp, body := e.do(t, "POST", "/admin/snapshot", "", "Authorization", "Bearer tok"); resp.StatusCode != 200 {
		t.Errorf("admin with the token = %d %s, want 200", resp.StatusCode, body)
	}

	off := accessEnv(t, nil, "", nil, nil)
	resp, body = off.do(t, "POST", "/admin/snapshot", "", "Authorization", "Bearer ")
	checkProblem(t, resp, body, 401, "unauthorized", "admin routes are disabled")
}

// TestAccessNeverLogsKeys: refusals are logged (at debug) with the route
// and reason and, for a 403, the key's name, never with a credential.
func TestAccessNeverLogsKeys(t *testing.T) {
	secrets, keys := testKeys(t, map[string][]api.Scope{"reader": {api.ScopeRead}})
	var logs bytes.Buffer
	e := accessEnv(t, keys, "tok-secret", nil, &logs)
	e.do(t, "POST", "/v1/recommendations", `{"user_id":"u1"}`, "Authorization", "Bearer "+secrets["reader"])
	e.do(t, "POST", "/v1/recommendations", `{"user_id":"u1"}`, "Authorization", "Bearer slk_wrong-key-value")
	e.do(t, "GET", "/v1/stats", "", "Authorization", basic("u", "basic-wrong-secret"))
	e.do(t, "POST", "/admin/snapshot", "", "Authorization", "Bearer tok-secret-wrong")
	out := e.logs.String() + logs.String()
	if !strings.Contains(out, `"reason":"forbidden"`) || !strings.Contains(out, `"key_name":"reader"`) || !strings.Contains(out, `"reason":"invalid"`) {
		t.Errorf("logs = %s, want the refusals with their reasons and the key name", out)
	}
	for _, s := range []string{secrets["reader"], "slk_wrong-key-value", "basic-wrong-secret", "tok-secret", base64.StdEncoding.EncodeToString([]byte("u:basic-wrong-secret"))} {
		if strings.Contains(out, s) {
			t.Errorf("logs hold the credential %q:\n%s", s, out)
		}
	}
}

// counterValue returns the value of the counter name with labels in reg.
func counterValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelsMatch(m, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

func TestParseKeys(t *testing.T) {
	_, k, err := api.NewKey("svc", api.ScopeIngest, api.ScopeRead)
	if err != nil {
		t.Fatal(err)
	}
	good := "# keys\n\n" + k.Line() + "\n  ops admin sha256:" + strings.Repeat("ab", 32) + "  \n"
	keys, err := api.ParseKeys(strings.NewReader(good))
	if err != nil {
		t.Fatalf("ParseKeys(good) = %v", err)
	}
	if len(keys) != 2 || keys[0].Name != "svc" || keys[0].Hash != k.Hash || len(keys[0].Scopes) != 2 || keys[1].Scopes[0] != api.ScopeAdmin {
		t.Errorf("ParseKeys(good) = %+v, want svc (ingest,read) and ops (admin)", keys)
	}
	h := " sha256:" + strings.Repeat("0f", 32)
	bad := []struct{ name, text, want string }{
		{"two fields", "svc read\n", "line 1: want 3 fields"},
		{"bad name", "s/v read" + h, "line 1: key name"},
		{"unknown scope", "svc read,write" + h, `line 1: unknown scope "write"`},
		{"public is no key scope", "svc public" + h, `unknown scope "public"`},
		{"raw key", "svc read slk_abc", "must start with sha256:"},
		{"short hash", "svc read sha256:abcd", "64 hex digits"},
		{"not hex", "svc read sha256:" + strings.Repeat("zz", 32), "64 hex digits"},
		{"duplicate name", "svc read" + h + "\nsvc admin sha256:" + strings.Repeat("1f", 32), `line 2: name "svc" is already used on line 1`},
		{"duplicate key", "a read" + h + "\nb admin" + h, "line 2: the same key is already on line 1"},
	}
	for _, tt := range bad {
		if _, err := api.ParseKeys(strings.NewReader(tt.text)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseKeys(%s) = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

func TestNewKey(t *testing.T) {
	s1, k1, err := api.NewKey("a", api.ScopeRead)
	if err != nil {
		t.Fatal(err)
	}
	s2, _, err := api.NewKey("a", api.ScopeRead)
	if err != nil {
		t.Fatal(err)
	}
	if s1 == s2 || !strings.HasPrefix(s1, api.KeyPrefix) || len(s1) != len(api.KeyPrefix)+43 {
		t.Errorf("NewKey secrets %q, %q: want distinct, %s and 43 base64url characters", s1, s2, api.KeyPrefix)
	}
	if k1.Hash != api.HashKey(s1) || strings.Contains(k1.Line(), s1) {
		t.Errorf("NewKey key %+v: want the hash of the secret, and a line without the secret", k1)
	}
	for _, bad := range []struct {
		name   string
		scopes []api.Scope
	}{{"", []api.Scope{api.ScopeRead}}, {"a b", []api.Scope{api.ScopeRead}}, {"a", nil}, {"a", []api.Scope{api.ScopePublic}}} {
		if _, _, err := api.NewKey(bad.name, bad.scopes...); err == nil {
			t.Errorf("NewKey(%q, %v) = nil error, want one", bad.name, bad.scopes)
		}
	}
}
