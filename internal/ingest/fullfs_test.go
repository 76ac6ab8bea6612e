package ingest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// mountTmpfs mounts a tmpfs of size bytes on a fresh directory and
// unmounts it when t ends. It needs root, as CI has: the test is skipped
// only when the process is not root; a root that cannot mount fails.
func mountTmpfs(t *testing.T, size int) string {
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

// fillFile writes zeros to path until the file system is full.
func fillFile(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		k, err := f.Write(buf)
		n += int64(k)
		if errors.Is(err, syscall.ENOSPC) {
			return n
		}
		if err != nil {
			t.Fatalf("fill %s: %v", path, err)
		}
	}
}

// checkSegments scans every segment file in dir and fails t on any frame
// that is not valid (a torn or corrupt tail).
func checkSegments(t *testing.T, dir string) (records uint64) {
	t.Helper()
	bases, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, base := range bases {
		path := filepath.Join(dir, segmentName(base))
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		s := &segment{base: base, path: path, f: f}
		prob, err := s.scan(nil)
		fi, serr := f.Stat()
		f.Close()
		if err != nil || serr != nil {
			t.Fatalf("scan %s: %v %v", segmentName(base), err, serr)
		}
		if prob != nil {
			t.Errorf("segment %s: invalid frame at %d of %d bytes (%s): a failed write left bytes behind", segmentName(base), prob.pos, fi.Size(), prob.reason)
		} else if fi.Size() != s.size {
			t.Errorf("segment %s: %d bytes, %d of valid frames", segmentName(base), fi.Size(), s.size)
		}
		records += s.next - s.base
	}
	return records
}

// TestFullDisk fills the file system of the log (a 4 MiB tmpfs): Append
// fails with ENOSPC and the log stays readable, the failed writes leave no
// torn frame, appends succeed again without reopening once space is freed,
// and every acknowledged event is there exactly once after a reopen with
// no record counted corrupt.
func TestFullDisk(t *testing.T) {
	mnt := mountTmpfs(t, 4<<20)
	dir := filepath.Join(mnt, "events")
	cfg := Config{SegmentBytes: 256 << 10}
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Ballast takes the space the log does not fill, so that removing it
	// gives space back.
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}

	acked := map[string]int{}
	ack := func(prefix string, n int) error {
		evs := testEvents(prefix, n)
		res, err := l.Append(context.Background(), evs)
		if err != nil {
			return err
		}
		if res.Appended != n {
			t.Fatalf("Append(%s) = %+v, want %d appended", prefix, res, n)
		}
		for _, ev := range evs {
			acked[ev.ID]++
		}
		return nil
	}
	var full error
	for b := 0; b < 100000; b++ {
		if full = ack(fmt.Sprintf("fill-%d", b), 50); full != nil {
			break
		}
	}
	if !errors.Is(full, syscall.ENOSPC) {
		t.Fatalf("appending until the disk is full: error = %v, want ENOSPC", full)
	}
	t.Logf("disk full after %d acknowledged events: %v", len(acked), full)
	// Still full: an append fails, or succeeds in what is left of the
	// file's last page; reads go on.
	for i := range 5 {
		if err := ack(fmt.Sprintf("still-full-%d", i), 1+i*7); err != nil && !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("Append on a full disk: error = %v, want ENOSPC", err)
		}
	}
	if err := ack("still-full-big", 500); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Append of 500 events on a full disk: error = %v, want ENOSPC", err)
	}
	if got := uint64(len(readAll(t, l))); got != uint64(len(acked)) || l.Next() != got {
		t.Errorf("on a full disk: %d records readable, Next() = %d, want the %d acknowledged", got, l.Next(), len(acked))
	}
	if n := checkSegments(t, dir); n != uint64(len(acked)) {
		t.Errorf("on a full disk: %d valid records in the segment files, want %d", n, len(acked))
	}

	// Space returns: appends succeed on the open log.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := ack(fmt.Sprintf("after-%d", i), 50); err != nil {
			t.Fatalf("Append after space was freed (batch %d): %v; want the log to accept writes again without a reopen", i, err)
		}
	}
	// Full again, then freed again: the log recovers every time.
	fillFile(t, ballast)
	if err := ack("full-again", 200); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Append after the disk filled again: error = %v, want ENOSPC", err)
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	if err := ack("after-again", 50); err != nil {
		t.Fatalf("Append after space was freed a second time: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkSegments(t, dir)

	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	l2 := openLog(t, dir, cfg)
	all := readAll(t, l2)
	seen := map[string]int{}
	for i, rec := range all {
		if rec.Offset != uint64(i) {
			t.Fatalf("after reopen: record %d has offset %d, want contiguous offsets", i, rec.Offset)
		}
		seen[rec.Event.ID]++
	}
	if len(all) != len(acked) {
		t.Errorf("after reopen: %d records, want the %d acknowledged", len(all), len(acked))
	}
	for id := range acked {
		if seen[id] != 1 {
			t.Errorf("acknowledged event %s appears %d times after reopen, want 1", id, seen[id])
			break
		}
	}
	if c := counterValue(t, l2.m.corrupt); c != 0 {
		t.Errorf("sightline_ingest_corrupt_records_total = %v after reopen, want 0 (no torn frame left by the full disk)", c)
	}
}
