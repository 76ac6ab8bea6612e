package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/sightline/sightline/client"
)

// erasureBudget is how soon a DELETE /v1/users/{id} through one API node
// must show on the other nodes (through the event stream).
const erasureBudget = 5 * time.Second

// status sends method path to n and returns the status and body.
func (c *cluster) status(n *node, method, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(c.ctx, method, n.base+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %s %s: %w", n.name, method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, nil
}

// testErasure: a user with a profile, activity and decisions on both API
// nodes is erased through api-a; within erasureBudget api-b no longer has
// its decisions (GET /v1/decisions → 404) nor its profile and activity
// (shared Redis), nor has the active trainer (its ring, filled from the
// decision stream), while another user's decisions stay.
func (c *cluster) testErasure(t *testing.T) {
	c.requireRoles(t)
	a, b := c.api[0], c.api[1]
	gone, other := "erase-"+c.run, "keep-"+c.run
	if err := b.c.PutUser(c.ctx, client.User{UserID: gone, AgeBucket: "25-34", Segment: "regular"}); err != nil {
		t.Fatalf("PUT user through %s: %v", b.name, err)
	}
	recommend := func(n *node, user string) string {
		t.Helper()
		r, err := n.c.Recommend(c.ctx, client.RecommendRequest{UserID: user, Count: 5, Context: client.Context{Channel: "web"}})
		if err != nil || len(r.Items) == 0 {
			t.Fatalf("recommend %s on %s = %s, %v", user, n.name, fmtRec(r), err)
		}
		return r.RequestID
	}
	onA, onB, otherB := recommend(a, gone), recommend(b, gone), recommend(b, other)
	r, err := b.c.Recommend(c.ctx, client.RecommendRequest{UserID: gone, Count: 5, Context: client.Context{Channel: "web"}})
	if err != nil || len(r.Items) == 0 {
		t.Fatalf("recommend: %v", err)
	}
	click := client.Event{EventID: "erase-click-" + c.run, Type: client.TypeClick, UserID: gone, ItemID: r.Items[0].ItemID, RequestID: r.RequestID, Channel: "web", Timestamp: time.Now()}
	if _, err := a.c.SendEvents(c.ctx, []client.Event{click}); err != nil {
		t.Fatalf("send a click through %s: %v", a.name, err)
	}
	trainer, _, err := c.activeTrainer()
	if err != nil {
		t.Fatal(err)
	}
	// The click reaches Redis (the trainer writes activity) and the
	// decisions reach the trainer, before the erasure.
	if why, ok := pollUntil(c.ctx, 10*time.Second, 20*time.Millisecond, func() (bool, string) {
		st, body, err := c.status(b, "GET", "/v1/users/"+gone)
		if err != nil || st != http.StatusOK {
			return false, fmt.Sprintf("GET user on %s = %d %.200s %v", b.name, st, body, err)
		}
		var p struct {
			Activity struct {
				Clicked []string `json:"clicked_items"`
			} `json:"activity"`
		}
		if json.Unmarshal(body, &p) != nil || len(p.Activity.Clicked) == 0 {
			return false, fmt.Sprintf("no activity yet: %.200s", body)
		}
		st, _, err = c.status(trainer, "GET", "/v1/decisions/"+onB)
		return err == nil && st == http.StatusOK, fmt.Sprintf("decision on %s: %d %v", trainer.name, st, err)
	}); !ok {
		t.Fatalf("before the erasure: %s", why)
	}

	start := time.Now()
	st, body, err := c.status(a, "DELETE", "/v1/users/"+gone)
	if err != nil || st != http.StatusOK {
		t.Fatalf("DELETE /v1/users/%s on %s = %d %s, %v", gone, a.name, st, body, err)
	}
	var erased struct {
		Profile, Activity bool
		Decisions         int
	}
	if err := json.Unmarshal(body, &erased); err != nil || !erased.Profile || !erased.Activity || erased.Decisions != 1 {
		t.Errorf("DELETE on %s = %s, want profile and activity erased and its 1 decision dropped", a.name, body)
	}
	for _, n := range []*node{b, trainer} {
		why, ok := pollUntil(c.ctx, erasureBudget, 10*time.Millisecond, func() (bool, string) {
			for _, id := range []string{onA, onB, r.RequestID} {
				if st, _, err := c.status(n, "GET", "/v1/decisions/"+id); err != nil || st != http.StatusNotFound {
					return false, fmt.Sprintf("GET /v1/decisions/%s = %d %v", id, st, err)
				}
			}
			return true, ""
		})
		if !ok {
			t.Errorf("%s still has decisions of the user erased through %s %v later: %s", n.name, a.name, erasureBudget, why)
			continue
		}
		t.Logf("%s dropped the erased user's decisions within %v", n.name, time.Since(start).Round(time.Millisecond))
	}
	if st, body, err := c.status(b, "GET", "/v1/users/"+gone); err != nil || st != http.StatusNotFound {
		t.Errorf("GET /v1/users/%s on %s after the erasure = %d %s %v, want 404", gone, b.name, st, body, err)
	}
	if st, _, err := c.status(b, "GET", "/v1/decisions/"+otherB); err != nil || st != http.StatusOK {
		t.Errorf("GET /v1/decisions/%s (another user) on %s = %d %v, want 200", otherB, b.name, st, err)
	}
}
