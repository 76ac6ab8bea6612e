package decisionlog

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The crash test runs a child process (this test binary, re-executed with
// crashChildEnv naming the directory) that writes the log continuously,
// kills it with SIGKILL in the middle of a file, and checks what is left.
const (
	crashChildEnv = "SIGHTLINE_DECISIONLOG_CRASH_CHILD"
	crashMaxRows  = 300
	crashBuffer   = 64
)

// crashChild writes decisions and one event per decision until it is
// killed, printing the number of decisions whose record and event were both
// accepted after each one.
func crashChild() {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(2)
	}
	rc, err := newRecorder()
	if err != nil {
		fail(err)
	}
	w, err := New(Config{Dir: os.Getenv(crashChildEnv), Node: "crash", MaxFileRows: crashMaxRows,
		RowGroupRows: 50, Buffer: crashBuffer, RollInterval: time.Hour})
	if err != nil {
		fail(err)
	}
	go func() {
		if err := w.Run(context.Background()); err != nil {
			fail(err)
		}
	}()
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		d, rec, err := rc.decide(fmt.Sprintf("c%07d", i), "alice", at, false)
		if err != nil {
			fail(err)
		}
		for !w.Record(rec) {
			time.Sleep(50 * time.Microsecond)
		}
		for ev := clickFor(d, 0, time.Second); !w.Event(ev); {
			time.Sleep(50 * time.Microsecond)
		}
		fmt.Fprintln(out, i+1)
		if err := out.Flush(); err != nil {
			fail(err)
		}
	}
}

func TestCrashSafety(t *testing.T) {
	for run := range 3 {
		t.Run(fmt.Sprint("kill ", run), func(t *testing.T) { crashOnce(t) })
	}
}

func crashOnce(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill after a few files, at a random point of the open one.
	// With the queue's entries not yet handled, at least three files were
	// filled; the third may be in the middle of its close.
	killAt := 3*crashMaxRows + crashBuffer + rand.IntN(crashMaxRows)
	sc := bufio.NewScanner(stdout)
	accepted := 0
	killed := false
	for sc.Scan() {
		n, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("child printed %q", sc.Text())
		}
		accepted = n
		if !killed && n >= killAt {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child ended before it was killed: %v", err)
	}
	// The child may have had one more decision accepted than it printed.
	t.Logf("killed after %d accepted decisions and events", accepted)

	var temps []string
	if err := filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, tmpSuffix) {
			temps = append(temps, path)
		}
		return nil
	}); err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}

	// Every closed file reads whole; no temporary file is read.
	files, err := Files(dir)
	if err != nil {
		t.Fatalf("Files: %v", err)
	}
	var footerRows [2]int64
	for _, f := range files {
		if f.Rows != crashMaxRows {
			t.Errorf("closed file %s has %d rows, want %d (files close only when full here)", f.Path, f.Rows, crashMaxRows)
		}
		footerRows[kindIndex(f.Kind)] += f.Rows
	}
	decs, evs := readDecisions(t, dir), readEvents(t, dir)
	if int64(len(decs)) != footerRows[0] || int64(len(evs)) != footerRows[1] {
		t.Errorf("read %d decisions and %d events, footers say %v", len(decs), len(evs), footerRows)
	}
	// Rows are written in the order they were accepted: the closed files
	// hold the first ones, each once.
	for i, d := range decs {
		if want := fmt.Sprintf("c%07d", i); d.RequestID != want {
			t.Fatalf("decision %d is %s, want %s", i, d.RequestID, want)
		}
	}
	for i, e := range evs {
		if want := fmt.Sprintf("c%07d-e0", i); e.EventID != want {
			t.Fatalf("event %d is %s, want %s", i, e.EventID, want)
		}
	}
	lost := 2*accepted - len(decs) - len(evs)
	// The documented bound: the rows of each open file (one per kind and
	// hour, fewer than MaxFileRows each) and the queue.
	if bound := 2*(crashMaxRows-1) + crashBuffer; lost < -2 || lost > bound {
		t.Errorf("lost %d rows (accepted %d decisions and %d events, read %d and %d), want 0..%d",
			lost, accepted, accepted, len(decs), len(evs), bound)
	}
	if len(decs) < 2*crashMaxRows {
		t.Errorf("only %d decisions in closed files, want at least %d", len(decs), 2*crashMaxRows)
	}
	t.Logf("read %d decisions and %d events back, lost %d rows, %d temporary files left", len(decs), len(evs), lost, len(temps))

	// The next run removes and counts the temporary files.
	reg := prometheus.NewRegistry()
	w := newWriter(t, Config{Dir: dir, Node: "crash", Registerer: reg, Retention: -1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := value(w.met.abandoned); got != float64(len(temps)) {
		t.Errorf("abandoned_files_total = %v, want the %d temporary files %v", got, len(temps), temps)
	}
	for _, p := range temps {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("temporary file %s still there after restart (%v)", p, err)
		}
	}
	if n, _, err := Count(dir); err != nil || n != footerRows[0] {
		t.Errorf("Count after restart = %d, %v; want %d", n, err, footerRows[0])
	}
}
