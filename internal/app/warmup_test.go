package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/sightline/sightline/internal/api"
)

// answer is one HTTP answer of a test request.
type answer struct {
	status     int
	ctype      string
	retryAfter string
	body       []byte
}

// ask sends one request, with the header names and values in hdr.
func ask(t *testing.T, method, url, body string, hdr ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Retry-After"), b}
}

// TestLoadingRefusesRecommendations loads a world into a node marked as
// loading it: /readyz and both recommendation routes answer 503 (the
// latter problem+json with Retry-After and a detail that says the world is
// loading) while the imports that load it succeed; once the load is done
// the node is ready and recommends the loaded items.
func TestLoadingRefusesRecommendations(t *testing.T) {
	tn := startNode(t, Config{})
	done := tn.Loading("the synthetic world (users and items)")
	w := smallWorld()
	user := w.Users()[0].ID
	recommend := []struct{ method, path, body string }{
		{"POST", "/v1/recommendations", `{"user_id":"` + user + `","count":5}`},
		{"GET", "/v1/users/" + user + "/recommendations?count=5", ""},
	}
	refused := func(when string) {
		t.Helper()
		if a := ask(t, "GET", tn.base+"/readyz", ""); a.status != http.StatusServiceUnavailable || !strings.Contains(string(a.body), "loading the synthetic world") {
			t.Errorf("%s: GET /readyz = %d %s, want 503 saying the world is loading", when, a.status, a.body)
		}
		for _, rq := range recommend {
			a := ask(t, rq.method, tn.base+rq.path, rq.body)
			if a.status != http.StatusServiceUnavailable || a.ctype != "application/problem+json" {
				t.Fatalf("%s: %s %s = %d %s %s, want 503 application/problem+json", when, rq.method, rq.path, a.status, a.ctype, a.body)
			}
			if n, err := strconv.Atoi(a.retryAfter); err != nil || n < 1 {
				t.Errorf("%s: %s %s Retry-After = %q, want a positive number of seconds", when, rq.method, rq.path, a.retryAfter)
			}
			var p api.Problem
			if err := json.Unmarshal(a.body, &p); err != nil {
				t.Fatalf("%s: decode problem %s: %v", when, a.body, err)
			}
			if p.Status != http.StatusServiceUnavailable || !strings.HasSuffix(p.Type, "/unavailable") ||
				!strings.Contains(p.Detail, "loading the synthetic world") || !strings.Contains(p.Detail, "/readyz") {
				t.Errorf("%s: %s %s problem = %+v, want unavailable, saying the world is loading and pointing at /readyz", when, rq.method, rq.path, p)
			}
		}
	}
	refused("before the load")
	if err := w.Load(context.Background(), tn.c); err != nil {
		t.Fatalf("load the world while loading: %v", err)
	}
	refused("after the imports, before done")

	done()
	done() // idempotent
	if a := ask(t, "GET", tn.base+"/readyz", ""); a.status != http.StatusOK {
		t.Fatalf("GET /readyz after done = %d %s, want 200", a.status, a.body)
	}
	for _, rq := range recommend {
		a := ask(t, rq.method, tn.base+rq.path, rq.body)
		var res struct {
			Items []struct {
				ItemID string `json:"item_id"`
			} `json:"items"`
		}
		if err := json.Unmarshal(a.body, &res); a.status != http.StatusOK || err != nil {
			t.Fatalf("%s %s after done = %d %s, want 200", rq.method, rq.path, a.status, a.body)
		}
		if len(res.Items) != 5 {
			t.Errorf("%s %s after done: %d items, want 5 of the loaded catalog", rq.method, rq.path, len(res.Items))
		}
	}
}

// TestLoadingOverlaps keeps the node loading until the last of two
// overlapping loads is done, naming the oldest one still running.
func TestLoadingOverlaps(t *testing.T) {
	tn := startNode(t, Config{})
	doneItems := tn.Loading("the catalog")
	doneUsers := tn.Loading("the users")
	for _, step := range []struct {
		finish func()
		want   string // in the /readyz detail; "" means ready
	}{
		{nil, "loading the catalog"},
		{doneItems, "loading the users"},
		{doneItems, "loading the users"}, // a second call changes nothing
		{doneUsers, ""},
	} {
		if step.finish != nil {
			step.finish()
		}
		a := ask(t, "GET", tn.base+"/readyz", "")
		switch {
		case step.want == "" && a.status != http.StatusOK:
			t.Errorf("GET /readyz = %d %s, want 200", a.status, a.body)
		case step.want != "" && (a.status != http.StatusServiceUnavailable || !strings.Contains(string(a.body), step.want)):
			t.Errorf("GET /readyz = %d %s, want 503 saying %q", a.status, a.body, step.want)
		}
	}
}

// TestLoadingAnswersAccessFirst holds a node with API keys in its load:
// access control answers before the loading gate, so a recommendation
// without a key is 401 and one with a key of another scope 403, and only
// one with the recommend key learns that the node is loading (503 with
// Retry-After).
func TestLoadingAnswersAccessFirst(t *testing.T) {
	kr := newKeyring(t)
	tn := startNode(t, Config{AlertInterval: -1, Access: AccessConfig{KeysFile: kr.writeFile(t)}})
	done := tn.Loading("the synthetic world (users and items)")
	defer done()
	for _, rq := range []struct{ method, path, body string }{
		{"POST", "/v1/recommendations", `{"user_id":"u1","count":5}`},
		{"GET", "/v1/users/u1/recommendations?count=5", ""},
	} {
		for _, tt := range []struct {
			key    string // "" sends none
			status int
		}{{"", http.StatusUnauthorized}, {"ingest", http.StatusForbidden}, {"recommend", http.StatusServiceUnavailable}} {
			var hdr []string
			if tt.key != "" {
				hdr = []string{"Authorization", "Bearer " + kr.secrets[tt.key]}
			}
			a := ask(t, rq.method, tn.base+rq.path, rq.body, hdr...)
			if a.status != tt.status || a.ctype != "application/problem+json" {
				t.Errorf("%s %s with key %q while loading = %d %s %s, want %d application/problem+json", rq.method, rq.path, tt.key, a.status, a.ctype, a.body, tt.status)
			}
			if loading := a.retryAfter != "" || strings.Contains(string(a.body), "loading"); loading != (tt.status == http.StatusServiceUnavailable) {
				t.Errorf("%s %s with key %q while loading: Retry-After %q, body %s; only the recommend key may learn the node is loading",
					rq.method, rq.path, tt.key, a.retryAfter, a.body)
			}
		}
	}
}
