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

	mu      sync.Mutex
	applied ingest.Offsets // next offset to apply per partition
	evs     []*event.Event
}

// NewActivityUpdater returns an updater whose store includes every record
// before applied (per partition; nil: none applied yet).
func NewActivityUpdater(w ActivityWriter, applied ingest.Offsets) *ActivityUpdater {
	return &ActivityUpdater{w: w, applied: applied.Clone()}
}

// Handle applies the records of partition p not applied yet, as one batch;
// on error the bus delivers the batch again.
func (a *ActivityUpdater) HandlePartition(ctx context.Context, p int32, recs []ingest.Record) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	evs := a.evs[:0]
	for i := range recs {
		if recs[i].Offset >= a.applied[p] {
			evs = append(evs, &recs[i].Event)
		}
	}
	if len(evs) == 0 {
		return nil
	}
	err := a.w.Apply(ctx, evs)
	clear(evs) // recs are reused after Handle: keep no pointer into them
	a.evs = evs[:0]
	if err != nil {
		return fmt.Errorf("activity update: %w", err)
	}
	a.applied[p] = recs[len(recs)-1].Offset + 1
	return nil
}

// Pause runs fn while no record is applied, with the positions the store
// includes.
func (a *ActivityUpdater) Pause(fn func(applied ingest.Offsets) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return fn(a.applied.Clone())
}
