package features

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/sightline/sightline/internal/event"
)

// TestJournalFullDisk appends to a journal on a 64 KiB tmpfs filled with
// ballast until Sync fails with ENOSPC: the file then holds only whole
// entries (the torn tail of the failed write is cut off), and once space
// is freed the same journal syncs again, with every entry appended, the
// refused ones included, replayed in order. Mounting needs root (CI runs
// the tests as root).
func TestJournalFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root (CI runs the tests as root)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	j, err := OpenJournal(filepath.Join(dir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	var appended []string
	add := func(i int) error {
		id := fmt.Sprintf("user-%03d-%s", i, bytes.Repeat([]byte{'x'}, 100))
		if err := j.Append(JournalEntry{User: &event.User{ID: id}}); err != nil {
			t.Fatalf("Append: %v", err) // the buffer is far below its flush size
		}
		appended = append(appended, id)
		return j.Sync()
	}
	// A few entries first: the journal's last page has room when the disk
	// fills, so a later write fills it and fails part-way.
	for i := range 5 {
		if err := add(i); err != nil {
			t.Fatal(err)
		}
	}
	ballast := filepath.Join(dir, "ballast")
	f, err := os.Create(ballast)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 1024)); err != nil {
			break
		}
	}
	f.Close()

	failed := 0
	for i := 5; i < 200 && failed < 3; i++ {
		if err := add(i); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Sync on a full disk = %v, want ENOSPC", err)
			}
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no Sync failed on the full disk")
	}
	b, err := os.ReadFile(j.path(j.gen))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Errorf("the journal ends in a torn entry after the failed writes: %q", b[max(0, len(b)-40):])
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	if err := j.Sync(); err != nil {
		t.Fatalf("Sync once space is back = %v, want nil", err)
	}
	var replayed []string
	if _, err := j.Replay(0, func(u event.User) error { replayed = append(replayed, u.ID); return nil },
		func(event.Item) error { return nil }, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if len(replayed) != len(appended) {
		t.Fatalf("Replay = %d entries, want the %d appended (%d Syncs failed)", len(replayed), len(appended), failed)
	}
	for i := range appended {
		if replayed[i] != appended[i] {
			t.Fatalf("Replay entry %d = %s, want %s", i, replayed[i], appended[i])
		}
	}
}
