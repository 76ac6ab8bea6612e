package learn

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/ingest"
)

// stageRecorder is a stage that notes the offsets it is given per partition
// and fails the calls listed in fail (by call number, from 1).
type stageRecorder struct {
	got   map[int32][]uint64
	calls int
	fail  map[int]bool
}

func (r *stageRecorder) HandlePartition(_ context.Context, p int32, recs []ingest.Record) error {
	r.calls++
	if r.fail[r.calls] {
		return errors.New("stage down")
	}
	if r.got == nil {
		r.got = map[int32][]uint64{}
	}
	for _, rec := range recs {
		r.got[p] = append(r.got[p], rec.Offset)
	}
	return nil
}

func offsetsOf(first, n uint64) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = first + uint64(i)
	}
	return out
}

func evs(n int) []event.Event {
	out := make([]event.Event, n)
	for i := range out {
		out[i] = event.Event{ID: "e", Type: event.Impression}
	}
	return out
}

// Each stage is given every record once, from its own start, even when a
// later stage fails and the bus delivers the batch again.
func TestFanoutGivesEachStageEachRecordOnce(t *testing.T) {
	first := &stageRecorder{}
	failing := &stageRecorder{fail: map[int]bool{1: true}}
	late := &stageRecorder{}
	f := NewFanout(
		Stage{H: first},
		Stage{H: failing},
		Stage{H: late, From: ingest.Offsets{0: 3, 1: 12}},
	)
	p0 := records(0, evs(5)...)
	p1 := records(10, evs(4)...)
	if err := f.HandlePartition(t.Context(), 0, p0); err == nil {
		t.Fatal("the failing stage's error was not returned")
	}
	// Delivered again, as the bus does; then the next partition.
	for _, b := range []struct {
		p    int32
		recs []ingest.Record
	}{{0, p0}, {1, p1}, {0, records(5, evs(2)...)}} {
		if err := f.HandlePartition(t.Context(), b.p, b.recs); err != nil {
			t.Fatal(err)
		}
	}
	want := map[int32][]uint64{0: offsetsOf(0, 7), 1: offsetsOf(10, 4)}
	if diff := cmp.Diff(want, first.got); diff != "" {
		t.Errorf("first stage (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, failing.got); diff != "" {
		t.Errorf("failing stage after its retry (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[int32][]uint64{0: offsetsOf(3, 4), 1: offsetsOf(12, 2)}, late.got); diff != "" {
		t.Errorf("stage with its own start (-want +got):\n%s", diff)
	}
	if first.calls != 3 {
		t.Errorf("first stage called %d times; want 3 (the redelivered batch skipped)", first.calls)
	}
	if late.got[0][0] != 3 || late.calls != 3 {
		t.Errorf("late stage: %d calls, first offset %d; want 3 calls from 3", late.calls, late.got[0][0])
	}
}

func TestFanoutFrom(t *testing.T) {
	tests := []struct {
		name string
		from []ingest.Offsets
		want ingest.Offsets
	}{
		{"earliest per partition", []ingest.Offsets{{0: 5, 1: 9}, {0: 7, 1: 2}}, ingest.Offsets{0: 5, 1: 2}},
		{"a partition one stage lacks starts at the beginning", []ingest.Offsets{{0: 5, 1: 9}, {0: 7}}, ingest.Offsets{0: 5}},
		{"a stage without a start", []ingest.Offsets{{0: 5}, nil}, nil},
		{"one stage", []ingest.Offsets{{3: 1}}, ingest.Offsets{3: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stages []Stage
			for _, o := range tt.from {
				stages = append(stages, Stage{H: &stageRecorder{}, From: o})
			}
			if diff := cmp.Diff(tt.want, NewFanout(stages...).From()); diff != "" {
				t.Errorf("From (-want +got):\n%s", diff)
			}
		})
	}
}
