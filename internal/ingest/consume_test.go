package ingest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sightline/sightline/internal/event"
)

// recorder is a Handler that records what it was given and can fail on
// demand.
type recorder struct {
	mu      sync.Mutex
	recs    []Record
	batches []int
	calls   int
	failFor int // fail this many calls before succeeding
	callAt  []time.Time
}

func (r *recorder) Handle(_ context.Context, recs []Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	r.callAt = append(r.callAt, time.Now())
	if r.failFor > 0 {
		r.failFor--
		return errors.New("apply failed")
	}
	r.recs = append(r.recs, recs...)
	r.batches = append(r.batches, len(recs))
	return nil
}

func (r *recorder) events() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return eventsOf(r.recs)
}

// startConsume runs Consume in a goroutine and returns a function that
// cancels it and returns its error.
func startConsume(t *testing.T, l *Log, name string, from uint64, h Handler, opt ConsumeOptions) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Consume(ctx, name, from, h, opt) }()
	return func() error {
		cancel()
		return <-done
	}
}

func TestConsumeDeliversInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := Open(t.TempDir(), Config{SegmentBytes: 8 << 10})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var want []event.Event
		for i := range 5 {
			evs := testEvents("c"+string(rune('a'+i)), 100)
			mustAppend(t, l, evs)
			want = append(want, evs...)
		}
		h := &recorder{}
		stop := startConsume(t, l, "model", 0, h, ConsumeOptions{MaxBatch: 64})
		synctest.Wait()
		if diff := cmp.Diff(want, h.events()); diff != "" {
			t.Fatalf("consumed events mismatch (-want +got):\n%s", diff)
		}
		for i, n := range h.batches {
			if n > 64 {
				t.Errorf("batch %d has %d records, want <= 64", i, n)
			}
		}
		if got := l.Position("model"); got != 500 {
			t.Errorf("Position(model) = %d, want 500", got)
		}
		// New records wake the idle consumer.
		more := testEvents("late", 7)
		mustAppend(t, l, more)
		synctest.Wait()
		if diff := cmp.Diff(append(want, more...), h.events()); diff != "" {
			t.Errorf("events after a late append mismatch (-want +got):\n%s", diff)
		}
		if n, age := l.Lag("model"); n != 0 || age != 0 {
			t.Errorf("Lag(model) = %d, %v, want 0, 0", n, age)
		}
		if err := stop(); err != nil {
			t.Errorf("Consume() after cancel = %v, want nil", err)
		}
	})
}

func TestConsumeFromOffset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := Open(t.TempDir(), Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		evs := testEvents("f", 20)
		mustAppend(t, l, evs)
		h := &recorder{}
		stop := startConsume(t, l, "features", 15, h, ConsumeOptions{})
		synctest.Wait()
		if err := stop(); err != nil {
			t.Errorf("Consume() error = %v", err)
		}
		if diff := cmp.Diff(evs[15:], h.events()); diff != "" {
			t.Errorf("Consume(from 15) mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestConsumeRetriesHandlerErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		l, err := Open(t.TempDir(), Config{Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		evs := testEvents("r", 10)
		mustAppend(t, l, evs)
		h := &recorder{failFor: 3}
		start := time.Now()
		stop := startConsume(t, l, "ctr", 0, h, ConsumeOptions{})
		synctest.Wait()
		if got := l.Position("ctr"); got != 0 {
			t.Errorf("Position(ctr) after a failed Handle = %d, want 0", got)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if err := stop(); err != nil {
			t.Errorf("Consume() error = %v", err)
		}
		if diff := cmp.Diff(evs, h.events()); diff != "" {
			t.Errorf("events after retries mismatch (-want +got):\n%s", diff)
		}
		wantDelays := []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond, 700 * time.Millisecond}
		var got []time.Duration
		for _, at := range h.callAt {
			got = append(got, at.Sub(start))
		}
		if diff := cmp.Diff(wantDelays, got); diff != "" {
			t.Errorf("Handle call times mismatch (-want +got):\n%s", diff)
		}
		if v := counterValue(t, l.m.handlerErrors.WithLabelValues("ctr")); v != 3 {
			t.Errorf("sightline_ingest_handler_errors_total{consumer=ctr} = %v, want 3", v)
		}
	})
}

func TestConsumeCommitsOffsetsAndResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		l, err := Open(dir, Config{})
		if err != nil {
			t.Fatal(err)
		}
		opt := ConsumeOptions{CommitOffsets: true, CommitInterval: time.Second}
		if _, ok, err := l.Committed("engagement"); ok || err != nil {
			t.Fatalf("Committed(engagement) before any commit = %v, %v, want false, nil", ok, err)
		}
		mustAppend(t, l, testEvents("a", 10))
		h := &recorder{}
		stop := startConsume(t, l, "engagement", 0, h, opt)
		synctest.Wait()
		// The first batch is committed only after CommitInterval.
		off, ok, err := l.Committed("engagement")
		if err != nil || ok {
			t.Errorf("Committed() before the interval = %d, %v, %v, want not committed", off, ok, err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if off, ok, err := l.Committed("engagement"); err != nil || !ok || off != 10 {
			t.Errorf("Committed() after the interval = %d, %v, %v, want 10, true, nil", off, ok, err)
		}
		mustAppend(t, l, testEvents("b", 5))
		synctest.Wait()
		if err := stop(); err != nil {
			t.Errorf("Consume() = %v, want nil", err)
		}
		if off, _, _ := l.Committed("engagement"); off != 15 {
			t.Errorf("Committed() after Consume returned = %d, want 15", off)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}

		l2, err := Open(dir, Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer l2.Close()
		if got := l2.Position("engagement"); got != 15 {
			t.Errorf("Position(engagement) after reopen = %d, want 15", got)
		}
		newer := testEvents("c", 3)
		mustAppend(t, l2, newer)
		from, _, _ := l2.Committed("engagement")
		h2 := &recorder{}
		stop = startConsume(t, l2, "engagement", from, h2, opt)
		synctest.Wait()
		if err := stop(); err != nil {
			t.Errorf("Consume() error = %v", err)
		}
		if diff := cmp.Diff(newer, h2.events()); diff != "" {
			t.Errorf("resumed consumer events mismatch (-want +got):\n%s", diff)
		}
	})
}

// blocker is a Handler that blocks until released.
type blocker struct {
	release chan struct{}
	n       int
}

func (b *blocker) Handle(ctx context.Context, recs []Record) error {
	select {
	case <-b.release:
		b.n += len(recs)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestLag(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		l, err := Open(t.TempDir(), Config{Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		mustAppend(t, l, testEvents("l", 10))
		time.Sleep(5 * time.Second)
		mustAppend(t, l, testEvents("m", 10))
		if n, age := l.Lag("never-ran"); n != 20 || age != 5*time.Second {
			t.Errorf("Lag(never-ran) = %d, %v, want 20, 5s", n, age)
		}
		b := &blocker{release: make(chan struct{})}
		stop := startConsume(t, l, "slow", 0, b, ConsumeOptions{MaxBatch: 10})
		synctest.Wait()
		time.Sleep(2 * time.Second)
		if n, age := l.Lag("slow"); n != 20 || age != 7*time.Second {
			t.Errorf("Lag(slow) while blocked = %d, %v, want 20, 7s", n, age)
		}
		if got := gauge(t, reg, "sightline_ingest_queue_depth", "slow"); got != 20 {
			t.Errorf("sightline_ingest_queue_depth{consumer=slow} = %v, want 20", got)
		}
		if got := gauge(t, reg, "sightline_ingest_lag_seconds", "slow"); got != 7 {
			t.Errorf("sightline_ingest_lag_seconds{consumer=slow} = %v, want 7", got)
		}
		b.release <- struct{}{}
		synctest.Wait()
		if n, age := l.Lag("slow"); n != 10 || age != 2*time.Second {
			t.Errorf("Lag(slow) after one batch = %d, %v, want 10, 2s", n, age)
		}
		b.release <- struct{}{}
		synctest.Wait()
		if n, age := l.Lag("slow"); n != 0 || age != 0 {
			t.Errorf("Lag(slow) caught up = %d, %v, want 0, 0", n, age)
		}
		if err := stop(); err != nil {
			t.Errorf("Consume() error = %v", err)
		}
	})
}

func gauge(t *testing.T, reg *prometheus.Registry, name, consumer string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "consumer" && lp.GetValue() == consumer {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s{consumer=%q} not found", name, consumer)
	return 0
}

func TestConsumeStopsOnClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := Open(t.TempDir(), Config{})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- l.Consume(t.Context(), "x", 0, &recorder{}, ConsumeOptions{}) }()
		synctest.Wait()
		if err := l.Consume(t.Context(), "x", 0, &recorder{}, ConsumeOptions{}); !errors.Is(err, ErrConsumerActive) {
			t.Errorf("second Consume(x) = %v, want %v", err, ErrConsumerActive)
		}
		l.Close()
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("Consume() after Close = %v, want %v", err, ErrClosed)
		}
	})
}

func TestConsumerNames(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{})
	for _, name := range []string{"", ".", "..", "a/b", "../x", "white space", string(make([]byte, 65))} {
		if err := l.Consume(t.Context(), name, 0, &recorder{}, ConsumeOptions{}); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Consume(%q) = %v, want %v", name, err, ErrInvalidName)
		}
		if _, _, err := l.Committed(name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Committed(%q) error = %v, want %v", name, err, ErrInvalidName)
		}
	}
}
