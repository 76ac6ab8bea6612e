package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/ingest"
)

// offsets are consumer positions by partition.
type offsets = ingest.Offsets

// partitionHandler is what the node's consumers implement: Handle of
// ingest.Handler with the partition of the records. The bus calls it from
// one goroutine per consumer; a returned error makes the bus deliver the
// same batch again.
type partitionHandler = ingest.PartitionHandler

// eventBus is what the node needs of its event bus: the embedded log
// ([ingest.Log]) or Kafka ([ingest.Kafka]). All methods are safe for
// concurrent use.
type eventBus interface {
	// Append makes evs durable (acknowledged by the brokers, for Kafka)
	// and returns once they are. The publisher calls it per POST
	// /v1/events; it blocks.
	Append(ctx context.Context, evs []event.Event) (ingest.AppendResult, error)
	// Position is the named consumer's progress, comparable with Next.
	Position(name string) uint64
	// Lag is how many records the named consumer has not processed and
	// how long the oldest of them has waited.
	Lag(name string) (records uint64, age time.Duration)
	// Next is the Position a consumer has once it has processed every
	// record appended so far. It may make a round trip.
	Next(ctx context.Context) (uint64, error)
	// Consume runs the named consumer from the positions in from (nil:
	// where the bus resumes it, see start) until ctx is done or the bus
	// closes. With commit the bus keeps the consumer's position itself
	// (the embedded log in a file, Kafka as group offsets). It blocks.
	Consume(ctx context.Context, name string, from offsets, h partitionHandler, commit bool) error
	// Start returns the positions a consumer without a snapshot starts
	// at: from its committed position when committed is set and it has
	// one, else the oldest retained record.
	Start(ctx context.Context, name string, committed bool) (offsets, error)
	// Recent returns positions about n records before the end, for
	// consumers whose state needs only recent history; End the end.
	Recent(ctx context.Context, n uint64) (offsets, error)
	// Run does the bus's background work until ctx is done.
	Run(ctx context.Context) error
	// ID names the bus and topic, so a snapshot's offsets are used only
	// with the bus they were taken on.
	ID() string
	// Close releases the bus; running Consume calls return.
	Close() error
}

// Bus kinds, the values of Config.Bus.
const (
	BusEmbedded = "embedded"
	BusKafka    = "kafka"
)

// embeddedBus is the embedded durable log.
type embeddedBus struct{ *ingest.Log }

var _ eventBus = embeddedBus{}

func (b embeddedBus) Next(context.Context) (uint64, error) { return b.Log.Next(), nil }

func (b embeddedBus) Consume(ctx context.Context, name string, from offsets, h partitionHandler, commit bool) error {
	fn := ingest.HandlerFunc(func(ctx context.Context, recs []ingest.Record) error { return h.HandlePartition(ctx, 0, recs) })
	return b.Log.Consume(ctx, name, from[0], fn, ingest.ConsumeOptions{CommitOffsets: commit, MaxBatch: 1024})
}

func (b embeddedBus) Start(_ context.Context, name string, committed bool) (offsets, error) {
	if committed {
		off, ok, err := b.Committed(name)
		if err != nil {
			return nil, err
		}
		if ok {
			return offsets{0: off}, nil
		}
	}
	return offsets{0: b.Oldest()}, nil
}

func (b embeddedBus) Recent(_ context.Context, n uint64) (offsets, error) {
	next, from := b.Log.Next(), b.Oldest()
	if next > from+n {
		from = next - n
	}
	return offsets{0: from}, nil
}

func (b embeddedBus) ID() string { return BusEmbedded }

// kafkaBus is a Kafka topic. Each consumer name is its own consumer group
// (see [ingest.KafkaConfig].Group); records are applied per partition.
type kafkaBus struct {
	*ingest.Kafka
	topic string
}

var _ eventBus = kafkaBus{}

func (b kafkaBus) Consume(ctx context.Context, name string, from offsets, h partitionHandler, commit bool) error {
	start := make(map[int32]int64, len(from))
	for p, o := range from {
		start[p] = int64(o)
	}
	// Larger batches than the embedded log's: each is one partition's
	// share of a poll, and the event path reads Redis once per batch.
	return b.ConsumeFrom(ctx, name, start, kafkaHandler{h}, ingest.ConsumeOptions{CommitOffsets: commit, MaxBatch: 8192})
}

