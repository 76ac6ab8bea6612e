package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sightline/sightline/client"
)

// mountSmallDisk mounts a tmpfs of size bytes on a fresh directory and
// unmounts it when t ends. Mounting needs root, which CI has: the test is
// skipped only when the process is not root, and fails when root cannot
// mount.
func mountSmallDisk(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root (CI runs the tests as root)")
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mount tmpfs on %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk appends zeros to path until its file system is full: called
// again, it takes up what the node freed since (a failed snapshot's or
// decision log file's removal).
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		_, err := f.Write(buf)
		if errors.Is(err, syscall.ENOSPC) {
			return
		}
		if err != nil {
			t.Fatalf("fill %s: %v", path, err)
		}
	}
}

// postEvents posts evs to POST /v1/events once (no retry) and returns the
// status, content type and body.
func postEvents(t *testing.T, base string, evs []client.Event) (int, string, []byte) {
	t.Helper()
	body, err := json.Marshal(evs)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(base+"/v1/events", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST /v1/events: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// TestEventLogFullDisk runs a node whose data directory is a 4 MiB tmpfs
// and fills it: POST /v1/events answers 503 problem+json (not 500) while
// recommendations keep being served and snapshots (every 100ms) fail;
// once space is freed the same node
// accepts events again, and after a restart every acknowledged event is
// in the log and applied exactly once, and none of the refused ones.
func TestEventLogFullDisk(t *testing.T) {
	dir := mountSmallDisk(t, 4<<20)
	w := smallWorld()
	var logs syncBuffer
	n := startNode(t, Config{DataDir: dir, SnapshotInterval: 100 * time.Millisecond, LogWriter: &logs})
	if err := w.Load(t.Context(), n.c); err != nil {
		t.Fatal(err)
	}
	n.Engine().Index().Refresh()
	acked := 0
	send := func(k int) (int, string, []byte, int) {
		evs := recommendAndEvents(t, n.c, w, k, 10)
		st, ct, b := postEvents(t, n.base, evs)
		if st == http.StatusAccepted {
			acked += len(evs)
		}
		return st, ct, b, len(evs)
	}
	for k := range 3 {
		if st, _, b, _ := send(k); st != http.StatusAccepted {
			t.Fatalf("POST /v1/events before the disk is full = %d %s", st, b)
		}
	}

	ballast := filepath.Join(dir, "ballast")
	fillDisk(t, ballast)
	refused := 0
	for k := 3; k < 8; k++ {
		// The node frees space now and then (a failed snapshot's temporary
		// file removed): the disk is full again before each batch.
		fillDisk(t, ballast)
		st, ct, b, m := send(k)
		if st == http.StatusAccepted {
			continue // fitted in what was left of a page of the segment
		}
		refused += m
		if st != http.StatusServiceUnavailable || ct != "application/problem+json" {
			t.Fatalf("POST /v1/events on a full disk = %d %s %s, want 503 application/problem+json", st, ct, b)
		}
		var p struct {
			Status int    `json:"status"`
			Detail string `json:"detail"`
		}
		if err := json.Unmarshal(b, &p); err != nil || p.Status != 503 || p.Detail == "" {
			t.Errorf("503 body = %s (%v), want a problem with status and detail", b, err)
		}
	}
	if refused == 0 {
		t.Fatal("every POST /v1/events was accepted on a full disk")
	}
	// Reads keep serving, while snapshots fail on the full disk too.
	time.Sleep(350 * time.Millisecond)
	for i := range 20 {
		rec, err := n.c.Recommend(t.Context(), client.RecommendRequest{UserID: w.User(i).ID, Count: 5, Context: client.Context{Channel: "web"}})
		if err != nil || len(rec.Items) == 0 {
			t.Fatalf("Recommend on a full disk = %+v, %v; want items", rec, err)
		}
	}
	if !strings.Contains(logs.String(), "periodic snapshot failed") {
		t.Errorf("no snapshot failed while the disk was full: the test did not reach the snapshots")
	}
	if s := getStats(t, n.base); s.EventsLogged != uint64(acked) {
		t.Errorf("on a full disk: %d events logged, want the %d acknowledged", s.EventsLogged, acked)
	}

	// Space returns: the same node accepts events again.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	for k := 8; k < 11; k++ {
		if st, _, b, _ := send(k); st != http.StatusAccepted {
			t.Fatalf("POST /v1/events after space was freed = %d %s; want 202 without a restart", st, b)
		}
	}
	waitApplied(t, n.base)
	time.Sleep(300 * time.Millisecond) // a snapshot with space again
	if err := n.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	n2 := startNode(t, Config{DataDir: dir})
	s := waitApplied(t, n2.base)
	if s.Restore.ModelSnapshot == "" {
		t.Errorf("after a restart: no model snapshot restored (%+v); want the one saved once space returned", s.Restore)
	}
	if s.EventsLogged != uint64(acked) || s.ModelUpdates != uint64(acked) {
		t.Errorf("after a restart: %d events logged, %d model updates; want the %d acknowledged, each once (%d were refused)",
			s.EventsLogged, s.ModelUpdates, acked, refused)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := n2.c.Recommend(ctx, client.RecommendRequest{UserID: w.User(1).ID, Count: 5}); err != nil {
		t.Errorf("Recommend after the restart: %v", err)
	}
	t.Logf("%d events acknowledged, %d refused with 503 on the full disk", acked, refused)
}
