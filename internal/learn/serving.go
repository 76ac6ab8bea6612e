package learn

import (
	"context"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/ingest"
)

// Observer is the serving node's candidate index (popularity,
// co-visitation): [engine.Engine] implements it. ObserveAll is called with
// every batch of events in log order, from the consumer's goroutine; it
// calls observe(i, record) for each event, and record records it.
type Observer interface {
	ObserveAll(ctx context.Context, evs []*event.Event, observe func(i int, record func()))
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

// HandlePartition feeds recs to the index.
func (x *IndexUpdater) HandlePartition(ctx context.Context, _ int32, recs []ingest.Record) error {
	evs := make([]*event.Event, len(recs))
	for i := range recs {
		evs[i] = &recs[i].Event
	}
	x.obs.ObserveAll(ctx, evs, func(i int, record func()) {
		_, span := x.spans.start(ctx, "events process", &recs[i])
		record()
		span.End()
	})
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

// HandlePartition counts recs.
func (t *EngagementTracker) HandlePartition(_ context.Context, _ int32, recs []ingest.Record) error {
	for i := range recs {
		ev := &recs[i].Event
		if ev.Type == event.Erasure {
			continue // not an interaction
		}
		v := t.variant(ev.UserID)
		for _, o := range t.obs {
			o.ObserveEvent(v, ev.Channel, ev.Type)
		}
	}
	return nil
}
