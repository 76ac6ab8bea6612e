package ingest

// Kafka consumers: group membership, positions per partition, commits.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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
// With opt.CommitOffsets the group offsets are committed at most every
// opt.CommitInterval, on revoke and when Consume returns; without it
// nothing is committed and the caller tracks its own position.
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
	defer k.release(name, c)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(k.closeCtx, cancel)()
	log := k.logger.With(slog.String("consumer", name))
	group := k.cfg.Group + "." + name

	c.mu.Lock()
	c.pos, c.epoch, c.owned, c.dirty, c.exact = map[int32]int64{}, map[int32]int32{}, map[int32]bool{}, map[int32]bool{}, map[int32]bool{}
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

	commit := func(ctx context.Context, cl *kgo.Client, only map[string][]int32) {
		if !opt.CommitOffsets {
			return
		}
		if err := c.commit(ctx, cl, k.cfg.Topic, only); err != nil {
			log.LogAttrs(ctx, slog.LevelError, "kafka: commit consumer offsets", slog.Any("err", err))
		}
	}
	cl, err := kgo.NewClient(k.clientOpts(
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(k.cfg.Topic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AdjustFetchOffsetsFn(func(_ context.Context, offs map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
			c.assign(offs[k.cfg.Topic])
			return offs, nil
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
			commit(ctx, cl, revoked)
			c.drop(revoked[k.cfg.Topic])
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
			c.drop(lost[k.cfg.Topic])
		}),
	)...)
	if err != nil {
		return fmt.Errorf("consume %q: %w", name, err)
	}
	defer cl.Close()
	defer func() {
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer ccancel()
		commit(cctx, cl, nil)
	}()

	lastCommit := k.cfg.Now()
	var recs []Record
	for {
		pctx, pcancel := ctx, context.CancelFunc(func() {})
		if opt.CommitOffsets && c.isDirty() {
			pctx, pcancel = context.WithTimeout(ctx, max(opt.CommitInterval-k.cfg.Now().Sub(lastCommit), time.Millisecond))
		}
		fetches := cl.PollRecords(pctx, opt.MaxBatch)
		pcancel()
		if fetches.IsClientClosed() || ctx.Err() != nil {
			cl.AllowRebalance()
			return k.consumeErr(ctx, nil)
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				log.LogAttrs(ctx, slog.LevelError, "kafka: fetch", slog.Int("partition", int(p)), slog.Any("err", err))
			}
		})
		ok := true
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if !ok || len(fp.Records) == 0 {
				return
			}
			recs = recs[:0]
			for _, r := range fp.Records {
				rec, err := recordOfKafka(r)
				if err != nil {
					k.m.corrupt.Inc()
					log.LogAttrs(ctx, slog.LevelError, "kafka: skipping undecodable record",
						slog.Int("partition", int(fp.Partition)), slog.Int64("offset", r.Offset), slog.Any("err", err))
					continue
				}
				recs = append(recs, rec)
			}
			if len(recs) > 0 {
				c.setWaiting(recs[0].AppendTime)
				ph := h
				if p, ok := h.(PartitionHandler); ok {
					ph = HandlerFunc(func(ctx context.Context, recs []Record) error { return p.HandlePartition(ctx, fp.Partition, recs) })
				}
				if !k.deliver(ctx, log, name, ph, recs, opt) {
					ok = false
					return
				}
			}
			last := fp.Records[len(fp.Records)-1]
			c.advance(fp.Partition, last.Offset+1, last.LeaderEpoch)
		})
		cl.AllowRebalance()
		if !ok {
			return k.consumeErr(ctx, nil)
		}
		if opt.CommitOffsets && c.isDirty() && k.cfg.Now().Sub(lastCommit) >= opt.CommitInterval {
			commit(ctx, cl, nil)
			lastCommit = k.cfg.Now()
		}
	}
}

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

func (k *Kafka) release(name string, c *kafkaConsumer) {
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
		delete(c.dirty, p)
	}
}

func (c *kafkaConsumer) advance(p int32, next int64, epoch int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pos[p], c.epoch[p], c.dirty[p] = next, epoch, true
	c.waiting = time.Time{}
}

func (c *kafkaConsumer) setWaiting(t time.Time) {
	c.mu.Lock()
	c.waiting = t
	c.mu.Unlock()
}

func (c *kafkaConsumer) isDirty() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.dirty) > 0
}

// commit synchronously commits the handled positions of the owned dirty
// partitions (of only, when not nil).
func (c *kafkaConsumer) commit(ctx context.Context, cl *kgo.Client, topic string, only map[string][]int32) error {
	c.mu.Lock()
	offs := make(map[int32]kgo.EpochOffset)
	add := func(p int32) {
		if c.dirty[p] && c.owned[p] {
			offs[p] = kgo.EpochOffset{Epoch: c.epoch[p], Offset: c.pos[p]}
		}
	}
	if only != nil {
		for _, p := range only[topic] {
			add(p)
		}
	} else {
		for p := range c.dirty {
			add(p)
		}
	}
	c.mu.Unlock()
	if len(offs) == 0 {
		return nil
	}
	var cerr error
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{topic: offs}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && cerr == nil {
					cerr = err
				}
			}
		}
	})
	if cerr != nil {
		return cerr
	}
	c.mu.Lock()
	for p, o := range offs {
		if c.pos[p] == o.Offset {
			delete(c.dirty, p)
		}
	}
	c.mu.Unlock()
	return nil
}
