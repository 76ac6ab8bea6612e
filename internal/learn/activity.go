package learn

import (
	"context"
	"fmt"
	"sync"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/ingest"
)

// ActivityWriter records events in users' recent activity: the feature
// store. Applying again a suffix of what was applied must change nothing,
// since the bus may deliver records again.
type ActivityWriter interface {
	Apply(ctx context.Context, evs []*event.Event) error
}

// ActivityUpdater records events in users' recent activity, one batch per
// call. It implements [ingest.PartitionHandler].
type ActivityUpdater struct {
	w ActivityWriter

	// mu is held for reading while a batch is applied (partitions apply
	// at once) and for writing by Pause.
	mu sync.RWMutex
	// pmu guards applied.
	pmu     sync.Mutex
	applied ingest.Offsets // next offset to apply per partition
}

// NewActivityUpdater returns an updater whose store includes every record
// before applied (per partition; nil: none applied yet).
func NewActivityUpdater(w ActivityWriter, applied ingest.Offsets) *ActivityUpdater {
	return &ActivityUpdater{w: w, applied: applied.Clone()}
}

// HandlePartition applies the records of partition p not applied yet, as
// one batch; on error the bus delivers the batch again. Calls for
// different partitions may run at once (the writer must allow it).
func (a *ActivityUpdater) HandlePartition(ctx context.Context, p int32, recs []ingest.Record) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	a.pmu.Lock()
	from := a.applied[p]
	a.pmu.Unlock()
	evs := make([]*event.Event, 0, len(recs))
	for i := range recs {
		if recs[i].Offset >= from {
			evs = append(evs, &recs[i].Event)
		}
	}
	if len(evs) == 0 {
		return nil
	}
	if err := a.w.Apply(ctx, evs); err != nil {
		return fmt.Errorf("activity update: %w", err)
	}
	a.pmu.Lock()
	a.applied[p] = recs[len(recs)-1].Offset + 1
	a.pmu.Unlock()
	return nil
}

// Pause runs fn while no record is applied, with the positions the store
// includes.
func (a *ActivityUpdater) Pause(fn func(applied ingest.Offsets) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pmu.Lock()
	applied := a.applied.Clone()
	a.pmu.Unlock()
	return fn(applied)
}
