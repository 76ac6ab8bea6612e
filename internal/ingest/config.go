package ingest

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// FsyncPolicy says when appended records are fsynced to disk.
type FsyncPolicy int

// The fsync policies. The zero value is FsyncAlways.
const (
	// FsyncAlways fsyncs every group commit before Append returns: an
	// acknowledged event survives a power loss.
	FsyncAlways FsyncPolicy = iota
	// FsyncInterval fsyncs the active segment every Config.FsyncInterval
	// from [Log.Run]: an acknowledged event survives a process crash but
	// up to one interval may be lost on power loss.
	FsyncInterval
	// FsyncNever leaves flushing to the operating system (and Close).
	FsyncNever
)

// String returns "always", "interval" or "never".
func (p FsyncPolicy) String() string {
	switch p {
	case FsyncAlways:
		return "always"
	case FsyncInterval:
		return "interval"
	case FsyncNever:
		return "never"
	}
	return fmt.Sprintf("FsyncPolicy(%d)", int(p))
}

// MaxRecordBytes bounds the encoded size of one event in the log. Events
// accepted by event.Event.Validate are far smaller; the bound protects the
// log from unvalidated input such as an oversized TraceState.
const MaxRecordBytes = 1 << 20

// Config configures a [Log]. The zero value of every field means its
// default.
type Config struct {
	// SegmentBytes is the size at which the active segment is closed and a
	// new one started. A segment holds whole group commits, so it exceeds
	// SegmentBytes only when a single group commit does. Zero means 64 MiB.
	SegmentBytes int64
	// Fsync says when appends are fsynced. The zero value is FsyncAlways.
	Fsync FsyncPolicy
	// FsyncInterval is the fsync period under FsyncInterval, run by
	// [Log.Run]. Zero means 100ms.
	FsyncInterval time.Duration
	// Retention is how long a segment is kept after its newest record was
	// appended. Zero means 7 days; a negative value keeps segments forever.
	// [Log.Run] enforces it; the active segment is never deleted.
	Retention time.Duration
	// RetentionBytes caps the total size of the log: the oldest segments
	// beyond it are deleted by [Log.Run]. Zero means unlimited.
	RetentionBytes int64
	// RetentionCheckInterval is how often [Log.Run] applies Retention and
	// RetentionBytes. Zero means 1 minute.
	RetentionCheckInterval time.Duration
	// DedupeWindow is the number of most recently appended event IDs
	// remembered for idempotency; Append skips an event whose ID is among
	// them. Open rebuilds the window by scanning the retained segments.
	// Zero means 1,000,000; a negative value disables deduplication across
	// appends (duplicates within one batch are still skipped).
	DedupeWindow int
	// Logger receives recovery, corruption and consumer error logs. Nil
	// means no logging.
	Logger *slog.Logger
	// Registerer registers the log's metrics. Nil means the metrics are not
	// registered.
	Registerer prometheus.Registerer
	// Now is the clock used for append times, retention and lag. Nil means
	// time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	if c.SegmentBytes < 0 || c.RetentionBytes < 0 || c.FsyncInterval < 0 || c.RetentionCheckInterval < 0 {
		return c, fmt.Errorf("ingest config: negative SegmentBytes, RetentionBytes or interval")
	}
	if c.Fsync < FsyncAlways || c.Fsync > FsyncNever {
		return c, fmt.Errorf("ingest config: unknown fsync policy %d", int(c.Fsync))
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = 64 << 20
	}
	if c.FsyncInterval == 0 {
		c.FsyncInterval = 100 * time.Millisecond
	}
	if c.Retention == 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	if c.RetentionCheckInterval == 0 {
		c.RetentionCheckInterval = time.Minute
	}
	if c.DedupeWindow == 0 {
		c.DedupeWindow = 1_000_000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}
