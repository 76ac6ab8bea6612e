package ingest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/event"
)

// partitions is a PartitionHandler that records the event ids it was
// handed by partition. It fails its first fail calls without recording.
type partitions struct {
	mu   sync.Mutex
	ids  map[int32][]string
	n    int
	fail int
}

func (p *partitions) HandlePartition(_ context.Context, part int32, recs []Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail > 0 {
		p.fail--
		return errors.New("injected handler failure")
	}
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

// seen returns how many times each event id was handed over.
func (p *partitions) seen() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for _, ids := range p.ids {
		for _, id := range ids {
			out[id]++
		}
	}
	return out
}

// busUnderTest opens a bus; each call after the first opens the same
// storage again (the same log directory, the same Kafka cluster and
// topic), as a restarted process would. The caller closes the previous
// bus first: the embedded log's directory is locked while open.
type busUnderTest func(t *testing.T) Bus

// subscribe runs b.Subscribe in a goroutine; stop cancels it and returns
// its error.
func subscribe(t *testing.T, b Bus, name string, from Offsets, h PartitionHandler, commit bool) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- b.Subscribe(ctx, name, from, h, commit) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-errc })
		return err
	}
	// Only stops what a test left running (maybe after closing the bus):
	// the tests that care check stop's error themselves.
	t.Cleanup(func() { _ = stop() })
	return stop
}

