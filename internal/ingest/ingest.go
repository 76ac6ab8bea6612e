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
	// Zero means 1s.
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

// Bus is the event bus as the rest of Sightline uses it: the embedded [Log]
// implements it, and a Kafka implementation will too. All methods are safe
// for concurrent use.
type Bus interface {
	// Append makes evs durable and returns once they are, skipping events
	// whose ID was appended before. The API handler calls it per request;
	// it blocks until the events are durable or ctx is done.
	Append(ctx context.Context, evs []event.Event) (AppendResult, error)
	// Consume delivers records from offset from to h in order, in batches,
	// until ctx is done or the bus is closed. It blocks; the owner runs it
	// in its own goroutine, one call per consumer name.
	Consume(ctx context.Context, name string, from uint64, h Handler, opt ConsumeOptions) error
	// Position returns the next offset the named consumer will read.
	Position(name string) uint64
	// Lag returns how many records the named consumer has not yet
	// processed and how long the oldest of them has been waiting.
	Lag(name string) (records uint64, age time.Duration)
	// Close flushes and releases the bus. Running Consume calls return.
	Close() error
}

var _ Bus = (*Log)(nil)
