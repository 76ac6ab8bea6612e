package ingest

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sightline/sightline/internal/event"
)

// Errors returned by the Kafka bus.
var (
	// ErrOffsetMapping is returned by [Kafka.Consume] for a start offset
	// other than 0 on a topic with more than one partition: one uint64
	// cannot name a position in several partitions.
	ErrOffsetMapping = errors.New("ingest: explicit start offset needs a single-partition topic")
	// ErrNoBrokers is returned by [OpenKafka] when KafkaConfig.Brokers is
	// empty.
	ErrNoBrokers = errors.New("ingest: no kafka brokers configured")
)

// Kafka record header keys carrying the W3C trace context of an event.
const (
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// KafkaConfig configures a [Kafka] bus. The zero value of every field but
// Brokers means its default.
type KafkaConfig struct {
	// Brokers are the seed brokers, as host:port. Required.
	Brokers []string
	// Topic is the event topic. Empty means "sightline-events".
	Topic string
	// Partitions is the partition count used when OpenKafka creates a
	// missing topic. Zero means 6. An existing topic keeps its count. Use 1
	// for exact single-offset-space semantics (see [Kafka]).
	Partitions int32
	// ReplicationFactor is used when OpenKafka creates a missing topic.
	// Zero means the broker default.
	ReplicationFactor int16
	// Group prefixes the consumer group of every consumer name: the group
	// of name n is Group + "." + n. Empty means "sightline". Nodes that each
	// keep a full copy of the state (every Sightline API node does) need a
	// Group of their own, such as "sightline-<node id>"; consumers sharing a
	// Group split the partitions between them.
	Group string
	// DedupeWindow is the number of most recently appended event IDs this
	// process remembers; Append skips an event whose ID is among them. Zero
	// means 1,000,000; negative disables deduplication across appends.
	DedupeWindow int
	// ProduceTimeout bounds how long Append waits for the brokers to
	// acknowledge a record before failing it. Zero means 10s.
	ProduceTimeout time.Duration
	// Logger receives consumer errors and franz-go warnings. Nil means no
	// logging.
	Logger *slog.Logger
	// Registerer registers the bus metrics (the same names as the embedded
	// log). Nil means they are not registered.
	Registerer prometheus.Registerer
	// Now is the clock for record timestamps and lag. Nil means time.Now.
	Now func() time.Time
}

func (c KafkaConfig) withDefaults() (KafkaConfig, error) {
	if len(c.Brokers) == 0 {
		return c, ErrNoBrokers
	}
	if c.Partitions < 0 || c.ProduceTimeout < 0 {
		return c, errors.New("ingest kafka config: negative Partitions or ProduceTimeout")
	}
	if c.Topic == "" {
		c.Topic = "sightline-events"
	}
	if c.Partitions == 0 {
		c.Partitions = 6
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = -1
	}
	if c.Group == "" {
		c.Group = "sightline"
	}
	if c.DedupeWindow == 0 {
		c.DedupeWindow = 1_000_000
	}
	if c.ProduceTimeout == 0 {
		c.ProduceTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// Kafka is the [Bus] on a Kafka topic (franz-go client).
//
// Append produces each event with the user ID as key, so one user's events
// stay in one partition and in order, the [AppendRecord] encoding as value
// and the trace context in the traceparent/tracestate headers; acks=all
// with the idempotent producer, and Append returns once every record is
// acknowledged.
//
// Idempotency on event ID holds within a window of recent IDs kept by this
// process only: Kafka has no dedupe by key, so after a restart, or across
// producer processes, a retried event is appended again, and consumers
// must apply idempotently.
//
// Offsets: every consumer name is a consumer group (Group + "." + name).
// A [Record]'s Offset is its offset in its partition. Position and Lag sum
// over the partitions, so for a 1-partition topic they are exact offsets
// and for more partitions Position is comparable only with [Kafka.Next]
// (the sum of end offsets), which is what progress checks need. Consume
// from 0 resumes from the group's committed offsets, or the start of each
// partition; Consume from n > 0 starts partition 0 at n and needs a
// 1-partition topic ([ErrOffsetMapping] otherwise); [Kafka.ConsumeFrom]
// takes a start offset per partition.
type Kafka struct {
	cfg    KafkaConfig
	logger *slog.Logger
	m      *metrics
	cl     *kgo.Client
	adm    *kadm.Client
	parts  int32 // partition count found or created at open

	closeCtx  context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
	wg        sync.WaitGroup // running Consume calls

	dmu      sync.Mutex // guards the dedupe window
	seeds    [2]maphash.Seed
	ids      map[idKey]struct{}
	ring     []idKey
	ringPos  int
	inflight map[idKey]chan struct{}

	cmu       sync.Mutex // guards consumers and closed
	consumers map[string]*kafkaConsumer
	closed    bool

	emu     sync.Mutex // guards the end offsets cache
	ends    map[int32]int64
	endsAt  time.Time
	endsErr error
}

// idKey is a 128-bit hash of an event ID: collisions are negligible, so the
// window need not keep the IDs themselves.
type idKey [2]uint64

// kafkaConsumer is the in-process state of a consumer name.
type kafkaConsumer struct {
	mu      sync.Mutex
	active  bool
	pos     map[int32]int64 // next offset per partition
	epoch   map[int32]int32 // leader epoch of the last handled record
	owned   map[int32]bool  // partitions assigned to this process
	dirty   map[int32]bool  // handled but not committed
	exact   map[int32]bool  // start at pos exactly on the first assignment
	waiting time.Time       // AppendTime of the oldest record being handled
}

// OpenKafka connects to cfg.Brokers and creates the topic with
// cfg.Partitions partitions if it does not exist.
func OpenKafka(ctx context.Context, cfg KafkaConfig) (*Kafka, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	k := &Kafka{
		cfg:       cfg,
		logger:    cfg.Logger,
		m:         newMetrics(),
		seeds:     [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		ids:       make(map[idKey]struct{}),
		inflight:  make(map[idKey]chan struct{}),
		consumers: make(map[string]*kafkaConsumer),
	}
	k.cl, err = kgo.NewClient(k.clientOpts(
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(cfg.ProduceTimeout),
		kgo.ProducerLinger(0),
	)...)
	if err != nil {
		return nil, fmt.Errorf("open kafka: %w", err)
	}
	k.adm = kadm.NewClient(k.cl)
	if k.parts, err = k.ensureTopic(ctx); err != nil {
		k.cl.Close()
		return nil, fmt.Errorf("open kafka topic %q: %w", cfg.Topic, err)
	}
	if err := k.register(cfg.Registerer); err != nil {
		k.cl.Close()
		return nil, fmt.Errorf("open kafka: register metrics: %w", err)
	}
	k.closeCtx, k.cancel = context.WithCancel(context.Background())
	return k, nil
}

func (k *Kafka) clientOpts(extra ...kgo.Opt) []kgo.Opt {
	return append([]kgo.Opt{kgo.SeedBrokers(k.cfg.Brokers...), kgo.WithLogger(kgoLogger{k.logger})}, extra...)
}

// ensureTopic returns the partition count of the topic, creating it if
// missing.
func (k *Kafka) ensureTopic(ctx context.Context) (int32, error) {
	tds, err := k.adm.ListTopics(ctx, k.cfg.Topic)
	if err != nil {
		return 0, err
	}
	if td, ok := tds[k.cfg.Topic]; ok && td.Err == nil {
		return int32(len(td.Partitions)), nil
	} else if ok && !errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
		return 0, td.Err
	}
	resp, err := k.adm.CreateTopic(ctx, k.cfg.Partitions, k.cfg.ReplicationFactor, nil, k.cfg.Topic)
	if err == nil {
		err = resp.Err
	}
	if errors.Is(err, kerr.TopicAlreadyExists) {
		return k.ensureTopicExisting(ctx)
	}
	if err != nil {
		return 0, err
	}
	return k.cfg.Partitions, nil
}

func (k *Kafka) ensureTopicExisting(ctx context.Context) (int32, error) {
	tds, err := k.adm.ListTopics(ctx, k.cfg.Topic)
	if err != nil {
		return 0, err
	}
	td := tds[k.cfg.Topic]
	return int32(len(td.Partitions)), td.Err
}

// Partitions returns the partition count of the topic as found or created
// by OpenKafka.
func (k *Kafka) Partitions() int32 { return k.parts }

// Append produces evs and returns once all are acknowledged by the brokers
// (acks=all), skipping events whose ID is in this process's dedupe window
// or repeats an earlier event of evs. An Append racing another Append of
// the same ID waits for it. On error the result is zero and the failed
// events are not remembered, so a retry appends them (records that did
// succeed are remembered and skipped on retry). First and Last are the
// partition offsets of the first and last produced records: meaningful as
// a range only on a 1-partition topic.
func (k *Kafka) Append(ctx context.Context, evs []event.Event) (AppendResult, error) {
	if k.closeCtx.Err() != nil {
		return AppendResult{}, ErrClosed
	}
	if len(evs) == 0 {
		return AppendResult{}, nil
	}
	for i := range evs {
		if encodedSizeBound(&evs[i]) > MaxRecordBytes {
			return AppendResult{}, fmt.Errorf("append event %d of %d: %w", i, len(evs), ErrRecordTooLarge)
		}
	}
	keys := make([]idKey, len(evs))
	for i := range evs {
		keys[i] = k.idKey(evs[i].ID)
	}
	send, done, dups, err := k.claim(ctx, keys)
	if err != nil {
		return AppendResult{}, err
	}
	k.m.duplicates.Add(float64(dups))
	if len(send) == 0 {
		return AppendResult{Duplicates: dups}, nil
	}
	now := k.cfg.Now()
	recs := make([]*kgo.Record, len(send))
	for j, i := range send {
		recs[j] = kafkaRecordOf(&evs[i], now)
	}
	results := k.cl.ProduceSync(ctx, recs...)
	k.dmu.Lock()
	for j, i := range send {
		if results[j].Err == nil {
			k.remember(keys[i])
		}
		delete(k.inflight, keys[i])
	}
	k.dmu.Unlock()
	close(done)
	if err := results.FirstErr(); err != nil {
		if errors.Is(err, kgo.ErrClientClosed) {
			err = errors.Join(ErrClosed, err)
		}
		return AppendResult{}, fmt.Errorf("append to kafka: %w", err)
	}
	k.m.appended.Add(float64(len(send)))
	return AppendResult{
		Appended:   len(send),
		Duplicates: dups,
		First:      uint64(results[0].Record.Offset),
		Last:       uint64(results[len(results)-1].Record.Offset),
	}, nil
}

// claim marks the IDs of keys that are neither in the window nor earlier
// in keys as in flight and returns their indexes, the channel to close
// when they are settled, and the number of duplicates. It waits for
// in-flight appends of the same IDs.
func (k *Kafka) claim(ctx context.Context, keys []idKey) ([]int, chan struct{}, int, error) {
	for {
		k.dmu.Lock()
		var wait chan struct{}
		for _, key := range keys {
			if ch, ok := k.inflight[key]; ok {
				wait = ch
				break
			}
		}
		if wait != nil {
			k.dmu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, nil, 0, ctx.Err()
			}
		}
		done := make(chan struct{})
		send := make([]int, 0, len(keys))
		dups := 0
		for i, key := range keys {
			if _, ok := k.ids[key]; ok {
				dups++
				continue
			}
			if _, ok := k.inflight[key]; ok { // earlier in this batch
				dups++
				continue
			}
			k.inflight[key] = done
			send = append(send, i)
		}
		k.dmu.Unlock()
		return send, done, dups, nil
	}
}

func (k *Kafka) idKey(id string) idKey {
	return idKey{maphash.String(k.seeds[0], id), maphash.String(k.seeds[1], id)}
}

// remember adds a key to the dedupe window. k.dmu must be held.
func (k *Kafka) remember(key idKey) {
	if k.cfg.DedupeWindow <= 0 {
		return
	}
	if len(k.ring) < k.cfg.DedupeWindow {
		k.ring = append(k.ring, key)
		k.ids[key] = struct{}{}
		return
	}
	delete(k.ids, k.ring[k.ringPos])
	k.ring[k.ringPos] = key
	k.ids[key] = struct{}{}
	k.ringPos = (k.ringPos + 1) % k.cfg.DedupeWindow
}

// kafkaRecordOf returns the Kafka record of ev.
func kafkaRecordOf(ev *event.Event, now time.Time) *kgo.Record {
	r := &kgo.Record{
		Key:       []byte(ev.UserID),
		Value:     AppendRecord(nil, ev),
		Timestamp: now,
	}
	if ev.TraceParent != "" {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderTraceParent, Value: []byte(ev.TraceParent)})
	}
	if ev.TraceState != "" {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderTraceState, Value: []byte(ev.TraceState)})
	}
	return r
}

