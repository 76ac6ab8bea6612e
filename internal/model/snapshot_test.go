package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/event"
)

// trainedModel returns a model trained on n synthetic examples.
func trainedModel(t testing.TB, cfg Config, n int) (*Model, *world) {
	t.Helper()
	m := newTestModel(t, cfg)
	w := newWorld(11)
	for range n {
		x, it, p := w.example()
		l := Negative
		if w.rng.Float64() < p*3 {
			l = Positive
		}
		m.Learn(&x, it, l)
	}
	return m, w
}

func snapshotBytes(t testing.TB, m *Model, meta SnapshotMeta) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := m.WriteSnapshot(&buf, meta); err != nil {
		t.Fatalf("WriteSnapshot() error = %v", err)
	}
	return buf.Bytes()
}

// scoresOf scores every item of w for a few of its users.
func scoresOf(m *Model, w *world) []float64 {
	var out []float64
	var p Prepared
	s := make([]float64, len(w.items))
	for u := range 20 {
		x := Context{User: w.users[u], Channel: w.channels[u%3], Hour: u, RecentCategories: []string{w.categories[u%len(w.categories)]}}
		m.Prepare(&x, &p)
		m.Score(&p, w.items, s)
		out = append(out, s...)
	}
	return out
}

func TestSnapshotRoundTrip(t *testing.T) {
	m, w := trainedModel(t, Config{Bits: 14, Alpha: 0.2, L1: 0.5, L2: -1, Name: "exp", VersionEvery: 1000}, 5000)
	created := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	meta := SnapshotMeta{
		Offset:  12345,
		Created: created,
		Updates: 999, // ignored: WriteSnapshot records the model's count
		Extra:   map[string]json.RawMessage{"baseline": json.RawMessage(`{"user_age_bucket":{"null_rate":0.01}}`)},
	}
	data := snapshotBytes(t, m, meta)

	got, gotMeta, err := ReadSnapshot(bytes.NewReader(data), Config{})
	if err != nil {
		t.Fatalf("ReadSnapshot() error = %v", err)
	}
	wantMeta := meta
	wantMeta.Updates = 5000
	if diff := cmp.Diff(wantMeta, gotMeta); diff != "" {
		t.Errorf("ReadSnapshot() meta mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(scoresOf(m, w), scoresOf(got, w)); diff != "" {
		t.Errorf("scores after round trip differ (-want +got):\n%s", diff)
	}
	if got.Updates() != m.Updates() {
		t.Errorf("Updates() after round trip = %d, want %d", got.Updates(), m.Updates())
	}
	if gotV, want := got.Version(), "exp-v1.5"; gotV != want {
		t.Errorf("Version() after restore = %q, want %q", gotV, want)
	}
	type hyper struct {
		Bits                int
		Alpha, Beta, L1, L2 float64
		Name                string
		VersionEvery        uint64
	}
	wantH := hyper{14, 0.2, DefaultBeta, 0.5, 0, "exp", 1000}
	gotH := hyper{got.cfg.Bits, got.alpha, got.beta, got.l1, got.l2, got.cfg.Name, got.cfg.VersionEvery}
	if diff := cmp.Diff(wantH, gotH); diff != "" {
		t.Errorf("restored hyperparameters mismatch (-want +got):\n%s", diff)
	}
	// Non-zero Config fields override the snapshot's.
	over, _, err := ReadSnapshot(bytes.NewReader(data), Config{Alpha: 0.3, L1: -1, VersionEvery: 100})
	if err != nil {
		t.Fatalf("ReadSnapshot(overrides) error = %v", err)
	}
	if over.alpha != 0.3 || over.l1 != 0 || over.Version() != "exp-v1.50" {
		t.Errorf("ReadSnapshot(overrides): alpha %v, l1 %v, version %q; want 0.3, 0, \"exp-v1.50\"", over.alpha, over.l1, over.Version())
	}

	// The restored model learns on identically, and a second generation
	// bumps the version.
	x, it, _ := w.example()
	if a, b := m.Learn(&x, it, Positive), got.Learn(&x, it, Positive); a != b {
		t.Errorf("Learn after restore = %v, original = %v, want equal", b, a)
	}
	again, _, err := ReadSnapshot(bytes.NewReader(snapshotBytes(t, got, SnapshotMeta{})), Config{Name: "other"})
	if err != nil {
		t.Fatalf("ReadSnapshot(second generation) error = %v", err)
	}
	if gotV, want := again.Version(), "other-v2.5"; gotV != want {
		t.Errorf("Version() after second restore = %q, want %q", gotV, want)
	}

	if _, _, err := ReadSnapshot(bytes.NewReader(data), Config{Bits: 15}); !errors.Is(err, ErrIncompatibleSnapshot) {
		t.Errorf("ReadSnapshot(Bits 15 config, 14-bit snapshot) error = %v, want ErrIncompatibleSnapshot", err)
	}
	if _, _, err := ReadSnapshot(bytes.NewReader(data), Config{Bits: 14}); err != nil {
		t.Errorf("ReadSnapshot(matching Bits) error = %v", err)
	}
}

func TestSnapshotEmptyModel(t *testing.T) {
	m := newTestModel(t, Config{Bits: 6})
	data := snapshotBytes(t, m, SnapshotMeta{})
	got, meta, err := ReadSnapshot(bytes.NewReader(data), Config{})
	if err != nil {
		t.Fatalf("ReadSnapshot(empty model) error = %v", err)
	}
	if meta.Created.IsZero() {
		t.Errorf("meta.Created is zero, want set by WriteSnapshot")
	}
	if len(got.coords) != 1<<6 {
		t.Errorf("restored model has %d coordinates, want %d", len(got.coords), 1<<6)
	}
}

// TestSnapshotCorruption flips every byte and truncates at every length.
func TestSnapshotCorruption(t *testing.T) {
	m, _ := trainedModel(t, Config{Bits: 6}, 200)
	data := snapshotBytes(t, m, SnapshotMeta{Offset: 7, Extra: map[string]json.RawMessage{"x": json.RawMessage(`1`)}})
	if _, _, err := ReadSnapshot(bytes.NewReader(data), Config{}); err != nil {
		t.Fatalf("ReadSnapshot(intact) error = %v", err)
	}
	bad := make([]byte, len(data))
	for i := range data {
		copy(bad, data)
		bad[i] ^= 0x01 << (i % 8)
		if _, _, err := ReadSnapshot(bytes.NewReader(bad), Config{}); !errors.Is(err, ErrCorruptSnapshot) {
			t.Fatalf("ReadSnapshot(byte %d of %d flipped) error = %v, want ErrCorruptSnapshot", i, len(data), err)
		}
	}
	for n := range len(data) {
		if _, _, err := ReadSnapshot(bytes.NewReader(data[:n]), Config{}); !errors.Is(err, ErrCorruptSnapshot) {
			t.Fatalf("ReadSnapshot(truncated to %d of %d) error = %v, want ErrCorruptSnapshot", n, len(data), err)
		}
	}
	if _, _, err := ReadSnapshot(bytes.NewReader(append(bytes.Clone(data), 0)), Config{}); !errors.Is(err, ErrCorruptSnapshot) {
		t.Errorf("ReadSnapshot(trailing byte) error = %v, want ErrCorruptSnapshot", err)
	}
}

func TestSaveLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.snap")
	m, w := trainedModel(t, Config{Bits: 10}, 1000)
	if err := m.SaveFile(path, SnapshotMeta{Offset: 1}); err != nil {
		t.Fatalf("SaveFile() error = %v", err)
	}
	// Overwrite: the file is replaced whole.
	m.Learn(&Context{Hour: 1}, event.Item{ID: "x", Category: "y"}, Positive)
	if err := m.SaveFile(path, SnapshotMeta{Offset: 2}); err != nil {
		t.Fatalf("SaveFile(again) error = %v", err)
	}
	got, meta, err := LoadFile(path, Config{})
	if err != nil {
		t.Fatalf("LoadFile() error = %v", err)
	}
	if meta.Offset != 2 || meta.Updates != 1001 {
		t.Errorf("LoadFile() meta = %+v, want offset 2, updates 1001", meta)
	}
	if diff := cmp.Diff(scoresOf(m, w), scoresOf(got, w)); diff != "" {
		t.Errorf("scores after SaveFile/LoadFile differ (-want +got):\n%s", diff)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d files after SaveFile, want 1 (no temporary files left)", len(entries))
	}
	if _, _, err := LoadFile(filepath.Join(dir, "missing"), Config{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadFile(missing) error = %v, want os.ErrNotExist", err)
	}
	if err := m.SaveFile(filepath.Join(dir, "no-such-dir", "m.snap"), SnapshotMeta{}); err == nil {
		t.Errorf("SaveFile(into missing directory) error = nil, want an error")
	}
}

func FuzzReadSnapshot(f *testing.F) {
	m, _ := trainedModel(f, Config{Bits: 5}, 50)
	data := snapshotBytes(f, m, SnapshotMeta{Offset: 3})
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add([]byte(snapshotMagic))
	f.Add([]byte{})
	f.Add(data[:len(data)-sha256.Size])
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(in []byte, cfg Config) {
			got, _, err := ReadSnapshot(bytes.NewReader(in), cfg)
			if err != nil {
				if got != nil {
					t.Errorf("ReadSnapshot() = %v, %v; want nil model with an error", got, err)
				}
				if !errors.Is(err, ErrCorruptSnapshot) && !errors.Is(err, ErrIncompatibleSnapshot) {
					t.Errorf("ReadSnapshot() error = %v, want ErrCorruptSnapshot or ErrIncompatibleSnapshot", err)
				}
				return
			}
			// Whatever reads without error is a usable model.
			var p Prepared
			got.Prepare(&Context{Hour: 1}, &p)
			out := make([]float64, 1)
			got.Score(&p, []event.Item{{ID: "a", Category: "b"}}, out)
			if !(out[0] > 0 && out[0] < 1) {
				t.Errorf("Score() on a read snapshot = %v, want in (0, 1)", out[0])
			}
		}
		check(b, Config{})
		// Sealed with a valid checksum, b reaches the header and entry
		// parsers. Bits is fixed so a fuzzed header cannot make a huge model.
		sum := sha256.Sum256(b)
		check(append(bytes.Clone(b), sum[:]...), Config{Bits: 5})
	})
}

