package ingest

// Kafka consumers: group membership, positions per partition, commits.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Consume runs the consumer group Group + "." + name on the topic and
// delivers its records to h, in offset order per partition, each Handle
// call holding records of one partition only (at most opt.MaxBatch), until
// ctx is done (nil) or the bus is closed (ErrClosed).
//
// from 0 starts each partition at the group's committed offset, or at its
// start; from n > 0 starts partition 0 at offset n exactly on a
// 1-partition topic. After a rebalance a partition resumes from this
// process's position or the committed offset, whichever is later.
//
// A Handle error is logged and the batch retried with backoff; rebalances
// wait for the batch in hand (BlockRebalanceOnPoll), so a revoked
// partition's offset is committed only after its records were handled.
// With opt.CommitOffsets each handled batch's end is marked for franz-go's
// autocommit (AutoCommitMarks), which commits the marks every
// opt.CommitInterval (100ms at least, franz-go's floor), on revoke and
// when Consume returns. Without it nothing is committed and the caller
// tracks its own position.
func (k *Kafka) Consume(ctx context.Context, name string, from uint64, h Handler, opt ConsumeOptions) error {
	if from > 0 && k.parts != 1 {
		return fmt.Errorf("consume %q from %d on %d partitions: %w", name, from, k.parts, ErrOffsetMapping)
	}
	var start map[int32]int64
	if from > 0 {
		start = map[int32]int64{0: int64(from)}
	}
	return k.ConsumeFrom(ctx, name, start, h, opt)
}

// PartitionHandler is implemented by a [Handler] that needs to know the
// partition of the records it is given, such as one that tracks its own
// position per partition. [Kafka.Consume] and [Kafka.ConsumeFrom] call
// HandlePartition instead of Handle when h implements it, with the same
// contract as Handle; every call holds records of one partition.
type PartitionHandler interface {
	HandlePartition(ctx context.Context, partition int32, recs []Record) error
}

// ConsumeFrom is [Kafka.Consume] with a start offset per partition: each
// partition in from starts exactly at its offset (an offset past the
// retained range resets to the partition's start), the others at the
// group's committed offset or their start. An empty from is Consume from 0.
// Callers that snapshot their state with per-partition offsets resume
// through it.
func (k *Kafka) ConsumeFrom(ctx context.Context, name string, from map[int32]int64, h Handler, opt ConsumeOptions) error {
	if err := checkName(name); err != nil {
		return err
	}
	opt = opt.withDefaults()
	c, err := k.acquire(name)
	if err != nil {
		return err
	}
	defer k.release(c)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(k.closeCtx, cancel)()
	log := k.logger.With(slog.String("consumer", name))
	group := k.cfg.Group + "." + name

	c.mu.Lock()
	c.pos, c.owned, c.exact = map[int32]int64{}, map[int32]bool{}, map[int32]bool{}
	c.waiting = time.Time{}
	c.mu.Unlock()
	if len(from) > 0 {
		c.mu.Lock()
		for p, o := range from {
			c.pos[p], c.exact[p] = o, true
		}
		c.mu.Unlock()
	} else {
		offs, err := k.fetchOffsets(ctx, group)
		if err != nil {
			return k.consumeErr(ctx, fmt.Errorf("consume %q: fetch committed offsets: %w", name, err))
		}
		c.mu.Lock()
		for p, o := range offs[k.cfg.Topic] {
			if o.Err == nil && o.At >= 0 {
				c.pos[p] = o.At
			}
		}
		c.mu.Unlock()
	}

	// commit commits the marked offsets: the end of every handled batch.
	commit := func(ctx context.Context, cl *kgo.Client) {
		if !opt.CommitOffsets {
			return
		}
		if err := cl.CommitMarkedOffsets(ctx); err != nil {
			log.LogAttrs(ctx, slog.LevelError, "kafka: commit consumer offsets", slog.Any("err", err))
		}
	}
	commitOpts := []kgo.Opt{kgo.DisableAutoCommit()}
	if opt.CommitOffsets {
		commitOpts = []kgo.Opt{
			kgo.AutoCommitMarks(),
			kgo.AutoCommitInterval(max(opt.CommitInterval, minAutoCommitInterval)),
			// franz-go's default commit callback logs failures.
		}
	}
	cl, err := kgo.NewClient(k.clientOpts(append(commitOpts,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(k.cfg.Topic),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AdjustFetchOffsetsFn(func(_ context.Context, offs map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
			c.assign(offs[k.cfg.Topic])
			return offs, nil
		}),
		// Replacing franz-go's default revoke, which commits the marks:
		// so does this one, before the partitions move to another member.
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
			commit(ctx, cl)
			c.drop(revoked[k.cfg.Topic])
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
			c.drop(lost[k.cfg.Topic])
		}),
	)...)...)
	if err != nil {
		return fmt.Errorf("consume %q: %w", name, err)
	}
	defer cl.Close()
	defer func() {
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer ccancel()
		commit(cctx, cl)
	}()

	ph, perPartition := h.(PartitionHandler)
	var batches []partitionBatch
	for {
		fetches := cl.PollRecords(ctx, opt.MaxBatch)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			cl.AllowRebalance()
			return k.consumeErr(ctx, nil)
		}
		fetches.EachError(func(_ string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				log.LogAttrs(ctx, slog.LevelError, "kafka: fetch", slog.Int("partition", int(p)), slog.Any("err", err))
			}
		})
		batches = batches[:0]
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) == 0 {
				return
			}
			i := len(batches)
			if i < cap(batches) {
				batches = batches[:i+1]
			} else {
				batches = append(batches, partitionBatch{})
			}
			b := &batches[i]
			b.partition, b.fetched, b.last, b.recs, b.ok = fp.Partition, fp.Records, fp.Records[len(fp.Records)-1], b.recs[:0], false
		})
		// A partition handler gets each partition's batch in a goroutine
		// of its own, which also decodes it, so that partitions decode on
		// every core and wait on I/O (a feature store's round trip) at
		// once; a plain handler gets them in turn.
		deliver := func(b *partitionBatch) {
			for _, r := range b.fetched {
				rec, err := recordOfKafka(r)
				if err != nil {
					k.m.corrupt.Inc()
					log.LogAttrs(ctx, slog.LevelError, "kafka: skipping undecodable record",
						slog.Int("partition", int(b.partition)), slog.Int64("offset", r.Offset), slog.Any("err", err))
					continue
				}
				b.recs = append(b.recs, rec)
			}
			b.fetched = nil
			if len(b.recs) == 0 {
				b.ok = true
				return
			}
			hh := h
			if perPartition {
				p := b.partition
				hh = HandlerFunc(func(ctx context.Context, recs []Record) error { return ph.HandlePartition(ctx, p, recs) })
			}
			b.ok = k.deliver(ctx, log, name, hh, b.recs, opt)
		}
		if first := oldestFetched(batches); !first.IsZero() {
			c.setWaiting(first)
		}
		if perPartition && len(batches) > 1 {
			var wg sync.WaitGroup
			for i := range batches {
				wg.Go(func() { deliver(&batches[i]) })
			}
			wg.Wait()
		} else {
			for i := range batches {
				if deliver(&batches[i]); !batches[i].ok {
					break
				}
			}
		}
		ok := true
		for i := range batches {
			b := &batches[i]
			if !b.ok {
				ok = false
				continue
			}
			c.advance(b.partition, b.last.Offset+1)
			cl.MarkCommitRecords(b.last) // a no-op without CommitOffsets
		}
		cl.AllowRebalance()
		if !ok {
			return k.consumeErr(ctx, nil)
		}
	}
}

