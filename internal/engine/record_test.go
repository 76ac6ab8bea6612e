package engine

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
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
	trainer := NewRing(16, testPool)
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
			r := NewRing(4, testPool)
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
		if err := NewRing(4, testPool).Put(rec); err == nil {
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
	f.Fuzz(func(_ *testing.T, b []byte) {
		r := NewRing(4, testPool)
		if r.Put(b) == nil {
			r.Joined("r1", "r1-i1") // must not panic on any accepted record
			r.TraceOf("r1", event.Click)
		}
		_, _, _ = DecodeRecord(b) // must not panic; an error is a fine answer
	})
}

// FuzzRecordDecoder checks that a RecordDecoder, holding another record's
// state, decodes any input as DecodeRecord does.
func FuzzRecordDecoder(f *testing.F) {
	d, x := ringDecision("r1", 3)
	d.Pool = []PoolItem{{ItemID: "p1", Category: "c1", Score: 0.5, Popularity: 0.25}}
	seed := appendRecord(nil, d, x)
	f.Add(seed)
	f.Add([]byte{RecordVersion, 2, 'r', '1'})
	f.Fuzz(func(t *testing.T, b []byte) {
		want, wantX, err := DecodeRecord(b)
		var dec RecordDecoder
		if _, _, err := dec.Decode(seed); err != nil {
			t.Fatalf("Decode(seed) = %v", err)
		}
		got, gotX, gerr := dec.Decode(b)
		if (err == nil) != (gerr == nil) {
			t.Fatalf("DecodeRecord error %v, RecordDecoder.Decode error %v", err, gerr)
		}
		if err == nil {
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("RecordDecoder.Decode decision (-DecodeRecord +Decode):\n%s", diff)
			}
			if diff := cmp.Diff(wantX, gotX); diff != "" {
				t.Errorf("RecordDecoder.Decode context (-DecodeRecord +Decode):\n%s", diff)
			}
		}
	})
}

// A RecordDecoder decodes what DecodeRecord does, record after record of
// different shapes (none of its slices leak from one record into the
// next), and allocates nothing once warm.
func TestRecordDecoder(t *testing.T) {
	full, fx := ringDecision("r1", 10)
	full.Pool = []PoolItem{{ItemID: "p1", Category: "c1", Score: 0.5, Popularity: 0.25}, {ItemID: "p2", Category: "c2", Score: 0.4, Popularity: 1}}
	full.Eligible, full.Explore, full.ExploreTop = 150, 0.1, 20
	full.Shadow = &Shadow{ModelVersion: "m2", Items: []string{"a", "b"}, Scores: []float64{0.3, 0.2}, Overlap: 1, Duration: 40 * time.Microsecond}
	bare := &Decision{RequestID: "r2", Time: time.Unix(1700000001, 0), Fallback: ReasonFeatureStoreError}
	other, ox := ringDecision("r3", 3)
	other.Features = map[string]*string{"user_device": nil}
	other.Shadow = &Shadow{ModelVersion: "m2", Error: "inference timed out"}
	v1 := appendRecord(nil, &Decision{RequestID: "r4", Variant: "ftrl"}, ox)
	v1 = v1[:len(v1)-(1+8+1+1+1)] // v2's fields and v3's absent shadow
	v1[0] = 1
	recs := [][]byte{
		appendRecord(nil, full, fx),
		appendRecord(nil, bare, &model.Context{}),
		appendRecord(nil, full, fx),
		v1,
		appendRecord(nil, other, ox),
	}
	var dec RecordDecoder
	for i, rec := range recs {
		want, wantX, err := DecodeRecord(rec)
		if err != nil {
			t.Fatalf("record %d: DecodeRecord: %v", i, err)
		}
		got, gotX, err := dec.Decode(rec)
		if err != nil {
			t.Fatalf("record %d: Decode: %v", i, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("record %d: Decode decision (-DecodeRecord +Decode):\n%s", i, diff)
		}
		if diff := cmp.Diff(wantX, gotX); diff != "" {
			t.Errorf("record %d: Decode context (-DecodeRecord +Decode):\n%s", i, diff)
		}
	}
	if _, _, err := dec.Decode(recs[0][:len(recs[0])/2]); err == nil {
		t.Error("Decode(truncated) = nil error, want ErrBadRecord")
	}
	if _, _, err := dec.Decode(nil); err == nil {
		t.Error("Decode(nil) = nil error, want ErrBadRecord")
	}
	if a := testing.AllocsPerRun(100, func() {
		for _, rec := range recs {
			if _, _, err := dec.Decode(rec); err != nil {
				t.Fatal(err)
			}
		}
	}); a != 0 {
		t.Errorf("Decode allocates %v times per %d records once warm, want 0", a, len(recs))
	}
}

// flatFeatures is the features map DecodeFlat's features stand for.
func flatFeatures(feats []RecordFeature) map[string]*string {
	if len(feats) == 0 {
		return nil
	}
	m := map[string]*string{}
	for _, f := range feats {
		if f.Null {
			m[f.Name] = nil
		} else {
			v := f.Value
			m[f.Name] = &v
		}
	}
	return m
}

// checkFlat checks that DecodeFlat of rec by dec is DecodeRecord's
// decision without the map, and its features the map's.
func checkFlat(t *testing.T, dec *RecordDecoder, rec []byte) {
	t.Helper()
	want, wantX, err := DecodeRecord(rec)
	got, gotX, feats, gerr := dec.DecodeFlat(rec)
	if (err == nil) != (gerr == nil) {
		t.Fatalf("DecodeRecord error %v, DecodeFlat error %v", err, gerr)
	}
	if err != nil {
		return
	}
	if got.Features != nil {
		t.Errorf("DecodeFlat decision has features %v, want none", got.Features)
	}
	wantFeatures := want.Features
	want.Features = nil
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DecodeFlat decision (-DecodeRecord +DecodeFlat):\n%s", diff)
	}
	if diff := cmp.Diff(wantX, gotX); diff != "" {
		t.Errorf("DecodeFlat context (-DecodeRecord +DecodeFlat):\n%s", diff)
	}
	if diff := cmp.Diff(wantFeatures, flatFeatures(feats)); diff != "" {
		t.Errorf("DecodeFlat features (-DecodeRecord's map +DecodeFlat's):\n%s", diff)
	}
}

