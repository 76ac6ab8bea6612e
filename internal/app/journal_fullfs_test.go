package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/api"
)

// putUser sends PUT /v1/users/{id} once (no retry) and returns the status,
// content type and body.
func putUser(t *testing.T, base, id, segment string) (int, string, []byte) {
	t.Helper()
	body, err := json.Marshal(map[string]string{"segment": segment, "age_bucket": "25-34"})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, base+"/v1/users/"+id, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT /v1/users/%s: %v", id, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// TestFeatureJournalFullDisk runs a node whose data directory is a 4 MiB
// tmpfs and fills it: PUT /v1/users answers 503 problem+json while reads
// (GET /v1/users, recommendations) keep serving; once space is freed the
// same node, without a restart, stores profiles again (the journal does not
// keep a failed write's error as a bufio.Writer did), and after a restart
// every acknowledged profile is there with what was acknowledged, none lost
// behind a torn write.
func TestFeatureJournalFullDisk(t *testing.T) {
	dir := mountSmallDisk(t, 4<<20)
	n := startNode(t, Config{DataDir: dir})
	for i := range 20 {
		if err := n.c.PutItem(t.Context(), client.Item{ItemID: fmt.Sprintf("i%d", i), Category: "c", Available: true}); err != nil {
			t.Fatal(err)
		}
	}
	n.Engine().Index().Refresh()
	acked := map[string]string{} // user → segment acknowledged last
	put := func(id, segment string) (int, string, []byte) {
		st, ct, b := putUser(t, n.base, id, segment)
		if st == http.StatusNoContent {
			acked[id] = segment
		}
		return st, ct, b
	}
	for i := range 10 {
		if st, _, b := put(fmt.Sprintf("u%d", i), "before"); st != http.StatusNoContent {
			t.Fatalf("PUT before the disk is full = %d %s", st, b)
		}
	}

	ballast := filepath.Join(dir, "ballast")
	fillDisk(t, ballast)
	refused := 0
	for i := range 300 { // a profile's entry is ~100 bytes: the last page fills
		st, ct, b := put(fmt.Sprintf("u%d", i%40), "full")
		if st == http.StatusNoContent {
			continue
		}
		refused++
		if st != http.StatusServiceUnavailable || ct != "application/problem+json" {
			t.Fatalf("PUT /v1/users on a full disk = %d %s %s, want 503 application/problem+json", st, ct, b)
		}
		var p api.Problem
		if err := json.Unmarshal(b, &p); err != nil || p.Status != 503 || p.Detail == "" {
			t.Errorf("503 body = %s (%v), want a problem with status and detail", b, err)
		}
	}
	if refused == 0 {
		t.Fatal("every PUT /v1/users was accepted on a full disk")
	}
	// Reads keep serving.
	for id := range acked {
		if st, _ := httpDo(t, "GET", n.base+"/v1/users/"+id); st != http.StatusOK {
			t.Errorf("GET /v1/users/%s on a full disk = %d, want 200", id, st)
		}
	}
	if rec, err := n.c.Recommend(t.Context(), client.RecommendRequest{UserID: "u1", Count: 5}); err != nil || len(rec.Items) == 0 {
		t.Errorf("Recommend on a full disk = %+v, %v; want items", rec, err)
	}

	// Space returns: the same node stores profiles again.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		if st, _, b := put(fmt.Sprintf("u%d", i), fmt.Sprintf("after-%d", i)); st != http.StatusNoContent {
			t.Fatalf("PUT /v1/users after space was freed = %d %s; want 204 without a restart", st, b)
		}
	}
	if err := n.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	n2 := startNode(t, Config{DataDir: dir})
	for id, seg := range acked {
		st, b := httpDo(t, "GET", n2.base+"/v1/users/"+id)
		var p api.UserProfile
		if st != http.StatusOK || json.Unmarshal(b, &p) != nil || p.Segment != seg {
			t.Errorf("after a restart GET /v1/users/%s = %d %s, want the acknowledged segment %q", id, st, b, seg)
		}
	}
	t.Logf("%d profiles acknowledged, %d PUTs refused with 503 on the full disk", len(acked), refused)
}
