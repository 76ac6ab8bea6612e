package features

import (
	"os"
	"slices"
	"testing"

	"github.com/sightline/sightline/internal/event"
)

// TestJournal: entries appended before a cut are in older generations; a
// replay from the cut's generation applies only the newer ones, in order;
// a reopened journal continues after them, and a torn last line (a crash
// mid-write) is skipped.
func TestJournal(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	put := func(id string) {
		t.Helper()
		if err := j.Append(JournalEntry{User: &event.User{ID: id}}); err != nil {
			t.Fatal(err)
		}
	}
	put("before-cut")
	if err := j.Append(JournalEntry{Item: &event.Item{ID: "item-before"}}); err != nil {
		t.Fatal(err)
	}
	gen, err := j.Cut()
	if err != nil {
		t.Fatal(err)
	}
	put("after-1")
	if err := j.Append(JournalEntry{Erase: "before-cut"}); err != nil {
		t.Fatal(err)
	}
	put("after-2")
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash tore the last write of the current generation.
	f, err := os.OpenFile(j.path(gen), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"user":{"id":"torn"`); err != nil {
		t.Fatal(err)
	}
	f.Close()

	j2, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	var users, items []string
	erase := func(id string) error { users = append(users, "-"+id); return nil }
	n, err := j2.Replay(gen,
		func(u event.User) error { users = append(users, u.ID); return nil },
		func(it event.Item) error { items = append(items, it.ID); return nil }, erase)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"after-1", "-before-cut", "after-2"}; n != 3 || !slices.Equal(users, want) || len(items) != 0 {
		t.Errorf("Replay(%d) = %d entries, users %v, items %v; want %v, the entries after the cut in order", gen, n, users, items, want)
	}
	users = users[:0]
	if n, _ := j2.Replay(0, func(u event.User) error { users = append(users, u.ID); return nil }, func(event.Item) error { return nil }, erase); n != 5 {
		t.Errorf("Replay(0) = %d entries (users %v), want all 5", n, users)
	}
	if err := j2.Prune(gen); err != nil {
		t.Fatal(err)
	}
	if n, _ := j2.Replay(0, func(event.User) error { return nil }, func(event.Item) error { return nil }, erase); n != 3 {
		t.Errorf("Replay after Prune(%d) = %d entries, want 3", gen, n)
	}
	var nilJ *Journal
	if err := nilJ.Append(JournalEntry{}); err != nil {
		t.Errorf("nil journal Append = %v, want nil (journals nothing)", err)
	}
}