// Start is nil, which ConsumeFrom resumes from the group's committed
// offsets or each partition's start; a consumer that does not commit has
// none, so it starts at the start.
func (b kafkaBus) Start(context.Context, string, bool) (offsets, error) { return nil, nil }

func (b kafkaBus) Recent(ctx context.Context, n uint64) (offsets, error) {
	ends, err := b.EndOffsets(ctx)
	if err != nil {
		return nil, err
	}
	per := int64(n) / max(int64(len(ends)), 1)
	out := make(offsets, len(ends))
	for p, end := range ends {
		out[p] = uint64(max(end-per, 0)) // below the retained start: reset to it
	}
	return out, nil
}

func (b kafkaBus) Run(context.Context) error { return nil }

func (b kafkaBus) ID() string { return BusKafka + ":" + b.topic }

// kafkaHandler hands Kafka's batches, one partition each, to a
// partitionHandler.
type kafkaHandler struct{ h partitionHandler }

var _ ingest.PartitionHandler = kafkaHandler{}

func (k kafkaHandler) Handle(ctx context.Context, recs []ingest.Record) error {
	return errors.New("kafka delivered records without their partition")
}

func (k kafkaHandler) HandlePartition(ctx context.Context, p int32, recs []ingest.Record) error {
	return k.h.HandlePartition(ctx, p, recs)
}

// busOffsets are the positions a snapshot includes, saved with it (in the
// model snapshot's extra data and beside the feature snapshot).
type busOffsets struct {
	// Bus is the eventBus.ID the offsets belong to.
	Bus string `json:"bus"`
	// Offsets are the next offsets to apply, by partition.
	Offsets offsets `json:"offsets"`
}

// busOffsetsKey is the model snapshot's extra-data key of its busOffsets.
const busOffsetsKey = "bus_offsets"

// restoredOffsets returns the offsets of a snapshot for bus b: the saved
// ones when they belong to b; the embedded log's single offset legacy for
// snapshots that predate busOffsets; ok false when the snapshot was taken
// on another bus.
func restoredOffsets(b eventBus, raw []byte, legacy uint64) (offsets, bool) {
	var bo busOffsets
	if raw == nil || json.Unmarshal(raw, &bo) != nil {
		return offsets{0: legacy}, b.ID() == BusEmbedded
	}
	if bo.Bus != b.ID() {
		return nil, false
	}
	if bo.Offsets == nil {
		bo.Offsets = offsets{}
	}
	return bo.Offsets, true
}

// saveOffsets writes the bus offsets of the feature snapshot beside it.
func saveOffsets(path string, b eventBus, o offsets) error {
	raw, err := json.Marshal(busOffsets{Bus: b.ID(), Offsets: o})
	if err != nil {
		return err
	}
	return writeFileAtomic(path, raw)
}

// loadOffsets reads what saveOffsets wrote; nil when there is no file.
func loadOffsets(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read snapshot offsets: %w", err)
	}
	return raw, nil
}

// openBus opens the event bus of cfg.Bus.
func (n *Node) openBus(ctx context.Context) error {
	cfg := &n.cfg
	if cfg.Bus == BusKafka {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		k, err := ingest.OpenKafka(ctx, ingest.KafkaConfig{
			Brokers: cfg.KafkaBrokers, Topic: cfg.KafkaTopic, Partitions: cfg.KafkaPartitions, Group: cfg.kafkaGroup(),
			Logger: n.logger, Registerer: n.reg, Now: cfg.Now,
		})
		if err != nil {
			return fmt.Errorf("open kafka event bus: %w", err)
		}
		n.log = kafkaBus{Kafka: k, topic: cfg.KafkaTopic}
		// A topic just created may take a moment to be served.
		for {
			_, err := k.EndOffsets(ctx)
			if err == nil {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("kafka topic %q: %w", cfg.KafkaTopic, err)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	fsync, _ := cfg.fsync()
	l, err := ingest.Open(filepath.Join(cfg.DataDir, "events"), ingest.Config{Fsync: fsync, Logger: n.logger, Registerer: n.reg, Now: cfg.Now})
	if err != nil {
		return fmt.Errorf("open event log: %w", err)
	}
	n.log = embeddedBus{l}
	return nil
}
