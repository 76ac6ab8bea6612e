package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/ingest"
	"github.com/sightline/sightline/internal/loadtest"
	"github.com/sightline/sightline/internal/sim"
)

// kafkaTarget produces batches of organic events (one click in twenty, the
// rest impressions, users and items of the synthetic world drawn uniformly)
// straight to a cluster's event topic, as an API node would after
// validating them: the load of a trainer measured without the API nodes'
// HTTP work on the same machine.
type kafkaTarget struct {
	k                   *ingest.Kafka
	run                 string
	users, items, batch int
}

func newKafkaTarget(ctx context.Context, f *loadgenFlags) (*kafkaTarget, error) {
	if f.kafkaBrokers == "" {
		return nil, errors.New("the kafka-events workload needs --kafka-brokers")
	}
	k, err := ingest.OpenKafka(ctx, ingest.KafkaConfig{
		Brokers: strings.Split(f.kafkaBrokers, ","),
		Topic:   f.kafkaTopic,
		Group:   "loadgen",
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, fmt.Errorf("open kafka: %w", err)
	}
	return &kafkaTarget{k: k, run: f.run, users: max(f.users, 1), items: max(f.items, 1), batch: max(f.batch, 1)}, nil
}

// Send produces batch seq and returns once the broker acknowledged it.
func (t *kafkaTarget) Send(ctx context.Context, seq uint64) error {
	evs := make([]event.Event, t.batch)
	for k := range evs {
		n := seq*uint64(t.batch) + uint64(k)
		x := splitmix(n)
		typ := event.Impression
		if x%20 == 0 {
			typ = event.Click
		}
		evs[k] = event.Event{
			ID: t.run + "-" + strconv.FormatUint(n, 36), Type: typ, Channel: "web",
			UserID: sim.UserID(int(x % uint64(t.users))), ItemID: sim.ItemID(int((x >> 32) % uint64(t.items))),
		}
	}
	_, err := t.k.Append(ctx, evs)
	return err
}

// Close closes the producer.
func (t *kafkaTarget) Close() { _ = t.k.Close() }

// splitmix is SplitMix64's output function: a well-mixed draw per event.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

var _ loadtest.Target = (*kafkaTarget)(nil)