// partitionBatch is one partition's records of a poll.
type partitionBatch struct {
	partition int32
	fetched   []*kgo.Record // as polled, until delivery decodes them
	recs      []Record
	last      *kgo.Record // the last fetched, decodable or not
	ok        bool        // delivered (false: ctx ended first)
}

// oldestFetched is the earliest append time (the broker's timestamp, as
// recordOfKafka reads it) of the batches' first fetched records, zero when
// they hold none.
func oldestFetched(bs []partitionBatch) time.Time {
	var t time.Time
	for i := range bs {
		if len(bs[i].fetched) > 0 && (t.IsZero() || bs[i].fetched[0].Timestamp.Before(t)) {
			t = bs[i].fetched[0].Timestamp
		}
	}
	return t
}

// minAutoCommitInterval is the shortest autocommit interval franz-go
// accepts.
const minAutoCommitInterval = 100 * time.Millisecond

// consumeErr returns err, or ErrClosed if the bus closed, or nil if ctx
// is done.
func (k *Kafka) consumeErr(ctx context.Context, err error) error {
	if k.closeCtx.Err() != nil {
		return ErrClosed
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// deliver calls h until it succeeds; false if ctx is done first.
func (k *Kafka) deliver(ctx context.Context, log *slog.Logger, name string, h Handler, recs []Record, opt ConsumeOptions) bool {
	return retryHandle(ctx, log, "kafka", k.m.handlerErrors.WithLabelValues(name), h, recs, opt, sleepCtx)
}

// sleepCtx waits d and reports false if ctx is done first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (k *Kafka) acquire(name string) (*kafkaConsumer, error) {
	k.cmu.Lock()
	defer k.cmu.Unlock()
	if k.closed {
		return nil, ErrClosed
	}
	c := k.consumers[name]
	if c == nil {
		c = &kafkaConsumer{}
		k.consumers[name] = c
	}
	if c.active {
		return nil, fmt.Errorf("consume %q: %w", name, ErrConsumerActive)
	}
	c.active = true
	k.wg.Add(1)
	return c, nil
}

func (k *Kafka) release(c *kafkaConsumer) {
	k.cmu.Lock()
	c.active = false
	k.cmu.Unlock()
	c.setWaiting(time.Time{}) // a stopped consumer is not handling anything
	k.wg.Done()
}

// assign sets the start offsets of newly assigned partitions: this
// process's position (exactly, the first time after an explicit from) or
// the committed offset, whichever is later.
func (c *kafkaConsumer) assign(offs map[int32]kgo.Offset) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, o := range offs {
		c.owned[p] = true
		committed := o.EpochOffset().Offset
		pos, known := c.pos[p]
		switch {
		case known && c.exact[p]:
			delete(c.exact, p)
		case known && pos >= committed:
		case committed >= 0:
			pos = committed
		default:
			continue // no position: the reset offset (start) applies
		}
		c.pos[p] = pos
		offs[p] = kgo.NewOffset().At(pos).WithEpoch(-1)
	}
}

// drop forgets the ownership of revoked or lost partitions.
func (c *kafkaConsumer) drop(ps []int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range ps {
		delete(c.owned, p)
	}
}

func (c *kafkaConsumer) advance(p int32, next int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pos[p] = next
	c.waiting = time.Time{}
}

func (c *kafkaConsumer) setWaiting(t time.Time) {
	c.mu.Lock()
	c.waiting = t
	c.mu.Unlock()
}
