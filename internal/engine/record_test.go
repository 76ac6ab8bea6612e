package engine

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sightline/sightline/internal/event"
)

// TestRecordStream follows a decision from the engine that made it, through
// the encoded record OnRecord hands out (what an API node publishes), into
// another ring (what a trainer keeps): the trainer joins events to it as the
// engine itself would.
func TestRecordStream(t *testing.T) {
	var published [][]byte
	e := newTestEngine(t, &fakeStore{users: knownUsers()}, &fakeScorer{}, func(c *Config) {
		c.OnRecord = func(_ string, rec []byte) { published = append(published, bytes.Clone(rec)) }
	})
	d, err := e.Recommend(t.Context(), Request{UserID: "alice", Count: 5})
	if err != nil {
		t.Fatalf("Recommend: %v", err)
	}
	if len(published) != 1 {
		t.Fatalf("OnRecord called %d times for one decision, want 1", len(published))
	}
	trainer := NewRing(16)
	if err := trainer.Put(published[0]); err != nil {
		t.Fatalf("Put(published record) = %v", err)
	}
	shown := d.Items[2]
	wantX, wantIt, ok := e.Ring().Joined(d.RequestID, shown.ItemID)
	if !ok {
		t.Fatalf("engine ring Joined(%q, %q) not found", d.RequestID, shown.ItemID)
	}
	x, it, ok := trainer.Joined(d.RequestID, shown.ItemID)
	if !ok {
		t.Fatalf("trainer ring Joined(%q, %q) not found", d.RequestID, shown.ItemID)
	}
	if diff := cmp.Diff(wantX, x, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("trainer Joined context differs from the engine's (-engine +trainer):\n%s", diff)
	}
	if it.ID != wantIt.ID || it.Category != wantIt.Category || it.Category != shown.Category {
		t.Errorf("trainer Joined item = %+v, want %+v (category %q)", it, wantIt, shown.Category)
	}
	got, x2, err := DecodeRecord(published[0])
	if err != nil {
		t.Fatalf("DecodeRecord: %v", err)
	}
	if diff := cmp.Diff(d, got, cmpopts.EquateEmpty(), cmpopts.EquateApproxTime(0)); diff != "" {
		t.Errorf("DecodeRecord decision (-answered +decoded):\n%s", diff)
	}
	if x2.User.AgeBucket != x.User.AgeBucket {
		t.Errorf("DecodeRecord context age = %q, want %q", x2.User.AgeBucket, x.User.AgeBucket)
	}
}

func TestRingTraceOf(t *testing.T) {
	tests := []struct {
		name        string
		sampled     bool
		fallback    Reason
		typ         event.Type
		wantSampled bool
	}{
		{"head-sampled impression", true, ReasonNone, event.Impression, true},
		{"unsampled click", false, ReasonNone, event.Click, false},
		{"fallback click", false, ReasonModelTimeout, event.Click, true},
		{"fallback impression", false, ReasonModelTimeout, event.Impression, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, x := ringDecision("r1", 3)
			d.TraceSampled, d.Fallback = tt.sampled, tt.fallback
			r := NewRing(4)
			if err := r.Put(appendRecord(nil, d, x)); err != nil {
				t.Fatal(err)
			}
			sc, ok := r.TraceOf("r1", tt.typ)
			if !ok {
				t.Fatal("TraceOf(r1) not found")
			}
			if sc.TraceID().String() != d.TraceID || sc.SpanID().String() != d.SpanID {
				t.Errorf("TraceOf(r1) = %s/%s, want %s/%s", sc.TraceID(), sc.SpanID(), d.TraceID, d.SpanID)
			}
			if sc.IsSampled() != tt.wantSampled {
				t.Errorf("TraceOf(r1, %v).IsSampled() = %v, want %v", tt.typ, sc.IsSampled(), tt.wantSampled)
			}
		})
	}
}

func TestRingPutRejects(t *testing.T) {
	d, x := ringDecision("r1", 2)
	good := appendRecord(nil, d, x)
	for name, rec := range map[string][]byte{
		"empty":           nil,
		"unknown version": append([]byte{RecordVersion + 1}, good[1:]...),
		"no request id":   {RecordVersion},
	} {
		if err := NewRing(4).Put(rec); err == nil {
			t.Errorf("Put(%s) = nil, want ErrBadRecord", name)
		}
	}
	if _, _, err := DecodeRecord(good[:len(good)/2]); err == nil {
		t.Error("DecodeRecord(truncated) = nil error, want ErrBadRecord")
	}
}

func FuzzRingPut(f *testing.F) {
	d, x := ringDecision("r1", 3)
	f.Add(appendRecord(nil, d, x))
	f.Add([]byte{RecordVersion, 2, 'r', '1'})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewRing(4)
		if r.Put(b) == nil {
			r.Joined("r1", "r1-i1") // must not panic on any accepted record
			r.TraceOf("r1", event.Click)
		}
		DecodeRecord(b)
	})
}
