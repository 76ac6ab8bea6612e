package ingest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/event"
)

func TestRecordRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		ev   event.Event
	}{
		{"zero", event.Event{}},
		{"full", event.Event{
			ID: "e-1", Type: event.Click, UserID: "user-42", ItemID: "item-7", RequestID: "r-9",
			Channel: "email", Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 678901234, time.UTC), DwellMS: 1234,
			TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			TraceState:  "vendor=abc,other=def",
		}},
		{"negative dwell and pre-epoch time", event.Event{ID: "x", Type: event.Conversion, DwellMS: -5,
			Timestamp: time.Date(1950, 6, 1, 0, 0, 0, 1, time.UTC)}},
		{"non-UTC location keeps the instant", event.Event{ID: "tz", Type: event.Impression,
			Timestamp: time.Date(2026, 5, 5, 10, 0, 0, 0, time.FixedZone("X", 3600))}},
		{"long strings", event.Event{ID: strings.Repeat("i", 300), TraceState: strings.Repeat("s", 70000)}},
		{"unicode", event.Event{ID: "é→✓", Channel: "日本"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := AppendRecord([]byte("prefix"), &tt.ev)
			if got := string(b[:6]); got != "prefix" {
				t.Fatalf("AppendRecord overwrote dst prefix: %q", got)
			}
			got, err := DecodeRecord(b[6:])
			if err != nil {
				t.Fatalf("DecodeRecord(AppendRecord(%v)) error = %v", tt.ev, err)
			}
			if diff := cmp.Diff(tt.ev, got); diff != "" {
				t.Errorf("DecodeRecord(AppendRecord(ev)) mismatch (-want +got):\n%s", diff)
			}
			id, err := recordID(b[6:])
			if err != nil || string(id) != tt.ev.ID {
				t.Errorf("recordID() = %q, %v, want %q, nil", id, err, tt.ev.ID)
			}
		})
	}
}

func TestDecodeRecordRejectsGarbage(t *testing.T) {
	good := AppendRecord(nil, &testEvents("g", 1)[0])
	// A record whose timestamp nanoseconds field is 1e9.
	badNanos := []byte{recordVersion, 1, 0, 0, 0, 0, 0}
	badNanos = append(badNanos, 0)                            // seconds: varint 0
	badNanos = append(badNanos, 0x80, 0x94, 0xeb, 0xdc, 0x03) // nanoseconds: uvarint 1e9
	badNanos = append(badNanos, 0, 0, 0)                      // dwell, traceparent, tracestate
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"bad version", append([]byte{9}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing byte", append(append([]byte{}, good...), 0)},
		{"string longer than input", []byte{recordVersion, 1, 0xff, 0x01, 'a'}},
		{"overlong varint", []byte{recordVersion, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"nanoseconds out of range", badNanos},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeRecord(tt.b)
			if !errors.Is(err, event.ErrCorrupt) {
				t.Errorf("DecodeRecord(%x) error = %v, want %v", tt.b, err, event.ErrCorrupt)
			}
		})
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, ev := range testEvents("fuzz", 3) {
		f.Add(AppendRecord(nil, &ev))
	}
	f.Add([]byte{})
	f.Add([]byte{recordVersion})
	f.Add([]byte{recordVersion, 2, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := DecodeRecord(b)
		if err != nil {
			if !errors.Is(err, event.ErrCorrupt) {
				t.Fatalf("DecodeRecord(%x) error = %v, want wrapping %v", b, err, event.ErrCorrupt)
			}
			return
		}
		// A decodable input re-encodes to itself (the encoding is canonical
		// except for non-minimal varints) and decodes to the same event.
		again, err := DecodeRecord(AppendRecord(nil, &ev))
		if err != nil {
			t.Fatalf("DecodeRecord(AppendRecord(%v)) error = %v", ev, err)
		}
		if diff := cmp.Diff(ev, again); diff != "" {
			t.Fatalf("re-encoded event mismatch (-first +second):\n%s", diff)
		}
	})
}

func BenchmarkDecodeRecord(b *testing.B) {
	ev := testEvents("bench", 1)[0]
	buf := AppendRecord(nil, &ev)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeRecord(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendRecord(b *testing.B) {
	ev := testEvents("bench", 1)[0]
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRecord(buf[:0], &ev)
	}
}
