package learn

import (
	"context"
	"time"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/ingest"
)

// ErasureHandler applies the erasure records of the stream
// ([event.Erasure], put there by DELETE /v1/users/{user_id} on any node)
// to what a node keeps of users in memory beside the feature store: its
// recent decisions. The activity writer erases activity itself, in order
// with the user's events (features' Apply), and the model updater forgets
// the users it cached. It implements [ingest.PartitionHandler] and keeps
// no position: erase must be safe to call again for a record, which it is
// when it drops only what was made up to the erasure's time.
type ErasureHandler struct {
	erase func(userID string, at time.Time)
}

// NewErasureHandler returns a handler calling erase with the user and the
// time of each erasure record, from the consumer's goroutine; erase must
// not block for long.
func NewErasureHandler(erase func(userID string, at time.Time)) *ErasureHandler {
	return &ErasureHandler{erase: erase}
}

// HandlePartition calls erase for each erasure record of recs, in order.
func (h *ErasureHandler) HandlePartition(_ context.Context, _ int32, recs []ingest.Record) error {
	for i := range recs {
		if ev := &recs[i].Event; ev.Type == event.Erasure && ev.UserID != "" {
			h.erase(ev.UserID, ev.Timestamp)
		}
	}
	return nil
}