// FuzzRecordDecoderFlat checks that DecodeFlat, after another record,
// decodes any input as DecodeRecord does, its features aside.
func FuzzRecordDecoderFlat(f *testing.F) {
	d, x := ringDecision("r1", 3)
	d.Pool = []PoolItem{{ItemID: "p1", Category: "c1", Score: 0.5, Popularity: 0.25}}
	seed := appendRecord(nil, d, x)
	f.Add(seed)
	f.Add([]byte{RecordVersion, 2, 'r', '1'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var dec RecordDecoder
		checkFlat(t, &dec, seed)
		checkFlat(t, &dec, b)
	})
}

// DecodeFlat decodes what DecodeRecord does, features in a slice instead
// of a map (a null feature included), record after record, between
// Decode calls, and allocates nothing once warm.
func TestRecordDecoderFlat(t *testing.T) {
	full, fx := ringDecision("r1", 10)
	full.Pool = []PoolItem{{ItemID: "p1", Category: "c1", Score: 0.5, Popularity: 0.25}}
	age := "25-34"
	full.Features = map[string]*string{"user_age_bucket": &age, "user_device": nil}
	full.Candidates, full.Eligible = 16000, 300 // two-byte varints
	bare := &Decision{RequestID: "r2", Time: time.Unix(1700000001, 0), Fallback: ReasonFeatureStoreError}
	other, ox := ringDecision("r3", 3)
	shadowed, sx := ringDecision("r5", 4)
	shadowed.Shadow = &Shadow{ModelVersion: "m2", Items: []string{"x"}, Scores: []float64{0.5}, Duration: time.Millisecond}
	// Past what the fast path reads: a string of 128 bytes or more, a
	// count of three bytes.
	long, lx := ringDecision(strings.Repeat("r4", 100), 3)
	long.Candidates = 1 << 20
	recs := [][]byte{appendRecord(nil, full, fx), appendRecord(nil, bare, &model.Context{}), appendRecord(nil, other, ox), appendRecord(nil, long, lx), appendRecord(nil, shadowed, sx)}
	var dec RecordDecoder
	for i, rec := range recs {
		if _, _, _, ok := dec.decodeLean(rec); ok != (i < 3) {
			t.Errorf("record %d: fast path %v, want %v", i, ok, i < 3)
		}
	}
	for range 2 {
		for _, rec := range recs {
			checkFlat(t, &dec, rec)
			if _, _, err := dec.Decode(rec); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, _, feats, err := dec.DecodeFlat(recs[0])
	if err != nil || len(feats) != 2 {
		t.Fatalf("DecodeFlat = %v features, %v; want 2", feats, err)
	}
	if _, _, _, err := dec.DecodeFlat(recs[0][:len(recs[0])/2]); err == nil {
		t.Error("DecodeFlat(truncated) = nil error, want ErrBadRecord")
	}
	if a := testing.AllocsPerRun(100, func() {
		for _, rec := range recs {
			if _, _, _, err := dec.DecodeFlat(rec); err != nil {
				t.Fatal(err)
			}
		}
	}); a != 0 {
		t.Errorf("DecodeFlat allocates %v times per %d records once warm, want 0", a, len(recs))
	}
}

// A version 2 record carries the exploration settings and the candidate
// pool; a version 1 record (an API node not yet upgraded) still decodes,
// without them.
func TestRecordPoolAndVersions(t *testing.T) {
	var published [][]byte
	sc := &fakeScorer{score: func(it event.Item) float64 { return 0.1 + float64(it.ID[len(it.ID)-1]%7)/10 }}
	e := newTestEngine(t, &fakeStore{users: knownUsers()}, sc, func(c *Config) {
		c.Explore, c.ExploreTop, c.PoolSize = 0.3, 4, 8
		c.OnRecord = func(_ string, rec []byte) { published = append(published, bytes.Clone(rec)) }
	})
	d, err := e.Recommend(t.Context(), Request{UserID: "alice", Count: 5})
	if err != nil {
		t.Fatalf("Recommend: %v", err)
	}
	if len(d.Pool) != 8 || d.Eligible < 8 || d.Explore != 0.3 || d.ExploreTop != 4 {
		t.Fatalf("decision pool %d items, eligible %d, explore %v top %d; want 8 pooled of ≥ 8 eligible, 0.3, 4", len(d.Pool), d.Eligible, d.Explore, d.ExploreTop)
	}
	for i := 1; i < len(d.Pool); i++ {
		if d.Pool[i].Score > d.Pool[i-1].Score {
			t.Errorf("pool not in ranking order: %v before %v", d.Pool[i-1], d.Pool[i])
		}
	}
	got, _, err := DecodeRecord(published[0])
	if err != nil {
		t.Fatalf("DecodeRecord: %v", err)
	}
	if diff := cmp.Diff(d, got, cmpopts.EquateEmpty(), cmpopts.EquateApproxTime(0)); diff != "" {
		t.Errorf("DecodeRecord decision (-answered +decoded):\n%s", diff)
	}

	// Version 2 is version 3 without its last field (here: no shadow).
	v2 := bytes.Clone(published[0])
	v2 = v2[:len(v2)-1]
	v2[0] = 2
	if old, _, err := DecodeRecord(v2); err != nil {
		t.Errorf("DecodeRecord(version 2) = %v", err)
	} else if diff := cmp.Diff(d, old, cmpopts.EquateEmpty(), cmpopts.EquateApproxTime(0)); diff != "" {
		t.Errorf("DecodeRecord(version 2) (-answered +decoded):\n%s", diff)
	}

	// Version 1 is version 2 without the fields after the model context.
	v1 := *d
	v1.Pool, v1.Eligible, v1.Explore, v1.ExploreTop = nil, 0, 0, 0
	rec := appendRecord(nil, &v1, &model.Context{User: event.User{AgeBucket: "25-34"}, Hour: 3})
	rec = rec[:len(rec)-(1+8+1+1+1)] // eligible 0, explore 0.0, top 0, empty pool, no shadow
	rec[0] = 1
	old, x, err := DecodeRecord(rec)
	if err != nil {
		t.Fatalf("DecodeRecord(version 1) = %v", err)
	}
	if diff := cmp.Diff(&v1, old, cmpopts.EquateEmpty(), cmpopts.EquateApproxTime(0)); diff != "" {
		t.Errorf("DecodeRecord(version 1) (-want +got):\n%s", diff)
	}
	if x.User.AgeBucket != "25-34" || x.Hour != 3 {
		t.Errorf("DecodeRecord(version 1) context = %+v", x)
	}
	if err := NewRing(4, testPool).Put(rec); err != nil {
		t.Errorf("Ring.Put(version 1) = %v", err)
	}
}

// BenchmarkRecordDecoder decodes a node's default record (10 items, a pool
// of 20, four features): the decision log's writer does it for every
// decision, with DecodeFlat ("flat").
func BenchmarkRecordDecoder(b *testing.B) {
	d, x := ringDecision("bench-request-0001", 10)
	d.Features = map[string]*string{}
	for _, name := range []string{"user_age_bucket", "user_segment", "user_region", "user_device"} {
		v := "v-" + name
		d.Features[name] = &v
	}
	for i := range 20 {
		d.Pool = append(d.Pool, PoolItem{ItemID: fmt.Sprintf("i%05d", i*37), Category: fmt.Sprintf("c%02d", i%7), Score: 0.1, Popularity: 0.5})
	}
	rec := appendRecord(nil, d, x)
	var dec RecordDecoder
	b.Run("map", func(b *testing.B) {
		b.SetBytes(int64(len(rec)))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := dec.Decode(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("flat", func(b *testing.B) {
		b.SetBytes(int64(len(rec)))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, _, err := dec.DecodeFlat(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
}
