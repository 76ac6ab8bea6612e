package learn

import (
	"context"
	"sort"
	"sync"

	"github.com/sightline/sightline/internal/ingest"
)

// Stage is one handler of a [Fanout] and where it starts: From holds, per
// partition, the first offset it is to be given (a partition it does not
// list, or a nil From: every record).
type Stage struct {
	H    ingest.PartitionHandler
	From ingest.Offsets
}

// Fanout hands each batch to several handlers in turn, so that they share
// one read and decoding of the bus: a node's consumers of the same stream
// cost one fetch instead of one each. Each stage is given a record once,
// from its own start on: Fanout keeps every stage's position per
// partition, so a batch delivered again after a stage failed reaches only
// that stage and the ones after it. A stage's error stops the batch there
// and is returned (the bus delivers the batch again). It implements
// [ingest.PartitionHandler]; calls for different partitions may run at
// once, as the stages must allow.
type Fanout struct {
	stages []Stage

	mu  sync.Mutex
	pos []ingest.Offsets // next offset to give each stage, per partition
}

// NewFanout returns a fanout over stages, in order: put the stages that
// cannot fail first, so that a failing one does not hold them back.
func NewFanout(stages ...Stage) *Fanout {
	f := &Fanout{stages: stages, pos: make([]ingest.Offsets, len(stages))}
	for i, s := range stages {
		f.pos[i] = s.From.Clone()
		if f.pos[i] == nil {
			f.pos[i] = ingest.Offsets{}
		}
	}
	return f
}

// From is where the shared consumer starts: per partition, the earliest
// start of the stages. A partition that some stage does not list is left
// out (the consumer starts it from the bus's start), and so is every
// partition when a stage has a nil From.
func (f *Fanout) From() ingest.Offsets {
	var out ingest.Offsets
	for i, s := range f.stages {
		if len(s.From) == 0 {
			return nil
		}
		if i == 0 {
			out = s.From.Clone()
			continue
		}
		for p, o := range out {
			so, ok := s.From[p]
			switch {
			case !ok:
				delete(out, p)
			case so < o:
				out[p] = so
			}
		}
	}
	return out
}

// HandlePartition gives each stage the records of recs it has not been
// given yet, in stage order.
func (f *Fanout) HandlePartition(ctx context.Context, p int32, recs []ingest.Record) error {
	if len(recs) == 0 {
		return nil
	}
	next := recs[len(recs)-1].Offset + 1
	for i, s := range f.stages {
		f.mu.Lock()
		from := f.pos[i][p]
		f.mu.Unlock()
		k := sort.Search(len(recs), func(j int) bool { return recs[j].Offset >= from })
		if k == len(recs) {
			continue
		}
		if err := s.H.HandlePartition(ctx, p, recs[k:]); err != nil {
			return err
		}
		f.mu.Lock()
		f.pos[i][p] = next
		f.mu.Unlock()
	}
	return nil
}
