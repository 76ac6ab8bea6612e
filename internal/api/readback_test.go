package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/api"
	"github.com/sightline/sightline/internal/event"
)

// readCatalog is a memCatalog with the read side (api.CatalogReader) and
// users' activity; fail makes every read fail.
type readCatalog struct {
	*memCatalog
	activity map[string]api.Activity
	fail     error
}

var _ api.CatalogReader = (*readCatalog)(nil)

func (c *readCatalog) UserProfile(_ context.Context, id string) (api.UserProfile, bool, error) {
	if c.fail != nil {
		return api.UserProfile{}, false, c.fail
	}
	c.mu.Lock()
	u, found := c.users[id]
	c.mu.Unlock()
	act, active := c.activity[id]
	if !found && !active {
		return api.UserProfile{}, false, nil
	}
	return api.UserProfile{User: u, Activity: act}, true, nil
}

func (c *readCatalog) CatalogItem(_ context.Context, id string) (event.Item, bool, error) {
	if c.fail != nil {
		return event.Item{}, false, c.fail
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.items[id]
	return it, ok, nil
}

func TestReadBack(t *testing.T) {
	rc := &readCatalog{memCatalog: newMemCatalog(), activity: map[string]api.Activity{
		"only-events": {RecentItems: []string{"i2", "i1"}, RecentCategories: []string{"c"}, ClickedItems: []string{"i2", "i1"}},
	}}
	e := newEnv(t, func(c *api.Config) { c.Catalog = rc })

	if resp, body := e.do(t, "PUT", "/v1/users/u%2F1", `{"segment":"s","region":"eu","attributes":{"plan":"gold"},"updated_at":"2026-01-02T03:04:05Z"}`); resp.StatusCode != 204 {
		t.Fatalf("PUT user = %d %s, want 204", resp.StatusCode, body)
	}
	resp, body := e.do(t, "GET", "/v1/users/u%2F1", "")
	var got api.UserProfile
	if resp.StatusCode != 200 || json.Unmarshal(body, &got) != nil {
		t.Fatalf("GET /v1/users/u%%2F1 = %d %s, want 200 and a profile", resp.StatusCode, body)
	}
	want := api.UserProfile{
		User: event.User{ID: "u/1", Segment: "s", Region: "eu", Attrs: map[string]string{"plan": "gold"},
			UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		Activity: api.Activity{RecentItems: []string{}, RecentCategories: []string{}, ClickedItems: []string{}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET user mismatch (-want +got):\n%s", diff)
	}

	// A user known only from events has its activity and no profile.
	resp, body = e.do(t, "GET", "/v1/users/only-events", "")
	got = api.UserProfile{}
	if resp.StatusCode != 200 || json.Unmarshal(body, &got) != nil {
		t.Fatalf("GET /v1/users/only-events = %d %s, want 200", resp.StatusCode, body)
	}
	if got.ID != "only-events" || got.Segment != "" || !slices.Equal(got.Activity.RecentItems, []string{"i2", "i1"}) {
		t.Errorf("GET /v1/users/only-events = %+v, want the activity under its id", got)
	}

	if resp, body := e.do(t, "PUT", "/v1/items/i%201", `{"category":"c","tags":["t"]}`); resp.StatusCode != 204 {
		t.Fatalf("PUT item = %d %s, want 204", resp.StatusCode, body)
	}
	resp, body = e.do(t, "GET", "/v1/items/i%201", "")
	var it event.Item
	if resp.StatusCode != 200 || json.Unmarshal(body, &it) != nil {
		t.Fatalf("GET /v1/items/i%%201 = %d %s, want 200", resp.StatusCode, body)
	}
	if diff := cmp.Diff(event.Item{ID: "i 1", Category: "c", Tags: []string{"t"}, Available: true}, it); diff != "" {
		t.Errorf("GET item mismatch (-want +got):\n%s", diff)
	}

	for _, tt := range []struct {
		name, path   string
		status       int
		slug, detail string
	}{
		{"unknown user", "/v1/users/nobody", 404, "not-found", "no profile or activity is stored for this user_id"},
		{"unknown item", "/v1/items/nothing", 404, "not-found", "no item with this item_id in the catalog"},
		{"long user id", "/v1/users/" + longID(), 400, "invalid-request", "user_id in the path must be at most 128 bytes"},
		{"control item id", "/v1/items/a%0Ab", 400, "invalid-request", "item_id in the path must be valid UTF-8 without control characters"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.do(t, "GET", tt.path, "")
			checkProblem(t, resp, body, tt.status, tt.slug, tt.detail)
		})
	}

	rc.fail = errors.New("store down")
	for _, path := range []string{"/v1/users/u%2F1", "/v1/items/i%201"} {
		resp, body := e.do(t, "GET", path, "")
		checkProblem(t, resp, body, 503, "unavailable", "could not be read; retry")
		if resp.Header.Get("Retry-After") == "" {
			t.Errorf("GET %s: 503 without Retry-After", path)
		}
	}
}

func longID() string { return strings.Repeat("u", 129) }

// TestReadBackNeedsAReader checks that a catalog without the read side
// answers the read-back routes with 501.
func TestReadBackNeedsAReader(t *testing.T) {
	e := newEnv(t, nil) // memCatalog has no read side
	for _, path := range []string{"/v1/users/u1", "/v1/items/i1"} {
		resp, body := e.do(t, "GET", path, "")
		checkProblem(t, resp, body, http.StatusNotImplemented, "not-implemented", "this node does not serve")
	}
}

// TestPatterns checks that Patterns lists the API routes, the read-back
// ones among them, and then the mounted ones.
func TestPatterns(t *testing.T) {
	s, err := api.New(api.Config{Recommender: &fakeRecommender{}, Mount: map[string]http.Handler{
		"GET /metrics": http.NotFoundHandler(), "GET /a": http.NotFoundHandler(),
	}, Access: api.AccessConfig{MountScopes: map[string]api.Scope{"GET /metrics": api.ScopeRead, "GET /a": api.ScopePublic}}})
	if err != nil {
		t.Fatal(err)
	}
	p := s.Patterns()
	if n := len(p); n < 3 || !slices.Equal(p[n-2:], []string{"GET /a", "GET /metrics"}) {
		t.Errorf("Patterns() = %v, want the mounted patterns last, sorted", p)
	}
	for _, want := range []string{"GET /v1/users/{user_id}", "GET /v1/items/{item_id}", "POST /v1/recommendations"} {
		if !slices.Contains(p, want) {
			t.Errorf("Patterns() = %v, want %s among them", p, want)
		}
	}
}
