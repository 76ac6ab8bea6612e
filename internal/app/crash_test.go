package app

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sightline/sightline/client"
)

// syncBuffer is a bytes.Buffer safe for the exec copier and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestMain runs a node instead of the tests when TestKill9 starts this
// binary as its child process.
func TestMain(m *testing.M) {
	if dir := os.Getenv("SIGHTLINE_CHILD_DATA_DIR"); dir != "" {
		runChildNode(dir)
	}
	os.Exit(m.Run())
}

func runChildNode(dir string) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	n, err := New(ctx, Config{Addr: "127.0.0.1:0", DataDir: dir, LogWriter: io.Discard, SnapshotInterval: 150 * time.Millisecond})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	ln, err := n.Listen()
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Println("LISTENING", n.Addr())
	if err := n.Serve(ctx, ln); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// startChild runs a node in a child process on dir and returns its base URL.
func startChild(t *testing.T, dir string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "SIGHTLINE_CHILD_DATA_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	t.Cleanup(func() {
		if strings.Contains(stderr.String(), "DATA RACE") || strings.Contains(stderr.String(), "panic:") {
			t.Errorf("child process reported a failure:\n%s", stderr.String())
		}
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The child may have ended already; its exit status is the kill's.
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(out)
	addr := make(chan string, 1)
	go func() {
		for lines.Scan() {
			if a, ok := strings.CutPrefix(lines.Text(), "LISTENING "); ok {
				addr <- a
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatal("child exited before listening")
		}
		base := "http://" + a
		waitReady(t, base)
		return cmd, base
	case <-time.After(30 * time.Second):
		t.Fatal("child did not start")
	}
	return nil, ""
}

// TestKill9 sends events to a node in a child process while it snapshots
// every 150ms, kills it with SIGKILL, restarts it on the same data dir and
// checks that every acknowledged event is applied exactly once.
func TestKill9(t *testing.T) {
	dir := t.TempDir()
	cmd, base := startChild(t, dir)
	c, err := client.New(base)
	if err != nil {
		t.Fatal(err)
	}
	w := smallWorld()
	if err := w.Load(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the index publishes every 200ms
	acked := 0
	for k := range 15 {
		evs := recommendAndEvents(t, c, w, k, 10)
		res, err := c.SendEvents(t.Context(), evs)
		if err != nil || res.Accepted != len(evs) || res.Duplicates != 0 {
			t.Fatalf("SendEvents = %+v, %v", res, err)
		}
		acked += len(evs)
		time.Sleep(30 * time.Millisecond) // let snapshots interleave with the stream
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // the exit status is the SIGKILL

	_, base2 := startChild(t, dir)
	s := waitApplied(t, base2)
	if s.EventsLogged != uint64(acked) {
		t.Errorf("after kill -9: %d events in the log, want the %d acknowledged", s.EventsLogged, acked)
	}
	if s.ModelUpdates != uint64(acked) {
		t.Errorf("after kill -9: %d model updates, want %d: every acknowledged event applied exactly once (snapshot %q at offset %d)",
			s.ModelUpdates, acked, s.Restore.ModelSnapshot, s.Restore.ModelOffset)
	}
	if s.Users != 2000 || s.Items != 500 {
		t.Errorf("after kill -9: %d users, %d items, want 2000 and 500 (imports are journaled)", s.Users, s.Items)
	}
	t.Logf("acked %d; restored model snapshot %q at offset %d, features at %d, journal entries replayed %d",
		acked, s.Restore.ModelSnapshot, s.Restore.ModelOffset, s.Restore.FeatureOffset, s.Restore.JournalReplayed)
}
