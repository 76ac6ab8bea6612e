package ingest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const crashDirEnv = "SIGHTLINE_INGEST_CRASH_DIR"

// crashWriter is the child process of TestCrashRecovery (TestMain runs it
// when crashDirEnv is set): it appends until it is killed. Each
// acknowledged batch is printed as one line "ack <id> <id> ...".
func crashWriter(dir string) {
	l, err := Open(dir, Config{SegmentBytes: 128 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	for w := range 4 {
		go func() {
			for b := 0; ; b++ {
				evs := testEvents(fmt.Sprintf("w%d-b%d", w, b), 40)
				if _, err := l.Append(context.Background(), evs); err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(2)
				}
				var line strings.Builder
				line.WriteString("ack")
				for _, ev := range evs {
					line.WriteString(" " + ev.ID)
				}
				line.WriteString("\n")
				mu.Lock()
				os.Stdout.WriteString(line.String()) // one write: a line is never interleaved
				mu.Unlock()
			}
		}()
	}
	select {} // until SIGKILL
}

func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	safety := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() }) // a child gone already is fine
	defer safety.Stop()

	const killAfter = 4000
	acked := make(map[string]bool)
	killed := false
	r := bufio.NewReader(out)
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			break // a final partial line was not acknowledged completely
		}
		if err != nil {
			t.Fatalf("read child stdout: %v", err)
		}
		if !strings.HasPrefix(line, "ack ") {
			continue
		}
		for _, id := range strings.Fields(line)[1:] {
			acked[id] = true
		}
		if !killed && len(acked) >= killAfter {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited after %d acknowledged events (%v), stderr:\n%s", len(acked), err, stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child exit = %v, want killed by SIGKILL", err)
	}

	l := openLog(t, dir, Config{SegmentBytes: 128 << 10})
	all := readAll(t, l)
	count := make(map[string]int, len(all))
	for i, rec := range all {
		if rec.Offset != uint64(i) {
			t.Fatalf("record %d has offset %d, want contiguous offsets from 0", i, rec.Offset)
		}
		count[rec.Event.ID]++
	}
	if uint64(len(all)) != l.Next() {
		t.Errorf("records = %d, Next() = %d, want equal", len(all), l.Next())
	}
	missing := 0
	for id := range acked {
		if count[id] != 1 {
			missing++
			if missing <= 5 {
				t.Errorf("acknowledged event %s appears %d times after the crash, want 1", id, count[id])
			}
		}
	}
	for id, n := range count {
		if n > 1 {
			t.Errorf("event %s appears %d times, want at most 1", id, n)
		}
	}
	t.Logf("acknowledged %d events, recovered %d records", len(acked), len(all))
	// The recovered log accepts appends and still deduplicates.
	res := mustAppend(t, l, testEvents("w0-b0", 40))
	if res.Duplicates != 40 {
		t.Errorf("re-Append of an acknowledged batch = %+v, want 40 duplicates", res)
	}
}
