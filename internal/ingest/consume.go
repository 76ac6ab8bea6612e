package ingest

import (
	"context"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// offsetsDir is the subdirectory of the log holding committed positions.
const offsetsDir = "offsets"

// consumer is the state of a named consumer.
type consumer struct {
	pos    atomic.Uint64
	active bool // guarded by Log.cmu
}

// Consume delivers the records from offset from onwards to h, in offset
// order and in batches of at most opt.MaxBatch, until ctx is done (it then
// returns nil) or the log is closed (ErrClosed). It blocks: the owner runs
// it in its own goroutine. When caught up it waits for new records without
// polling.
//
// A Handle error is logged and the same batch is delivered again after a
// backoff (MinBackoff doubling up to MaxBackoff); records are never skipped
// because of a Handle error. If from, or the position reached, is below the
// oldest retained offset (deleted by retention), Consume logs an error and
// continues from the oldest retained offset.
//
// name identifies the consumer for Position, Lag, the metrics and the
// committed offset file; only one Consume per name may run at a time.
func (l *Log) Consume(ctx context.Context, name string, from uint64, h Handler, opt ConsumeOptions) error {
	if err := checkName(name); err != nil {
		return err
	}
	opt = opt.withDefaults()
	c, err := l.acquire(name, from)
	if err != nil {
		return err
	}
	defer l.release(name)
	log := l.logger.With(slog.String("consumer", name))

	lastCommit := l.cfg.Now()
	dirty := false
	commit := func() {
		if err := l.commitOffset(name, c.pos.Load()); err != nil {
			log.LogAttrs(ctx, slog.LevelError, "event log: commit consumer offset", slog.Any("err", err))
			return
		}
		lastCommit = l.cfg.Now()
		dirty = false
	}
	if opt.CommitOffsets {
		defer func() {
			if dirty {
				commit()
			}
		}()
	}

	var recs []Record
	for {
		if ctx.Err() != nil {
			return nil
		}
		pos := c.pos.Load()
		l.mu.RLock()
		wait, next, closed := l.notify, l.next, l.closed
		l.mu.RUnlock()
		if closed {
			return ErrClosed
		}
		if pos >= next {
			var timer *time.Timer
			var commitC <-chan time.Time
			if opt.CommitOffsets && dirty {
				due := opt.CommitInterval - l.cfg.Now().Sub(lastCommit)
				if due <= 0 {
					commit()
				} else {
					timer = time.NewTimer(due)
					commitC = timer.C
				}
			}
			stop := false
			select {
			case <-ctx.Done():
				stop = true
			case <-l.closing:
				stop = true
			case <-wait:
			case <-commitC:
			}
			if timer != nil {
				timer.Stop()
			}
			if stop {
				return l.stopErr(ctx)
			}
			continue
		}
		recs, err = l.Read(pos, opt.MaxBatch, recs)
		if oor, ok := errors.AsType[*OutOfRangeError](err); ok {
			log.LogAttrs(ctx, slog.LevelError, "event log: consumer position below the oldest retained offset; skipping to it",
				slog.Uint64("position", pos), slog.Uint64("oldest", oor.Oldest), slog.Uint64("skipped", oor.Oldest-pos))
			c.pos.Store(oor.Oldest)
			dirty = true
			continue
		}
		if errors.Is(err, ErrClosed) {
			return ErrClosed
		}
		if err != nil {
			log.LogAttrs(ctx, slog.LevelError, "event log: read", slog.Uint64("position", pos), slog.Any("err", err))
			if !l.sleep(ctx, opt.MaxBackoff) {
				return l.stopErr(ctx)
			}
			continue
		}
		if len(recs) == 0 {
			// Nothing readable below next: offsets lost to corruption.
			c.pos.Store(next)
			dirty = true
			continue
		}
		if !l.deliver(ctx, log, name, h, recs, opt) {
			return l.stopErr(ctx)
		}
		c.pos.Store(recs[len(recs)-1].Offset + 1)
		dirty = true
		if opt.CommitOffsets && l.cfg.Now().Sub(lastCommit) >= opt.CommitInterval {
			commit()
		}
	}
}

// deliver calls h until it succeeds. It returns false if ctx is done or the
// log closed first.
func (l *Log) deliver(ctx context.Context, log *slog.Logger, name string, h Handler, recs []Record, opt ConsumeOptions) bool {
	return retryHandle(ctx, log, "event log", l.m.handlerErrors.WithLabelValues(name), h, recs, opt, l.sleep)
}

// retryHandle calls h with recs until it succeeds, backing off from
// opt.MinBackoff to opt.MaxBackoff and logging each failure; it never skips
// a batch. It returns false if ctx is done or sleep reports the bus closed.
// Both bus implementations deliver through it.
func retryHandle(ctx context.Context, log *slog.Logger, bus string, failures prometheus.Counter, h Handler, recs []Record, opt ConsumeOptions, sleep func(context.Context, time.Duration) bool) bool {
	backoff := opt.MinBackoff
	for attempt := 1; ; attempt++ {
		err := h.Handle(ctx, recs)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		failures.Inc()
		log.LogAttrs(ctx, slog.LevelError, bus+": consumer handler failed; retrying the batch",
			slog.Uint64("first_offset", recs[0].Offset), slog.Uint64("last_offset", recs[len(recs)-1].Offset),
			slog.Int("attempt", attempt), slog.Duration("backoff", backoff), slog.Any("err", err))
		if !sleep(ctx, backoff) {
			return false
		}
		backoff = min(2*backoff, opt.MaxBackoff)
	}
}

// sleep waits d and reports false if ctx is done or the log closed first.
func (l *Log) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-l.closing:
		return false
	}
}

