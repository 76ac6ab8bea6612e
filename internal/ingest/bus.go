package ingest

import (
	"context"
	"errors"
)

// The Bus contract of the embedded log: one partition, 0.

// Subscribe implements [Bus]: Consume from from[0] (the oldest retained
// record when absent and not committed), handing h partition 0's batches.
func (l *Log) Subscribe(ctx context.Context, name string, from Offsets, h PartitionHandler, commit bool) error {
	fn := HandlerFunc(func(ctx context.Context, recs []Record) error { return h.HandlePartition(ctx, 0, recs) })
	return l.Consume(ctx, name, from[0], fn, ConsumeOptions{CommitOffsets: commit, MaxBatch: subscribeBatch})
}

// End implements [Bus]: Next, without a round trip.
func (l *Log) End(context.Context) (uint64, error) { return l.Next(), nil }

// Start implements [Bus].
func (l *Log) Start(_ context.Context, name string, committed bool) (Offsets, error) {
	if committed {
		off, ok, err := l.Committed(name)
		if err != nil {
			return nil, err
		}
		if ok {
			return Offsets{0: off}, nil
		}
	}
	return Offsets{0: l.Oldest()}, nil
}

// Recent implements [Bus].
func (l *Log) Recent(_ context.Context, n uint64) (Offsets, error) {
	next, from := l.Next(), l.Oldest()
	if next > from+n {
		from = next - n
	}
	return Offsets{0: from}, nil
}

// ID implements [Bus]: "embedded".
func (l *Log) ID() string { return "embedded" }

// The Bus contract of Kafka: each consumer name is its own consumer group
// (see [KafkaConfig].Group); records are handed over per partition.

// kafkaSubscribeBatch is larger than the embedded log's: each batch is one
// partition's share of a poll.
const kafkaSubscribeBatch = 8 * subscribeBatch

// Subscribe implements [Bus] with [Kafka.ConsumeFrom].
func (k *Kafka) Subscribe(ctx context.Context, name string, from Offsets, h PartitionHandler, commit bool) error {
	start := make(map[int32]int64, len(from))
	for p, o := range from {
		start[p] = int64(o)
	}
	return k.ConsumeFrom(ctx, name, start, partitionOnly{h}, ConsumeOptions{CommitOffsets: commit, MaxBatch: kafkaSubscribeBatch})
}

// partitionOnly is a PartitionHandler as the Handler ConsumeFrom takes;
// Kafka always calls HandlePartition.
type partitionOnly struct{ PartitionHandler }

func (partitionOnly) Handle(context.Context, []Record) error {
	return errors.New("ingest: kafka delivered records without their partition")
}

// End implements [Bus]: Next.
func (k *Kafka) End(ctx context.Context) (uint64, error) { return k.Next(ctx) }

// Start implements [Bus]: nil, from which ConsumeFrom resumes at the
// group's committed offsets or each partition's start.
func (k *Kafka) Start(context.Context, string, bool) (Offsets, error) { return nil, nil }

// Recent implements [Bus].
func (k *Kafka) Recent(ctx context.Context, n uint64) (Offsets, error) {
	ends, err := k.EndOffsets(ctx)
	if err != nil {
		return nil, err
	}
	per := int64(n) / max(int64(len(ends)), 1)
	out := make(Offsets, len(ends))
	for p, end := range ends {
		out[p] = uint64(max(end-per, 0)) // below the retained start: reset to it
	}
	return out, nil
}

// Run implements [Bus]: Kafka has no background work of its own.
func (k *Kafka) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// ID implements [Bus]: "kafka:<topic>".
func (k *Kafka) ID() string { return "kafka:" + k.cfg.Topic }