// caughtUp waits until h holds want records and the consumer's Position
// reached the bus's End.
func caughtUp(t *testing.T, b Bus, name string, h *partitions, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	end, err := b.End(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for h.count() < want || b.Position(name) < end {
		if ctx.Err() != nil {
			t.Fatalf("handled %d of %d, position %d of %d", h.count(), want, b.Position(name), end)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func appendBus(t *testing.T, b Bus, evs []event.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
}

func start(t *testing.T, b Bus, name string, committed bool) Offsets {
	t.Helper()
	from, err := b.Start(context.Background(), name, committed)
	if err != nil {
		t.Fatal(err)
	}
	return from
}

// wantOnce fails unless h was handed exactly the events of evs, once each.
func wantOnce(t *testing.T, h *partitions, evs []event.Event) {
	t.Helper()
	seen := h.seen()
	for _, ev := range evs {
		if seen[ev.ID] != 1 {
			t.Errorf("event %s handled %d times, want once", ev.ID, seen[ev.ID])
		}
		delete(seen, ev.ID)
	}
	for id, n := range seen {
		t.Errorf("event %s handled %d times, want not at all", id, n)
	}
}

// TestBusContract runs the same scenarios on the embedded log and on
// Kafka, through the Bus interface only.
func TestBusContract(t *testing.T) {
	buses := []struct {
		name   string
		open   func(t *testing.T) busUnderTest
		id     string
		single bool // one partition
	}{
		{"embedded", func(t *testing.T) busUnderTest {
			dir := t.TempDir()
			return func(t *testing.T) Bus { return openLog(t, dir, Config{}) }
		}, "embedded", true},
		{"kafka", func(t *testing.T) busUnderTest {
			c := newKafkaCluster(t)
			return func(t *testing.T) Bus { return openTestKafka(t, c, KafkaConfig{Partitions: 3}) }
		}, "kafka:" + testTopic, false},
	}
	scenarios := []struct {
		name string
		run  func(t *testing.T, open busUnderTest, id string, single bool)
	}{
		// A consumer subscribed from Start gets every appended event once,
		// in append order within its partition; its Position reaches End
		// and its Lag is 0; Recent(0) is the end; the ID is the one
		// snapshots record.
		{"delivers every event once in partition order", func(t *testing.T, open busUnderTest, id string, single bool) {
			b := open(t)
			evs := testEvents("c", 30)
			appendBus(t, b, evs)
			h := &partitions{}
			stop := subscribe(t, b, "contract", start(t, b, "contract", false), h, false)
			caughtUp(t, b, "contract", h, len(evs))
			if lag, _ := b.Lag("contract"); lag != 0 {
				t.Errorf("Lag once caught up = %d, want 0", lag)
			}
			if err := stop(); err != nil {
				t.Errorf("Subscribe returned %v after cancel, want nil", err)
			}
			wantOnce(t, h, evs)
			order := map[string]int{}
			for i, ev := range evs {
				order[ev.ID] = i
			}
			for p, ids := range h.ids {
				if single && p != 0 {
					t.Errorf("records on partition %d of the embedded log", p)
				}
				if !slices.IsSortedFunc(ids, func(a, b string) int { return order[a] - order[b] }) {
					t.Errorf("partition %d out of append order: %v", p, ids)
				}
			}
			end, err := b.End(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			recent, err := b.Recent(context.Background(), 0)
			if err != nil {
				t.Fatal(err)
			}
			if recent.Sum() != end {
				t.Errorf("Recent(0) sums to %d, want End %d", recent.Sum(), end)
			}
			if b.ID() != id {
				t.Errorf("ID() = %q, want %q", b.ID(), id)
			}
		}},
		// With commit the bus keeps the position: a restarted process
		// resumes from Start(committed) without redelivery.
		{"a committing consumer resumes where it stopped", func(t *testing.T, open busUnderTest, _ string, _ bool) {
			b := open(t)
			first := testEvents("first", 20)
			appendBus(t, b, first)
			h := &partitions{}
			stop := subscribe(t, b, "resume", start(t, b, "resume", true), h, true)
			caughtUp(t, b, "resume", h, len(first))
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			b.Close()

			b = open(t)
			second := testEvents("second", 6)
			appendBus(t, b, second)
			h = &partitions{}
			subscribe(t, b, "resume", start(t, b, "resume", true), h, true)
			caughtUp(t, b, "resume", h, len(second))
			time.Sleep(100 * time.Millisecond) // a redelivery would show up here
			wantOnce(t, h, second)
		}},
		// Without commit nothing is kept: after a restart Start(committed)
		// is the oldest record again.
		{"a consumer without commit starts over", func(t *testing.T, open busUnderTest, _ string, _ bool) {
			b := open(t)
			evs := testEvents("again", 10)
			appendBus(t, b, evs)
			h := &partitions{}
			stop := subscribe(t, b, "nocommit", start(t, b, "nocommit", true), h, false)
			caughtUp(t, b, "nocommit", h, len(evs))
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			b.Close()

			b = open(t)
			h = &partitions{}
			subscribe(t, b, "nocommit", start(t, b, "nocommit", true), h, false)
			caughtUp(t, b, "nocommit", h, len(evs))
			wantOnce(t, h, evs)
		}},
		// Recent(n) is at most n records before the end, and a consumer
		// from it gets exactly the records after it.
		{"Recent is within n of the end", func(t *testing.T, open busUnderTest, _ string, _ bool) {
			b := open(t)
			evs := testEvents("recent", 30)
			appendBus(t, b, evs)
			end, err := b.End(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []uint64{0, 7, 1000} {
				r, err := b.Recent(context.Background(), n)
				if err != nil {
					t.Fatal(err)
				}
				if s := r.Sum(); s > end || s+n < end {
					t.Errorf("Recent(%d) sums to %d, want within [%d, %d]", n, s, max(end, n)-n, end)
				}
			}
			from, err := b.Recent(context.Background(), 7)
			if err != nil {
				t.Fatal(err)
			}
			want := int(end - from.Sum())
			if want == 0 {
				t.Fatal("Recent(7) is the end: nothing to consume")
			}
			h := &partitions{}
			subscribe(t, b, "recent", from, h, false)
			caughtUp(t, b, "recent", h, want)
			time.Sleep(50 * time.Millisecond)
			if h.count() != want {
				t.Errorf("consumer from Recent(7) handled %d records, want %d", h.count(), want)
			}
		}},
		// A handler error redelivers the batch: nothing is lost or skipped.
		{"a handler error redelivers the batch", func(t *testing.T, open busUnderTest, _ string, _ bool) {
			b := open(t)
			evs := testEvents("retry", 12)
			appendBus(t, b, evs)
			h := &partitions{fail: 2}
			subscribe(t, b, "retry", start(t, b, "retry", false), h, false)
			caughtUp(t, b, "retry", h, len(evs))
			wantOnce(t, h, evs)
		}},
		// Close makes a running Subscribe return ErrClosed.
		{"Close ends Subscribe", func(t *testing.T, open busUnderTest, _ string, _ bool) {
			b := open(t)
			done := make(chan error, 1)
			from := start(t, b, "closing", false)
			go func() { done <- b.Subscribe(context.Background(), "closing", from, &partitions{}, true) }()
			time.Sleep(50 * time.Millisecond)
			if err := b.Close(); err != nil {
				t.Fatalf("Close() = %v", err)
			}
			select {
			case err := <-done:
				if !errors.Is(err, ErrClosed) {
					t.Errorf("Subscribe after Close = %v, want ErrClosed", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Subscribe did not return after Close")
			}
		}},
	}
	for _, bus := range buses {
		t.Run(bus.name, func(t *testing.T) {
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) { sc.run(t, bus.open(t), bus.id, bus.single) })
			}
		})
	}
}
