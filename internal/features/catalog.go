package features

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sightline/sightline/internal/event"
)

// The catalog stream: every [Redis.PutItem] appends the item to it, and
// every node's [Redis.Run] tails it to feed its OnItemChange functions.
const (
	// catalogStreamLen is the approximate MAXLEN of the stream: a tail
	// that falls further behind than that reloads the catalog instead.
	catalogStreamLen = 100_000
	// tailBlock is how long one XREAD waits for new entries. It bounds
	// how long Run takes to notice that its ctx is done.
	tailBlock = 500 * time.Millisecond
	// tailCount is the most entries one XREAD returns.
	tailCount = 512
	// tailMinBackoff and tailMaxBackoff bound the wait before Run retries
	// after a failure; the wait doubles with each consecutive failure.
	tailMinBackoff = 50 * time.Millisecond
	tailMaxBackoff = 2 * time.Second
	// tailWarnEvery is the least time between two WARN lines of a
	// failing tail.
	tailWarnEvery = 5 * time.Second
)

// putItemScript replaces the item hash KEYS[1] by the field/value pairs in
// ARGV[3..], increments the item counter KEYS[2] when the hash did not
// exist, and appends the item (field "id" = ARGV[2], then the same pairs)
// to the catalog stream KEYS[3], trimmed to about ARGV[1] entries. One
// script, so the write and its stream entry are atomic and the stream's
// order is the order of the writes: the last entry of an id is the item as
// stored.
var putItemScript = redis.NewScript(`
local existed = redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if existed == 0 then redis.call('INCR', KEYS[2]) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', 'id', ARGV[2], unpack(ARGV, 3))
return existed
`)

// catalogTail is the state [Redis.Run] keeps between calls, so a restarted
// tail resumes where the last one stopped.
type catalogTail struct {
	// mu serializes the OnItemChange functions and guards the fields
	// below it.
	mu        sync.Mutex
	callbacks []func(event.Item)
	// pos is the id of the last stream entry delivered, or the stream's
	// end when the position was captured; "" until then. seen is the
	// number of entries ever added to the stream up to and including pos
	// (the stream's entries-added when pos was its end).
	pos  string
	seen int64

	running atomic.Bool
}

// OnItemChange registers fn to be called with every item put into the
// catalog from now on, by this node or any other sharing the key prefix.
// [Redis.Run] makes the calls, as it reads the catalog stream: they are
// serialized, in the order of the writes, and on Run's goroutine; fn must
// be cheap, must not block, and may call any method of r except
// OnItemChange. An item put several times in quick succession may be seen
// once per put.
//
// The first call captures the end of the stream as Run's start position, in
// one round trip bounded by DialTimeout + ReadTimeout, so that a caller that
// registers fn and then loads the catalog with RangeItems misses no change
// made in between. If Redis does not answer, Run starts from the beginning
// of the stream instead (at most about 100,000 entries, delivered again).
func (r *Redis) OnItemChange(fn func(event.Item)) {
	t := &r.tail
	t.mu.Lock()
	defer t.mu.Unlock()
	t.callbacks = append(t.callbacks, fn)
	if t.pos != "" {
		return
	}
	// OnItemChange has no ctx of its own: registration happens at start-up,
	// and the wait is bounded.
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.DialTimeout+r.cfg.ReadTimeout)
	defer cancel()
	pos, seen, err := r.streamEnd(ctx)
	if err != nil {
		pos, seen = "0-0", 0
		r.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "catalog stream: cannot read its end; the tail will start from its beginning",
			slog.Any("err", r.fail(ctx, opTail, err)))
	}
	t.pos, t.seen = pos, seen
}

// Run tails the catalog stream and calls the functions registered with
// OnItemChange for every item put by any node, this one included, until
// ctx is done; then it returns nil. Changes reach the functions within
// milliseconds; Run notices that ctx is done within half a second.
//
// Run starts where the position captured by the first OnItemChange, or
// where the previous Run stopped; when no position was captured yet, from
// the stream's end. A failing Redis does not stop it: it retries with
// exponential backoff (up to 2s), logs at WARN at most every 5s, counts the
// failures in sightline_features_redis_errors_total{op="catalog_tail"} and
// resumes after the last entry it delivered. When the entries it has not
// read yet were trimmed from the stream (it fell about 100,000 puts
// behind), it calls the functions with every item of the catalog instead
// (RangeItems) and counts a resync.
//
// Only one Run may be active at a time: a second concurrent call returns an
// error at once.
func (r *Redis) Run(ctx context.Context) error {
	t := &r.tail
	if !t.running.CompareAndSwap(false, true) {
		return errors.New("redis catalog tail: already running")
	}
	defer t.running.Store(false)
	var (
		failures int // consecutive
		warned   time.Time
		backoff  time.Duration
		checkGap = true // at start, after a failure and after a full batch
	)
	for ctx.Err() == nil {
		full, err := r.tailOnce(ctx, checkGap)
		if err == nil {
			if failures > 0 {
				r.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "catalog stream tail resumed", slog.Int("failures", failures))
			}
			failures, backoff, checkGap = 0, 0, full
			continue
		}
		if ctx.Err() != nil {
			break
		}
		failures++
		checkGap = true
		backoff = min(max(2*backoff, tailMinBackoff), tailMaxBackoff)
		if now := time.Now(); now.Sub(warned) >= tailWarnEvery {
			warned = now
			r.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "catalog stream tail failed; retrying",
				slog.Any("err", err), slog.Int("failures", failures), slog.Duration("backoff", backoff))
		}
		wait := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-ctx.Done():
			wait.Stop()
		case <-wait.C:
		}
	}
	return nil
}

