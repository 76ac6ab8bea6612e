package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sightline/sightline/internal/event"
)

// Errors returned by the log. Callers match them with errors.Is.
var (
	// ErrClosed is returned by operations on a closed log.
	ErrClosed = errors.New("ingest: log closed")
	// ErrOffsetOutOfRange is returned by Read for an offset below the oldest
	// retained one. The returned error is an [*OutOfRangeError] that tells
	// the oldest retained offset.
	ErrOffsetOutOfRange = errors.New("ingest: offset out of range")
	// ErrRecordTooLarge is returned by Append for an event whose encoding
	// exceeds MaxRecordBytes.
	ErrRecordTooLarge = errors.New("ingest: record too large")
	// ErrInvalidName is returned for a consumer name that is empty, too long
	// or has characters other than ASCII letters, digits, '-', '_' and '.'.
	ErrInvalidName = errors.New("ingest: invalid consumer name")
	// ErrConsumerActive is returned by Consume when a consumer with the same
	// name is already running on the log.
	ErrConsumerActive = errors.New("ingest: consumer already active")
	// ErrLocked is returned by Open when another process holds the log
	// directory.
	ErrLocked = errors.New("ingest: log directory locked by another process")
)

// OutOfRangeError reports a read below the oldest retained offset (the
// older records were deleted by retention or lost to corruption). It
// unwraps to [ErrOffsetOutOfRange].
type OutOfRangeError struct {
	// Offset is the requested offset.
	Offset uint64
	// Oldest is the oldest offset still retained.
	Oldest uint64
}

// Error implements error.
func (e *OutOfRangeError) Error() string {
	return fmt.Sprintf("ingest: offset %d out of range: oldest retained offset is %d", e.Offset, e.Oldest)
}

// Unwrap returns [ErrOffsetOutOfRange].
func (e *OutOfRangeError) Unwrap() error { return ErrOffsetOutOfRange }

// Record is one event in the log with the offset the log assigned to it and
// the time it was appended.
type Record struct {
	// Offset is the position of the record in the log, assigned
	// contiguously from 0 in append order.
	Offset uint64
	// AppendTime is when the log accepted the record (the log's clock, not
	// the event's Timestamp).
	AppendTime time.Time
	// Event is the appended event.
	Event event.Event
}

// AppendResult reports what an Append did.
type AppendResult struct {
	// Appended is the number of events written to the log.
	Appended int
	// Duplicates is the number of events skipped because their ID was
	// already in the log (within the dedupe window) or earlier in the same
	// batch.
	Duplicates int
	// First and Last are the offsets of the first and last appended events.
	// They are meaningful only when Appended > 0. Events of one Append are
	// contiguous in the log.
	First, Last uint64
}

// Handler processes records delivered by Consume.
//
// Consume calls Handle from its own goroutine, one batch at a time, in
// offset order; a Handler used by one consumer need not be safe for
// concurrent use. Handle may block; it should return when ctx is done. A
// returned error makes Consume log it and deliver the same batch again after
// a backoff, so Handle must tolerate seeing records again (apply
// idempotently, for example by offset). recs and its records are reused
// after Handle returns: copy what must be kept.
type Handler interface {
	Handle(ctx context.Context, recs []Record) error
}

// HandlerFunc adapts a function to the [Handler] interface.
type HandlerFunc func(ctx context.Context, recs []Record) error

// Handle calls f(ctx, recs).
func (f HandlerFunc) Handle(ctx context.Context, recs []Record) error { return f(ctx, recs) }

// ConsumeOptions tunes one Consume call. The zero value is valid.
type ConsumeOptions struct {
	// MaxBatch is the largest number of records passed to one Handle call.
	// Zero means 512.
	MaxBatch int
	// CommitOffsets makes the log persist the consumer's position to
	// <dir>/offsets/<name>, at most every CommitInterval and when Consume
	// returns, for consumers that do not snapshot their own state.
	CommitOffsets bool
	// CommitInterval is the minimum time between two position commits.
	// Zero means 1s. Kafka raises it to 100ms at least.
	CommitInterval time.Duration
	// MinBackoff is the delay before the first retry of a failed Handle.
	// Zero means 100ms. The delay doubles on each retry up to MaxBackoff.
	MinBackoff time.Duration
	// MaxBackoff caps the retry delay. Zero means 10s.
	MaxBackoff time.Duration
}

func (o ConsumeOptions) withDefaults() ConsumeOptions {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 512
	}
	if o.CommitInterval <= 0 {
		o.CommitInterval = time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	return o
}

// Bus is the event bus as the rest of Sightline uses it, partition-aware:
// the embedded [Log] (one partition, 0) and [Kafka] implement it. All
// methods are safe for concurrent use.
type Bus interface {
	// Append makes evs durable (acknowledged by the brokers, for Kafka)
	// and returns once they are, skipping events whose ID it remembers. The
	// API handler calls it per request; it blocks.
	Append(ctx context.Context, evs []event.Event) (AppendResult, error)
	// Subscribe runs the named consumer from the positions in from (nil:
	// where the bus resumes it, see Start) until ctx is done or the bus
	// closes, handing h one partition's records at a time, in order. With
	// commit the bus keeps the consumer's position itself (the embedded log
	// in a file, Kafka as group offsets). It blocks; a Handle error
	// redelivers the batch after a backoff.
	Subscribe(ctx context.Context, name string, from Offsets, h PartitionHandler, commit bool) error
	// Position is the named consumer's progress, comparable with End.
	Position(name string) uint64
	// Lag is how many records the named consumer has not processed and
	// how long the oldest of them has waited.
	Lag(name string) (records uint64, age time.Duration)
	// End is the Position of a consumer that has processed every record
	// appended so far. It may make a round trip.
	End(ctx context.Context) (uint64, error)
	// Start returns the positions a consumer without a snapshot starts
	// at: its committed position when committed is set and it has one,
	// else the oldest retained record (nil: the bus's own choice).
	Start(ctx context.Context, name string, committed bool) (Offsets, error)
	// Recent returns positions about n records before the end, for
	// consumers whose state needs only recent history.
	Recent(ctx context.Context, n uint64) (Offsets, error)
	// Run does the bus's background work until ctx is done.
	Run(ctx context.Context) error
	// ID names the bus (and topic), so a snapshot's offsets are used only
	// with the bus they were taken on: "embedded" or "kafka:<topic>".
	ID() string
	// Close releases the bus; running consumers return.
	Close() error
}

// subscribeBatch is the largest batch Subscribe hands a handler: the event
// path reads its feature store once per batch.
const subscribeBatch = 1024

var (
	_ Bus = (*Log)(nil)
	_ Bus = (*Kafka)(nil)
)
