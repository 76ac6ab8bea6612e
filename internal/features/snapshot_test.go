package features

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/event"
)

// populate fills m with users, items and activity derived from n.
func populate(t testing.TB, m *Memory, n int) {
	t.Helper()
	ctx := t.Context()
	for i := range n {
		it := event.Item{ID: fmt.Sprintf("item-%d", i), Category: fmt.Sprintf("cat-%d", i%7), Available: i%5 != 0}
		if i%3 == 0 {
			it.Tags = []string{"t1", fmt.Sprintf("t%d", i)}
		}
		if err := m.PutItem(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		u := event.User{
			ID:        fmt.Sprintf("user-%d", i),
			AgeBucket: []string{"", "18-24", "25-34"}[i%3],
			Segment:   fmt.Sprintf("seg-%d", i%4),
			Region:    "eu",
			// Before 1970 and after 2262 too: UpdatedAt is not UnixNano.
			UpdatedAt: []time.Time{t0, time.Date(1950, 1, 2, 3, 4, 5, 6, time.UTC), time.Date(2500, 1, 1, 0, 0, 0, 999_999_999, time.UTC)}[i%3],
		}
		if i%4 == 0 {
			u.Attrs = map[string]string{"plan": "pro", "k": fmt.Sprint(i)}
		}
		if err := m.PutUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 * n {
		apply(m, click(fmt.Sprintf("user-%d", i%n), fmt.Sprintf("item-%d", (i*11)%(n+3)))) // some items not in the catalog
	}
	apply(m, click("anonymous", "item-1")) // activity without a profile
}

// contents returns everything observable in m, for comparison.
type contents struct {
	Users    map[string]event.User
	Items    map[string]event.Item
	Activity map[string]Activity
	NUsers   int
	NItems   int
}

func dump(t testing.TB, m *Memory, ids []string) contents {
	t.Helper()
	c := contents{Users: map[string]event.User{}, Items: map[string]event.Item{}, Activity: map[string]Activity{}}
	var err error
	if c.NUsers, c.NItems, err = m.Counts(t.Context()); err != nil {
		t.Fatalf("Counts() = %v", err)
	}
	for _, id := range ids {
		if u, ok, _ := m.User(t.Context(), id); ok {
			c.Users[id] = u
		}
		a, err := m.Activity(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if a.RecentItems != nil || a.RecentCategories != nil || a.Clicked != nil {
			c.Activity[id] = a
		}
	}
	if err := m.RangeItems(t.Context(), func(it event.Item) bool { c.Items[it.ID] = it; return true }); err != nil {
		t.Fatalf("RangeItems() = %v", err)
	}
	return c
}

func userIDs(n int) []string {
	ids := []string{"anonymous", "never-seen"}
	for i := range n {
		ids = append(ids, fmt.Sprintf("user-%d", i))
	}
	return ids
}

func snapshot(t testing.TB, m *Memory, offset uint64) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := m.WriteSnapshot(&buf, offset); err != nil {
		t.Fatalf("WriteSnapshot() error = %v", err)
	}
	return buf.Bytes()
}

func TestSnapshotRoundTrip(t *testing.T) {
	const n = 60
	src := newTestMemory(t, Config{Shards: 8})
	populate(t, src, n)
	want := dump(t, src, userIDs(n))
	if len(want.Activity) < n || want.NUsers != n || want.NItems != n {
		t.Fatalf("test setup: %d users, %d items, %d with activity", want.NUsers, want.NItems, len(want.Activity))
	}
	b := snapshot(t, src, 12345)

	// A different shard count, and existing content that must disappear.
	dst := newTestMemory(t, Config{Shards: 2})
	if err := dst.PutUser(t.Context(), event.User{ID: "stale"}); err != nil {
		t.Fatal(err)
	}
	if err := dst.PutItem(t.Context(), event.Item{ID: "stale", Category: "c"}); err != nil {
		t.Fatal(err)
	}
	apply(dst, click("stale", "x"))
	var notified int
	dst.OnItemChange(func(event.Item) { notified++ })

	off, err := dst.ReadSnapshot(bytes.NewReader(b))
	if err != nil || off != 12345 {
		t.Fatalf("ReadSnapshot() = %d, %v, want 12345, nil", off, err)
	}
	got := dump(t, dst, append(userIDs(n), "stale"))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("restored store mismatch (-want +got):\n%s", diff)
	}
	if notified != n {
		t.Errorf("OnItemChange called %d times on restore, want %d", notified, n)
	}
	// The restored store keeps working: activity continues from the
	// restored lists.
	apply(dst, click("user-1", "item-2"))
	a, _ := dst.Activity(t.Context(), "user-1")
	if a.RecentItems[0] != "item-2" || a.RecentCategories[0] != "cat-2" {
		t.Errorf("Activity(user-1) after a restore and a click = %+v, want item-2 / cat-2 first", a)
	}
	// Snapshots of the same content are byte-for-byte decodable again.
	if _, err := newTestMemory(t, Config{}).ReadSnapshot(bytes.NewReader(snapshot(t, dst, 1))); err != nil {
		t.Errorf("ReadSnapshot(snapshot of a restored store) error = %v", err)
	}
}

func TestSnapshotEmpty(t *testing.T) {
	b := snapshot(t, newTestMemory(t, Config{}), 0)
	m := newTestMemory(t, Config{})
	populate(t, m, 3)
	off, err := m.ReadSnapshot(bytes.NewReader(b))
	if err != nil || off != 0 {
		t.Fatalf("ReadSnapshot(empty) = %d, %v, want 0, nil", off, err)
	}
	if m.userCount() != 0 || m.itemCount() != 0 {
		t.Errorf("after restoring an empty snapshot Users() = %d, Items() = %d, want 0, 0", m.userCount(), m.itemCount())
	}
	if a, _ := m.Activity(t.Context(), "user-1"); a.Clicked != nil {
		t.Errorf("Activity(user-1) after restoring an empty snapshot = %+v, want empty", a)
	}
}

func TestSnapshotSmallerLists(t *testing.T) {
	src := newTestMemory(t, Config{})
	for i := range 30 {
		apply(src, click("u", fmt.Sprintf("i%d", i)))
	}
	dst := newTestMemory(t, Config{RecentItems: 2, ClickedItems: 3})
	if _, err := dst.ReadSnapshot(bytes.NewReader(snapshot(t, src, 0))); err != nil {
		t.Fatal(err)
	}
	got, _ := dst.Activity(t.Context(), "u")
	want := Activity{RecentItems: []string{"i29", "i28"}, Clicked: []string{"i29", "i28", "i27"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Activity(u) restored into shorter lists mismatch (-want +got):\n%s", diff)
	}
}

// frames splits a snapshot into its magic and frames (length prefix,
// payload and CRC each).
func frames(t *testing.T, b []byte) (magic []byte, fs [][]byte) {
	t.Helper()
	magic, b = b[:len(snapMagic)], b[len(snapMagic):]
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		end := k + int(n) + 4
		fs = append(fs, b[:end])
		b = b[end:]
	}
	return magic, fs
}

func TestSnapshotCorruption(t *testing.T) {
	src := newTestMemory(t, Config{Shards: 2})
	populate(t, src, 4)
	good := snapshot(t, src, 7)

	check := func(t *testing.T, name string, b []byte) {
		t.Helper()
		m := newTestMemory(t, Config{})
		if err := m.PutUser(t.Context(), event.User{ID: "keep"}); err != nil {
			t.Fatal(err)
		}
		off, err := m.ReadSnapshot(bytes.NewReader(b))
		if !errors.Is(err, ErrCorruptSnapshot) {
			t.Fatalf("ReadSnapshot(%s) = %d, %v, want error wrapping %v", name, off, err, ErrCorruptSnapshot)
		}
		if _, known, _ := m.User(t.Context(), "keep"); !known || m.userCount() != 1 {
			t.Errorf("after ReadSnapshot(%s) failed, the store was changed", name)
		}
	}

	t.Run("truncated", func(t *testing.T) {
		for n := range len(good) {
			check(t, fmt.Sprintf("first %d of %d bytes", n, len(good)), good[:n])
		}
	})
	t.Run("bit flipped", func(t *testing.T) {
		for i := range good {
			for _, bit := range []byte{0x01, 0x80} {
				b := bytes.Clone(good)
				b[i] ^= bit
				check(t, fmt.Sprintf("byte %d ^ %#x", i, bit), b)
			}
		}
	})

	// A store big enough for several frames, to drop and reorder them.
	big := newTestMemory(t, Config{Shards: 1})
	for i := range 12000 {
		if err := big.PutUser(t.Context(), event.User{ID: fmt.Sprintf("user-%06d", i), Segment: "s",
			Attrs: map[string]string{"note": fmt.Sprintf("%090d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	magic, fr := frames(t, snapshot(t, big, 1))
	if len(fr) < 3 {
		t.Fatalf("test setup: snapshot has %d frames, want at least 3", len(fr))
	}
	join := func(parts ...[]byte) []byte { return bytes.Join(append([][]byte{magic}, parts...), nil) }
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"wrong magic", append([]byte("SLFEAT\x00\x02"), good[len(snapMagic):]...)},
		{"not a snapshot", []byte("{\"user_id\":\"u1\"}\n{\"user_id\":\"u2\"}\n")},
		{"frame dropped", join(append([][]byte{fr[0]}, fr[2:]...)...)},
		{"last frame dropped", join(fr[:len(fr)-1]...)},
		{"frames swapped", join(append([][]byte{fr[1], fr[0]}, fr[2:]...)...)},
		{"frame repeated", join(append([][]byte{fr[0], fr[1], fr[1]}, fr[2:]...)...)},
		{"huge frame length", append([]byte(snapMagic), binary.AppendUvarint(nil, 1<<40)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { check(t, tt.name, tt.b) })
	}
	t.Run("multi-frame round trip", func(t *testing.T) {
		m := newTestMemory(t, Config{})
		if _, err := m.ReadSnapshot(bytes.NewReader(join(fr...))); err != nil || m.userCount() != 12000 {
			t.Errorf("ReadSnapshot(all frames) error = %v, Users() = %d, want nil, 12000", err, m.userCount())
		}
	})
}

// TestSnapshotValidCRCBadContent checks that records are validated even
// when the checksum matches (a writer bug or a crafted file).
func TestSnapshotValidCRCBadContent(t *testing.T) {
	frame := func(records ...[]byte) []byte {
		p := bytes.Join(records, nil)
		b := append([]byte(snapMagic), binary.AppendUvarint(nil, uint64(len(p)))...)
		b = append(b, p...)
		crc := crc32Update(crc32Magic(), p)
		return binary.LittleEndian.AppendUint32(b, crc)
	}
	header := append([]byte{recHeader}, make([]byte, 8)...)
	end := func(users, items uint64) []byte {
		return binary.AppendUvarint(binary.AppendUvarint([]byte{recEnd}, users), items)
	}
	str := func(s string) []byte { return appendStr(nil, s) }
	user := func(id string, flags byte) []byte {
		return bytes.Join([][]byte{{recUser}, str(id), {flags}}, nil)
	}
	tests := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"minimal", frame(header, end(0, 0)), true},
		{"no header", frame(end(0, 0)), false},
		{"two headers", frame(header, header, end(0, 0)), false},
		{"no end", frame(header), false},
		{"data after end", frame(header, end(0, 0), user("u", 0)), false},
		{"count mismatch", frame(header, user("u", 0), end(2, 0)), false},
		{"user without id", frame(header, user("", 0), end(1, 0)), false},
		{"unknown flags", frame(header, user("u", 0x80), end(1, 0)), false},
		{"unknown record", frame(header, []byte{99}, end(0, 0)), false},
		{"item without category", frame(header, bytes.Join([][]byte{{recItem}, str("i"), str(""), {0, 1}}, nil), end(0, 1)), false},
		{"item", frame(header, bytes.Join([][]byte{{recItem}, str("i"), str("c"), {0, 1}}, nil), end(0, 1)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newTestMemory(t, Config{}).ReadSnapshot(bytes.NewReader(tt.b))
			if tt.ok && err != nil {
				t.Errorf("ReadSnapshot(%s) error = %v, want nil", tt.name, err)
			}
			if !tt.ok && !errors.Is(err, ErrCorruptSnapshot) {
				t.Errorf("ReadSnapshot(%s) error = %v, want %v", tt.name, err, ErrCorruptSnapshot)
			}
		})
	}
}

type failingRW struct {
	ok  int // bytes that succeed
	err error
	r   io.Reader
}

func (f *failingRW) Write(p []byte) (int, error) {
	if len(p) > f.ok {
		n := f.ok
		f.ok = 0
		return n, f.err
	}
	f.ok -= len(p)
	return len(p), nil
}

func (f *failingRW) Read(p []byte) (int, error) {
	if f.ok == 0 {
		return 0, f.err
	}
	p = p[:min(len(p), f.ok)]
	n, err := f.r.Read(p)
	f.ok -= n
	return n, err
}

func TestSnapshotIOErrors(t *testing.T) {
	m := newTestMemory(t, Config{})
	populate(t, m, 5)
	good := snapshot(t, m, 3)
	errDisk := errors.New("disk on fire")
	for _, ok := range []int{0, 8, 100} {
		if err := m.WriteSnapshot(&failingRW{ok: ok, err: errDisk}, 3); !errors.Is(err, errDisk) {
			t.Errorf("WriteSnapshot(writer failing after %d bytes) error = %v, want %v", ok, err, errDisk)
		}
		_, err := m.ReadSnapshot(&failingRW{ok: ok, err: errDisk, r: bytes.NewReader(good)})
		if !errors.Is(err, errDisk) || errors.Is(err, ErrCorruptSnapshot) {
			t.Errorf("ReadSnapshot(reader failing after %d bytes) error = %v, want %v and not %v", ok, err, errDisk, ErrCorruptSnapshot)
		}
	}
}

func TestSaveLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "features.snap")
	src := newTestMemory(t, Config{})
	populate(t, src, 10)
	if err := src.SaveFile(path, 42); err != nil {
		t.Fatalf("SaveFile() error = %v", err)
	}
	// Overwrite with newer content: the file is replaced, not appended to.
	if err := src.PutUser(t.Context(), event.User{ID: "late"}); err != nil {
		t.Fatal(err)
	}
	if err := src.SaveFile(path, 43); err != nil {
		t.Fatalf("SaveFile() error = %v", err)
	}
	dst := newTestMemory(t, Config{})
	off, err := dst.LoadFile(path)
	if err != nil || off != 43 {
		t.Fatalf("LoadFile() = %d, %v, want 43, nil", off, err)
	}
	ids := append(userIDs(10), "late")
	if diff := cmp.Diff(dump(t, src, ids), dump(t, dst, ids)); diff != "" {
		t.Errorf("LoadFile() content mismatch (-want +got):\n%s", diff)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d files after SaveFile, want only the snapshot", len(entries))
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("snapshot file mode = %v, %v, want 0600", fi.Mode().Perm(), err)
	}

	if _, err := dst.LoadFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadFile(missing) error = %v, want %v", err, fs.ErrNotExist)
	}
	if err := src.SaveFile(filepath.Join(dir, "no-such-dir", "x.snap"), 1); err == nil {
		t.Errorf("SaveFile(in a missing directory) error = nil, want an error")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b[:len(b)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.LoadFile(path); !errors.Is(err, ErrCorruptSnapshot) {
		t.Errorf("LoadFile(truncated) error = %v, want %v", err, ErrCorruptSnapshot)
	}
}

func crc32Magic() uint32 { return crc32Update(0, []byte(snapMagic)) }

func crc32Update(crc uint32, p []byte) uint32 { return crc32.Update(crc, castagnoli, p) }

// TestSnapshotDuringWrites snapshots a large shard, which WriteSnapshot
// reads in batches, while users are added and updated; the snapshot must
// decode and hold at least every user that existed before it started.
func TestSnapshotDuringWrites(t *testing.T) {
	ctx := t.Context()
	m := newTestMemory(t, Config{Shards: 1})
	const before = 5 * snapBatch
	for i := range before {
		if err := m.PutUser(ctx, event.User{ID: fmt.Sprintf("old-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	var buf bytes.Buffer
	go func() {
		defer close(done)
		if err := m.WriteSnapshot(&buf, 9); err != nil {
			t.Error(err)
		}
	}()
	for i := 0; ; i++ {
		select {
		case <-done:
		default:
			if err := m.PutUser(ctx, event.User{ID: fmt.Sprintf("new-%d", i), Segment: "s"}); err != nil {
				t.Fatal(err)
			}
			apply(m, click(fmt.Sprintf("old-%d", i%before), "item"))
			continue
		}
		break
	}
	dst := newTestMemory(t, Config{})
	if _, err := dst.ReadSnapshot(&buf); err != nil {
		t.Fatalf("ReadSnapshot(taken during writes) error = %v", err)
	}
	for i := range before {
		if _, ok, _ := dst.User(ctx, fmt.Sprintf("old-%d", i)); !ok {
			t.Fatalf("User(old-%d) missing from a snapshot taken after it was put", i)
		}
	}
	if dst.userCount() < before || dst.userCount() > m.userCount() {
		t.Errorf("restored Users() = %d, want between %d and %d", dst.userCount(), before, m.userCount())
	}
}
