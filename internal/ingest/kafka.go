package ingest

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

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
	// ErrNotAcknowledged is returned by [Kafka.Append] when the brokers
	// did not acknowledge every event before its ctx ended or
	// KafkaConfig.ProduceTimeout passed. The error also wraps the
	// context's error (context.DeadlineExceeded or context.Canceled).
	// Some of the events may still be stored: the producer keeps the
	// records it already sent and may deliver them later.
	ErrNotAcknowledged = errors.New("ingest: events not acknowledged by the kafka brokers")
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
	// acknowledge its records: past it Append returns
	// [ErrNotAcknowledged], and the producer fails a record it has not
	// sent yet. Zero means 10s.
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
	owned   map[int32]bool  // partitions assigned to this process
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
// the same ID waits for it. First and Last are the partition offsets of
// the first and last produced records: meaningful as a range only on a
// 1-partition topic.
//
// Append waits at most until ctx ends or KafkaConfig.ProduceTimeout
// passes, whichever comes first: then it returns an error wrapping
// [ErrNotAcknowledged] and the context's error. On any error the result
// is zero: no event is reported as accepted, though some may be stored
// (acknowledged before the error, or delivered later by the producer,
// which cannot withdraw a record it sent). The events are remembered in
// the dedupe window only once acknowledged, whenever that happens, and
// until each is settled an Append of the same ID waits for it: a retry
// appends again exactly the events that were not stored.
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
	ctx, cancel := context.WithTimeout(ctx, k.cfg.ProduceTimeout)
	defer cancel()
	keys := make([]idKey, len(evs))
	for i := range evs {
		keys[i] = k.idKey(evs[i].ID)
	}
	send, done, dups, err := k.claim(ctx, keys)
	if err != nil {
		return AppendResult{}, fmt.Errorf("append to kafka: an earlier append of the same events is unsettled: %w: %w", ErrNotAcknowledged, err)
	}
	k.m.duplicates.Add(float64(dups))
	if len(send) == 0 {
		return AppendResult{Duplicates: dups}, nil
	}
	now := k.cfg.Now()
	p := &produced{recs: make([]*kgo.Record, len(send)), settled: make(chan struct{})}
	p.left.Store(int64(len(send)))
	for j, i := range send {
		p.recs[j] = kafkaRecordOf(&evs[i], now)
	}
	for j, i := range send {
		key := keys[i]
		// Promises run one at a time on the client's goroutine: the
		// bookkeeping is short and never waits on the client.
		k.cl.Produce(ctx, p.recs[j], func(_ *kgo.Record, err error) {
			k.dmu.Lock()
			if err == nil {
				k.remember(key)
			}
			delete(k.inflight, key)
			k.dmu.Unlock()
			if err != nil {
				p.fail(err)
			}
			if p.left.Add(-1) == 0 {
				close(done) // Appends waiting in claim for these IDs go on
				close(p.settled)
			}
		})
	}
	select {
	case <-p.settled:
	case <-ctx.Done():
		return AppendResult{}, fmt.Errorf("append to kafka: %d of %d events unacknowledged: %w: %w",
			p.left.Load(), len(send), ErrNotAcknowledged, ctx.Err())
	}
	if err := p.firstErr(); err != nil {
		if errors.Is(err, kgo.ErrClientClosed) {
			err = errors.Join(ErrClosed, err)
		}
		return AppendResult{}, fmt.Errorf("append to kafka: %w", err)
	}
	k.m.appended.Add(float64(len(send)))
	return AppendResult{
		Appended:   len(send),
		Duplicates: dups,
		First:      uint64(p.recs[0].Offset),
		Last:       uint64(p.recs[len(p.recs)-1].Offset),
	}, nil
}

// produced tracks the records of one Append until the brokers settle
// each (acknowledge or fail it).
type produced struct {
	recs    []*kgo.Record
	left    atomic.Int64  // records not settled yet
	settled chan struct{} // closed when left reaches 0

	mu  sync.Mutex
	err error // the first record error
}

func (p *produced) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
}

func (p *produced) firstErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
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