// recordOfKafka decodes a consumed Kafka record. The trace context headers
// fill in an event whose encoding lacks it (a producer other than Append).
func recordOfKafka(r *kgo.Record) (Record, error) {
	ev, err := DecodeRecord(r.Value)
	if err != nil {
		return Record{}, err
	}
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderTraceParent:
			if ev.TraceParent == "" {
				ev.TraceParent = string(h.Value)
			}
		case HeaderTraceState:
			if ev.TraceState == "" {
				ev.TraceState = string(h.Value)
			}
		}
	}
	return Record{Offset: uint64(r.Offset), AppendTime: r.Timestamp, Event: ev}, nil
}

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

// Position returns the sum over partitions of the next offset the named
// consumer will read: this process's positions while it runs or ran here,
// else the group's committed offsets (0 on error). On a 1-partition topic
// it is the exact next offset.
func (k *Kafka) Position(name string) uint64 {
	if pos, ok := k.localPositions(name); ok {
		var sum uint64
		for _, o := range pos {
			sum += uint64(o)
		}
		return sum
	}
	off, _, _ := k.Committed(context.Background(), name)
	return off
}

func (k *Kafka) localPositions(name string) (map[int32]int64, bool) {
	k.cmu.Lock()
	c := k.consumers[name]
	k.cmu.Unlock()
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pos == nil {
		return nil, false
	}
	return maps.Clone(c.pos), true
}