func TestVersionOf(t *testing.T) {
	m, err := New(Config{Bits: 8, VersionEvery: 2})
	if err != nil {
		t.Fatal(err)
	}
	x := Context{User: event.User{AgeBucket: "18-24"}, Channel: "web"}
	for range 5 {
		m.Learn(&x, event.Item{ID: "a", Category: "c"}, Positive)
	}
	var buf bytes.Buffer
	if err := m.WriteSnapshot(&buf, SnapshotMeta{}); err != nil {
		t.Fatal(err)
	}
	got, err := VersionOf(buf.Bytes())
	if err != nil {
		t.Fatalf("VersionOf: %v", err)
	}
	restored, _, err := ReadSnapshot(bytes.NewReader(buf.Bytes()), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if want := restored.Version(); got != want {
		t.Errorf("VersionOf(snapshot) = %q, want the restored model's %q", got, want)
	}
	if _, err := VersionOf([]byte("garbage")); err == nil {
		t.Error("VersionOf(garbage) = nil error")
	}
}

// TestWritePublished: each publication is a version of its own, the one a
// node restoring it serves, even without updates between two of them.
func TestWritePublished(t *testing.T) {
	m, err := New(Config{Bits: 8})
	if err != nil {
		t.Fatal(err)
	}
	x := Context{User: event.User{AgeBucket: "18-24"}, Channel: "web"}
	m.Learn(&x, event.Item{ID: "a", Category: "c"}, Positive)
	seen := map[string]bool{}
	for range 3 {
		var buf bytes.Buffer
		v, err := m.WritePublished(&buf, SnapshotMeta{})
		if err != nil {
			t.Fatal(err)
		}
		restored, _, err := ReadSnapshot(bytes.NewReader(buf.Bytes()), Config{})
		if err != nil {
			t.Fatal(err)
		}
		if restored.Version() != v || m.Version() != v {
			t.Errorf("WritePublished = %q; restored model serves %q, the publisher reports %q: want all equal", v, restored.Version(), m.Version())
		}
		if seen[v] {
			t.Errorf("version %q published twice", v)
		}
		seen[v] = true
	}
}
