package learn

import (
	"context"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/ingest"
)

// Observer is the serving node's candidate index (popularity,
// co-visitation): [engine.Engine] implements it. Observe is called for
// every event in log order, from the consumer's goroutine.
type Observer interface {
	Observe(ctx context.Context, ev *event.Event)
}

// IndexUpdater feeds every event to the candidate index, each in an
// "events process" span linked to its producer and recommendation. It
// implements [ingest.PartitionHandler]. It keeps no position: the index needs only
// recent history and is rebuilt from it at start.
type IndexUpdater struct {
	obs   Observer
	spans spans
}

// NewIndexUpdater returns an updater feeding obs; j links spans to the
// recommendations (nil: producer links only).
func NewIndexUpdater(obs Observer, j Joiner, t Tracing) *IndexUpdater {
	return &IndexUpdater{obs: obs, spans: newSpans(t, j)}
}

// Handle feeds recs to the index.
func (x *IndexUpdater) HandlePartition(ctx context.Context, _ int32, recs []ingest.Record) error {
	for i := range recs {
		r := &recs[i]
		_, span := x.spans.start(ctx, "events process", r)
		x.obs.Observe(ctx, &r.Event)
		span.End()
	}
	return nil
}

// EngagementObserver counts impressions, clicks and conversions by variant
// and channel: [quality.Engagement] and [quality.Live] implement it.
type EngagementObserver interface {
	ObserveEvent(variant, channel string, t event.Type)
}

// EngagementTracker counts events per variant for the CTR signals. It
// implements [ingest.PartitionHandler].
type EngagementTracker struct {
	variant func(userID string) string
	obs     []EngagementObserver
}

// NewEngagementTracker returns a tracker that assigns each event to the
// variant its user is served by and tells obs.
func NewEngagementTracker(variant func(userID string) string, obs ...EngagementObserver) *EngagementTracker {
	return &EngagementTracker{variant: variant, obs: obs}
}

// Handle counts recs.
func (t *EngagementTracker) HandlePartition(_ context.Context, _ int32, recs []ingest.Record) error {
	for i := range recs {
		ev := &recs[i].Event
		v := t.variant(ev.UserID)
		for _, o := range t.obs {
			o.ObserveEvent(v, ev.Channel, ev.Type)
		}
	}
	return nil
}

// Then is a handler that hands each batch to first and, once first has
// handled it, to next: two consumers of the same records share one read of
// the bus. An error of first is returned before next sees the batch, so a
// redelivered batch reaches next once.
func Then(first, next ingest.PartitionHandler) ingest.PartitionHandler {
	return then{first, next}
}

type then struct{ first, next ingest.PartitionHandler }

func (t then) HandlePartition(ctx context.Context, p int32, recs []ingest.Record) error {
	if err := t.first.HandlePartition(ctx, p, recs); err != nil {
		return err
	}
	return t.next.HandlePartition(ctx, p, recs)
}