// localOwned returns the partitions assigned to the named consumer in
// this process.
func (k *Kafka) localOwned(name string) []int32 {
	k.cmu.Lock()
	c := k.consumers[name]
	k.cmu.Unlock()
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var ps []int32
	for p := range c.owned {
		ps = append(ps, p)
	}
	return ps
}

// Committed returns the sum of the named consumer group's committed
// offsets and whether it has any.
func (k *Kafka) Committed(ctx context.Context, name string) (uint64, bool, error) {
	if err := checkName(name); err != nil {
		return 0, false, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	offs, err := k.fetchOffsets(ctx, k.cfg.Group+"."+name)
	if err != nil {
		return 0, false, fmt.Errorf("fetch committed offsets: %w", err)
	}
	var sum uint64
	found := false
	for _, o := range offs[k.cfg.Topic] {
		if o.Err == nil && o.At >= 0 {
			sum += uint64(o.At)
			found = true
		}
	}
	return sum, found, nil
}

// fetchOffsets returns the committed offsets of group; a group that does
// not exist has none.
func (k *Kafka) fetchOffsets(ctx context.Context, group string) (kadm.OffsetResponses, error) {
	offs, err := k.adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil, nil
	}
	return offs, err
}

// Next returns the sum over partitions of the end offsets (the offset the
// next record will get, on a 1-partition topic).
func (k *Kafka) Next(ctx context.Context) (uint64, error) {
	ends, err := k.endOffsets(ctx, 0)
	if err != nil {
		return 0, err
	}
	var sum uint64
	for _, o := range ends {
		sum += uint64(o)
	}
	return sum, nil
}

