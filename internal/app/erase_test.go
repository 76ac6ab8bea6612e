package app

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/api"
)

// httpDo sends a request without a body and returns the status and body.
func httpDo(t testing.TB, method, url string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// eraseUser sends DELETE /v1/users/{id} and decodes its 200 answer.
func eraseUser(t testing.TB, base, id string) api.UserErasure {
	t.Helper()
	st, b := httpDo(t, "DELETE", base+"/v1/users/"+id)
	var e api.UserErasure
	if st != http.StatusOK || json.Unmarshal(b, &e) != nil {
		t.Fatalf("DELETE /v1/users/%s = %d %s, want 200 and what was erased", id, st, b)
	}
	return e
}

// userDecisions makes k recommendations for the user id with a click on
// the first item of each, and returns the request ids and the events.
func userDecisions(t testing.TB, c *client.Client, id string, k int) (reqs []string, evs []client.Event) {
	t.Helper()
	for range k {
		rec, err := c.Recommend(t.Context(), client.RecommendRequest{UserID: id, Count: 5, Context: client.Context{Channel: "web"}})
		if err != nil || len(rec.Items) == 0 {
			t.Fatalf("Recommend(%s) = %+v, %v; want items", id, rec, err)
		}
		reqs = append(reqs, rec.RequestID)
		evs = append(evs,
			client.Event{EventID: rec.RequestID + "-imp", Type: client.TypeImpression, UserID: id, ItemID: rec.Items[0].ItemID, RequestID: rec.RequestID, Channel: "web", Timestamp: time.Now()},
			client.Event{EventID: rec.RequestID + "-click", Type: client.TypeClick, UserID: id, ItemID: rec.Items[0].ItemID, RequestID: rec.RequestID, Channel: "web", Timestamp: time.Now()})
	}
	return reqs, evs
}

// TestEraseUser erases a user of a single node that has its profile, its
// activity and recent decisions, with a feature snapshot taken before its
// events and the erasure: afterwards GET /v1/users finds nothing, GET /v1/decisions none
// of its decisions (another user's are kept), and a second DELETE erases
// nothing. The erasure survives both a crash (a copy of the data directory
// made while the node runs: the snapshot older than the erasure is restored
// and the journal and the event log replayed over it) and a clean restart,
// and the user's events sent after the erasure are kept.
func TestEraseUser(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, Config{DataDir: dir})
	w := smallWorld()
	if err := w.Load(t.Context(), n.c); err != nil {
		t.Fatal(err)
	}
	n.Engine().Index().Refresh()
	gone, kept := w.User(3).ID, w.User(4).ID
	// A snapshot holding the user's profile; its events come after it.
	if err := n.Snapshot(t.Context()); err != nil {
		t.Fatal(err)
	}
	goneReqs, evs := userDecisions(t, n.c, gone, 3)
	keptReqs, evs2 := userDecisions(t, n.c, kept, 2)
	if res, err := n.c.SendEvents(t.Context(), append(evs, evs2...)); err != nil || res.Accepted != len(evs)+len(evs2) {
		t.Fatalf("SendEvents = %+v, %v", res, err)
	}
	if err := n.WaitApplied(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st, b := httpDo(t, "GET", n.base+"/v1/users/"+gone); st != http.StatusOK {
		t.Fatalf("GET the user before the erasure = %d %s, want 200", st, b)
	}

	got := eraseUser(t, n.base, gone)
	if want := (api.UserErasure{Profile: true, Activity: true, Decisions: len(goneReqs)}); got != want {
		t.Errorf("DELETE /v1/users/%s = %+v, want %+v", gone, got, want)
	}
	checkErased := func(t *testing.T, base string, decisions bool) {
		t.Helper()
		if st, b := httpDo(t, "GET", base+"/v1/users/"+gone); st != http.StatusNotFound {
			t.Errorf("GET /v1/users/%s after the erasure = %d %s, want 404", gone, st, b)
		}
		if st, _ := httpDo(t, "GET", base+"/v1/users/"+kept); st != http.StatusOK {
			t.Errorf("GET /v1/users/%s (not erased) = %d, want 200", kept, st)
		}
		for _, id := range goneReqs {
			if st, _ := httpDo(t, "GET", base+"/v1/decisions/"+id); st != http.StatusNotFound {
				t.Errorf("GET /v1/decisions/%s of the erased user = %d, want 404", id, st)
			}
		}
		if decisions {
			for _, id := range keptReqs {
				if st, _ := httpDo(t, "GET", base+"/v1/decisions/"+id); st != http.StatusOK {
					t.Errorf("GET /v1/decisions/%s of another user = %d, want 200", id, st)
				}
			}
		}
	}
	checkErased(t, n.base, true)
	if again := eraseUser(t, n.base, gone); again != (api.UserErasure{}) {
		t.Errorf("DELETE again = %+v, want nothing erased", again)
	}
	if err := n.WaitApplied(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkErased(t, n.base, true) // the erasure record applied too

	// A crash now: the snapshot holds the user's profile and the log its
	// events; the journal's erase entry and the erasure record, replayed
	// after them, must erase the user again.
	crashed := filepath.Join(t.TempDir(), "crashed")
	if out, err := exec.Command("cp", "-a", dir, crashed).CombinedOutput(); err != nil {
		t.Fatalf("copy the data directory: %v: %s", err, out)
	}
	c := startNode(t, Config{DataDir: crashed})
	if s := waitApplied(t, c.base); s.Restore.FeatureSnapshot != "loaded" {
		t.Errorf("after the crash: feature snapshot %q, want loaded (the one holding the user)", s.Restore.FeatureSnapshot)
	}
	if err := c.WaitApplied(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkErased(t, c.base, false)
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}

	// The user comes back: new activity is kept.
	_, after := userDecisions(t, n.c, gone, 1)
	if res, err := n.c.SendEvents(t.Context(), after[1:]); err != nil || res.Accepted != 1 {
		t.Fatalf("SendEvents after the erasure = %+v, %v", res, err)
	}
	if err := n.WaitApplied(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st, b := httpDo(t, "GET", n.base+"/v1/users/"+gone); st != http.StatusOK {
		t.Errorf("GET /v1/users/%s after its click after the erasure = %d %s, want 200", gone, st, b)
	}
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	n2 := startNode(t, Config{DataDir: dir})
	if err := n2.WaitApplied(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, b := httpDo(t, "GET", n2.base+"/v1/users/"+gone)
	var p api.UserProfile
	if st != http.StatusOK || json.Unmarshal(b, &p) != nil {
		t.Fatalf("GET /v1/users/%s after a restart = %d %s, want 200 with the activity after the erasure", gone, st, b)
	}
	if p.Segment != "" || !slices.Equal(p.Activity.ClickedItems, []string{after[1].ItemID}) {
		t.Errorf("after a restart the user is %+v; want no profile and only the click after the erasure (%s)", p, after[1].ItemID)
	}
	for _, id := range goneReqs {
		if st, _ := httpDo(t, "GET", n2.base+"/v1/decisions/"+id); st != http.StatusNotFound {
			t.Errorf("GET /v1/decisions/%s after a restart = %d, want 404", id, st)
		}
	}
}

// TestClientEraseUser erases a user through the public client on a real
// node: User reads the stored profile back, EraseUser reports it erased,
// and User then answers 404.
func TestClientEraseUser(t *testing.T) {
	n := startNode(t, Config{})
	ctx := t.Context()
	if err := n.c.PutUser(ctx, client.User{UserID: "+1 555 0100", Segment: "new", AgeBucket: "25-34"}); err != nil {
		t.Fatal(err)
	}
	p, err := n.c.User(ctx, "+1 555 0100")
	if err != nil || p.UserID != "+1 555 0100" || p.Segment != "new" || p.AgeBucket != "25-34" || p.UpdatedAt.IsZero() {
		t.Fatalf("User() = %+v, %v; want the stored profile", p, err)
	}
	e, err := n.c.EraseUser(ctx, "+1 555 0100")
	if err != nil || !e.Profile {
		t.Fatalf("EraseUser() = %+v, %v; want the profile erased", e, err)
	}
	_, err = n.c.User(ctx, "+1 555 0100")
	if ce, ok := errors.AsType[*client.Error](err); !ok || ce.Status != http.StatusNotFound {
		t.Errorf("User() after the erasure error = %v, want a 404 *client.Error", err)
	}
	if e, err := n.c.EraseUser(ctx, "+1 555 0100"); err != nil || *e != (client.Erasure{}) {
		t.Errorf("EraseUser() again = %+v, %v; want nothing erased", e, err)
	}
}
