package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sightline/sightline/internal/ingest"
)

// offsets are consumer positions by partition.
type offsets = ingest.Offsets

// Bus kinds, the values of Config.Bus.
const (
	BusEmbedded = "embedded"
	BusKafka    = "kafka"
)

// busOffsets are the positions a snapshot includes, saved with it (in the
// model snapshot's extra data and beside the feature snapshot).
type busOffsets struct {
	// Bus is the ingest.Bus ID the offsets belong to.
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
func restoredOffsets(b ingest.Bus, raw []byte, legacy uint64) (offsets, bool) {
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
func saveOffsets(path string, b ingest.Bus, o offsets) error {
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
		n.log = k
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
	n.log = l
	return nil
}