// EndOffsets returns the end offset of every partition: the offset the
// next record appended to it will get.
func (k *Kafka) EndOffsets(ctx context.Context) (map[int32]int64, error) {
	ends, err := k.endOffsets(ctx, 0)
	return maps.Clone(ends), err
}

// endOffsets returns the end offset of every partition, cached for maxAge.
func (k *Kafka) endOffsets(ctx context.Context, maxAge time.Duration) (map[int32]int64, error) {
	k.emu.Lock()
	defer k.emu.Unlock()
	if k.ends != nil && k.cfg.Now().Sub(k.endsAt) < maxAge {
		return k.ends, k.endsErr
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	lo, err := k.adm.ListEndOffsets(ctx, k.cfg.Topic)
	if err == nil {
		err = lo.Error()
	}
	ends := make(map[int32]int64)
	for p, o := range lo[k.cfg.Topic] {
		if o.Err == nil && o.Offset >= 0 {
			ends[p] = o.Offset
		}
	}
	k.ends, k.endsAt, k.endsErr = ends, k.cfg.Now(), err
	return ends, err
}

// Lag returns how many records the named consumer has not processed (end
// offsets, cached for 500ms, minus its positions) and, while it runs in
// this process, the age of the oldest record it is handling (0 otherwise:
// the age of records not yet fetched is unknown).
func (k *Kafka) Lag(name string) (records uint64, age time.Duration) {
	ends, err := k.endOffsets(context.Background(), 500*time.Millisecond)
	if err != nil && len(ends) == 0 {
		return 0, 0
	}
	pos, local := k.localPositions(name)
	if !local {
		pos = make(map[int32]int64)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		offs, err := k.fetchOffsets(ctx, k.cfg.Group+"."+name)
		cancel()
		if err != nil {
			return 0, 0
		}
		for p, o := range offs[k.cfg.Topic] {
			if o.Err == nil {
				pos[p] = o.At
			}
		}
	}
	for p, end := range ends {
		if d := end - max(pos[p], 0); d > 0 {
			records += uint64(d)
		}
	}
	if records > 0 && local {
		k.cmu.Lock()
		c := k.consumers[name]
		k.cmu.Unlock()
		c.mu.Lock()
		if !c.waiting.IsZero() {
			age = max(k.cfg.Now().Sub(c.waiting), 0)
		}
		c.mu.Unlock()
	}
	return records, age
}

// Close stops running Consume calls (they commit and return ErrClosed),
// waits for them, and closes the producer. Appends after Close return
// ErrClosed.
func (k *Kafka) Close() error {
	k.closeOnce.Do(func() {
		k.cmu.Lock()
		k.closed = true
		k.cmu.Unlock()
		k.cancel()
		k.wg.Wait()
		k.cl.Close()
	})
	return nil
}

// activeConsumers names the consumers running in this process now: a
// consumer that stopped (a trainer that stepped down to standby) reports no
// lag, which would only grow.
func (k *Kafka) activeConsumers() []string {
	k.cmu.Lock()
	defer k.cmu.Unlock()
	names := make([]string, 0, len(k.consumers))
	for n, c := range k.consumers {
		if c.active {
			names = append(names, n)
		}
	}
	return names
}

func (k *Kafka) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	cs := []prometheus.Collector{k.m.appended, k.m.duplicates, k.m.corrupt, k.m.handlerErrors, kafkaLagCollector{k}}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return err
		}
	}
	return nil
}

// kafkaLagCollector reports queue depth and lag of the consumers that ran
// in this process, under the embedded log's metric names.
type kafkaLagCollector struct{ k *Kafka }

func (c kafkaLagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- lagSecondsDesc
}

func (c kafkaLagCollector) Collect(ch chan<- prometheus.Metric) {
	for _, name := range c.k.activeConsumers() {
		n, age := c.k.Lag(name)
		ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(n), name)
		ch <- prometheus.MustNewConstMetric(lagSecondsDesc, prometheus.GaugeValue, age.Seconds(), name)
	}
}

// kgoLogger forwards franz-go warnings and errors to slog.
type kgoLogger struct{ l *slog.Logger }

func (g kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (g kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lvl := slog.LevelWarn
	if level == kgo.LogLevelError {
		lvl = slog.LevelError
	}
	g.l.Log(context.Background(), lvl, "kafka client: "+msg, keyvals...)
}
