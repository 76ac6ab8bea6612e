package learn

import (
	"context"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/ingest"
)

// EventLog is the decision log's event side: [decisionlog.Writer]
// implements it. Event is called from the consumer's goroutine for every
// event that answers a decision; it must not block (a full log drops the
// event and counts it) and must not keep ev after it returns.
type EventLog interface {
	Event(ev *event.Event) bool
}

// DecisionEvents hands every event that answers a decision (one with a
// request id) to the decision log, which joins it to the decision by that
// id. Organic events, which answer none, are not logged. It implements
// [ingest.PartitionHandler]; a redelivered batch is logged again, so the
// log holds every acknowledged event at least once.
type DecisionEvents struct{ log EventLog }

// NewDecisionEvents returns a handler feeding l.
func NewDecisionEvents(l EventLog) *DecisionEvents { return &DecisionEvents{log: l} }

// roomWaiter is a log that can ask a durable stream's reader to wait for
// it (decisionlog.Writer.WaitRoom).
type roomWaiter interface {
	WaitRoom(ctx context.Context)
}

// HandlePartition hands the events of recs that answer a decision to the
// log, after waiting for room in it when the log can say (the bus is
// durable: replaying it after a restart slows to the log's pace instead of
// dropping).
func (h *DecisionEvents) HandlePartition(ctx context.Context, _ int32, recs []ingest.Record) error {
	if w, ok := h.log.(roomWaiter); ok {
		w.WaitRoom(ctx)
	}
	for i := range recs {
		if ev := &recs[i].Event; ev.RequestID != "" {
			h.log.Event(ev)
		}
	}
	return nil
}