// tailOnce reads and delivers one batch of the stream, after checking for
// lost entries when checkGap is set. It reports whether the batch was full,
// so more entries may be waiting.
func (r *Redis) tailOnce(ctx context.Context, checkGap bool) (full bool, err error) {
	t := &r.tail
	t.mu.Lock()
	pos, seen := t.pos, t.seen
	t.mu.Unlock()
	if pos == "" {
		// Run before any OnItemChange: nothing to miss before now.
		end, added, err := r.streamEnd(ctx)
		if err != nil {
			return false, r.fail(ctx, opTail, err)
		}
		t.mu.Lock()
		if t.pos == "" {
			t.pos, t.seen = end, added
		}
		pos = t.pos
		t.mu.Unlock()
	} else if checkGap {
		lost, err := r.lostAfter(ctx, seen)
		if err != nil {
			return false, err
		}
		if lost {
			return false, r.resync(ctx)
		}
	}
	res, err := r.c.XRead(ctx, &redis.XReadArgs{Streams: []string{r.stream, pos}, Count: tailCount, Block: tailBlock}).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil // nothing new within tailBlock
	}
	if err != nil {
		return false, r.fail(ctx, opTail, err)
	}
	n := 0
	for _, s := range res {
		n += len(s.Messages)
		r.deliver(ctx, s.Messages)
	}
	return n >= tailCount, nil
}

// deliver calls the OnItemChange functions for each entry and moves the
// position past it. An entry that does not decode is counted, logged and
// skipped.
func (r *Redis) deliver(ctx context.Context, msgs []redis.XMessage) {
	t := &r.tail
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, msg := range msgs {
		t.pos = msg.ID
		t.seen++
		it, err := decodeEntry(msg.Values)
		if err != nil {
			r.met.errors.WithLabelValues(opTail, "corrupt").Inc()
			r.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "catalog stream: skipped an entry that does not decode",
				slog.String("entry_id", msg.ID), slog.Any("err", err))
			continue
		}
		r.met.changes.Inc()
		for _, fn := range t.callbacks {
			fn(it)
		}
	}
}

// decodeEntry decodes a catalog stream entry: the item's id, then the
// fields of its hash.
func decodeEntry(vals map[string]any) (event.Item, error) {
	h := make(map[string]string, len(vals))
	for k, v := range vals {
		s, ok := v.(string)
		if !ok {
			return event.Item{}, errors.New("redis catalog entry: value is not a string")
		}
		h[k] = s
	}
	id := h["id"]
	if id == "" {
		return event.Item{}, errors.New("redis catalog entry: no id")
	}
	return decodeItem(id, h)
}

// resync calls the OnItemChange functions with every catalog item, for a
// tail that lost entries, and moves the position to the stream's end as it
// was before the walk. The position moves only once the walk succeeded.
func (r *Redis) resync(ctx context.Context) error {
	end, added, err := r.streamEnd(ctx)
	if err != nil {
		return r.fail(ctx, opTail, err)
	}
	t := &r.tail
	items := 0
	err = r.RangeItems(ctx, func(it event.Item) bool {
		t.mu.Lock()
		defer t.mu.Unlock()
		for _, fn := range t.callbacks {
			fn(it)
		}
		items++
		return true
	})
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.pos, t.seen = end, added
	t.mu.Unlock()
	r.met.resyncs.Inc()
	r.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "catalog stream: entries not yet read were trimmed; reloaded the whole catalog",
		slog.Int("items", items))
	return nil
}

// streamEnd returns the id of the stream's last entry ever added and the
// number of entries ever added, read together; "0-0" and 0 when there is no
// stream.
func (r *Redis) streamEnd(ctx context.Context) (string, int64, error) {
	info, err := r.c.XInfoStream(ctx, r.stream).Result()
	if redis.HasErrorPrefix(err, "no such key") {
		return "0-0", 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	return info.LastGeneratedID, info.EntriesAdded, nil
}

// lostAfter reports whether entries the tail has not read may have been
// removed from the stream: the tail has seen the first seen entries ever
// added, and the stream is trimmed from its oldest end, so entries were
// lost when more than seen were removed. A stream with fewer entries ever
// added than seen was deleted and created again; its entries may be lost
// too. (Servers before Redis 7.0 do not report entries-added: there, no
// loss is ever detected.)
func (r *Redis) lostAfter(ctx context.Context, seen int64) (bool, error) {
	info, err := r.c.XInfoStream(ctx, r.stream).Result()
	if redis.HasErrorPrefix(err, "no such key") {
		return seen > 0, nil // the stream was deleted
	}
	if err != nil {
		return false, r.fail(ctx, opTail, err)
	}
	if info.EntriesAdded == 0 && info.Length > 0 {
		return false, nil // before Redis 7.0
	}
	removed := info.EntriesAdded - info.Length
	return removed > seen || info.EntriesAdded < seen, nil
}
