package ingest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// partitions is a PartitionHandler that records the event ids it was
// handed by partition.
type partitions struct {
	mu  sync.Mutex
	ids map[int32][]string
	n   int
}

func (p *partitions) HandlePartition(_ context.Context, part int32, recs []Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ids == nil {
		p.ids = map[int32][]string{}
	}
	for _, r := range recs {
		p.ids[part] = append(p.ids[part], r.Event.ID)
		p.n++
	}
	return nil
}

func (p *partitions) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// TestBusContract runs the same scenario on the embedded log and on Kafka:
// a consumer subscribed from Start gets every appended event once, in
// append order within its partition; its Position reaches End; Recent(0)
// is the end; the IDs are those snapshots record.
func TestBusContract(t *testing.T) {
	tests := []struct {
		name   string
		open   func(t *testing.T) Bus
		id     string
		single bool // one partition
	}{
		{"embedded", func(t *testing.T) Bus { return openLog(t, t.TempDir(), Config{}) }, "embedded", true},
		{"kafka", func(t *testing.T) Bus { return openTestKafka(t, newKafkaCluster(t), KafkaConfig{Partitions: 3}) }, "kafka:" + testTopic, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.open(t)
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			evs := testEvents("c", 30)
			if _, err := b.Append(ctx, evs); err != nil {
				t.Fatal(err)
			}
			from, err := b.Start(ctx, "contract", false)
			if err != nil {
				t.Fatal(err)
			}
			h := &partitions{}
			sctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- b.Subscribe(sctx, "contract", from, h, false) }()
			end, err := b.End(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for h.count() < len(evs) || b.Position("contract") < end {
				if ctx.Err() != nil {
					t.Fatalf("handled %d of %d, position %d of %d", h.count(), len(evs), b.Position("contract"), end)
				}
				time.Sleep(5 * time.Millisecond)
			}
			stop()
			if err := <-done; err != nil {
				t.Errorf("Subscribe returned %v after cancel, want nil", err)
			}
			if h.count() != len(evs) {
				t.Errorf("handled %d records, want %d", h.count(), len(evs))
			}
			order := map[string]int{}
			for i, ev := range evs {
				order[ev.ID] = i
			}
			for p, ids := range h.ids {
				if tc.single && p != 0 {
					t.Errorf("records on partition %d of the embedded log", p)
				}
				if !slices.IsSortedFunc(ids, func(a, b string) int { return order[a] - order[b] }) {
					t.Errorf("partition %d out of append order: %v", p, ids)
				}
			}
			recent, err := b.Recent(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			if recent.Sum() != end {
				t.Errorf("Recent(0) sums to %d, want End %d", recent.Sum(), end)
			}
			if b.ID() != tc.id {
				t.Errorf("ID() = %q, want %q", b.ID(), tc.id)
			}
		})
	}
}