func (l *Log) stopErr(ctx context.Context) error {
	if ctx.Err() != nil {
		return nil
	}
	return ErrClosed
}

func (l *Log) acquire(name string, from uint64) (*consumer, error) {
	l.cmu.Lock()
	defer l.cmu.Unlock()
	c := l.consumers[name]
	if c == nil {
		c = &consumer{}
		l.consumers[name] = c
	}
	if c.active {
		return nil, fmt.Errorf("consume %q: %w", name, ErrConsumerActive)
	}
	c.active = true
	c.pos.Store(from)
	return c, nil
}

func (l *Log) release(name string) {
	l.cmu.Lock()
	defer l.cmu.Unlock()
	l.consumers[name].active = false
}

func (l *Log) consumerNames() []string {
	l.cmu.Lock()
	defer l.cmu.Unlock()
	names := make([]string, 0, len(l.consumers))
	for n := range l.consumers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Position returns the next offset the named consumer will read: its
// current position if it has run on this Log since Open, else its committed
// offset, else 0.
func (l *Log) Position(name string) uint64 {
	l.cmu.Lock()
	c := l.consumers[name]
	l.cmu.Unlock()
	if c != nil {
		return c.pos.Load()
	}
	off, _, _ := l.Committed(name)
	return off
}

// Lag returns the number of records at or after the named consumer's
// position and the age (now − AppendTime) of the oldest of them; both are 0
// when the consumer is caught up.
func (l *Log) Lag(name string) (records uint64, age time.Duration) {
	pos := l.Position(name)
	l.mu.RLock()
	next, oldest := l.next, l.oldestLocked()
	l.mu.RUnlock()
	pos = max(pos, oldest)
	if pos >= next {
		return 0, 0
	}
	records = next - pos
	recs, err := l.Read(pos, 1, nil)
	if err == nil && len(recs) == 1 {
		age = max(l.cfg.Now().Sub(recs[0].AppendTime), 0)
	}
	return records, age
}

// Committed returns the offset committed by the named consumer (run with
// CommitOffsets) and whether there is one.
func (l *Log) Committed(name string) (uint64, bool, error) {
	if err := checkName(name); err != nil {
		return 0, false, err
	}
	b, err := os.ReadFile(filepath.Join(l.dir, offsetsDir, name))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read committed offset: %w", err)
	}
	off, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("parse committed offset of %q: %w", name, err)
	}
	return off, true, nil
}

// commitOffset atomically replaces the committed offset of name.
func (l *Log) commitOffset(name string, off uint64) error {
	dir := filepath.Join(l.dir, offsetsDir)
	f, err := os.CreateTemp(dir, name+".tmp*")
	if err != nil {
		return err
	}
	_, err = f.WriteString(strconv.FormatUint(off, 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return syncDir(dir)
}

// checkName validates a consumer name, which becomes a file name.
func checkName(name string) error {
	if name == "" || len(name) > 64 || name == "." || name == ".." {
		return fmt.Errorf("%w %q", ErrInvalidName, name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("%w %q", ErrInvalidName, name)
		}
	}
	return nil
}
