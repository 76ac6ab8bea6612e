package ingest

// Kafka positions: a consumer's, the group's committed ones, the topic's end.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

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
