package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sightline/sightline/internal/event"
)

const testTopic = "events-test"

// newKafkaCluster starts an in-process Kafka-protocol cluster with no
// topics (OpenKafka creates it).
func newKafkaCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func openTestKafka(t *testing.T, c *kfake.Cluster, cfg KafkaConfig) *Kafka {
	t.Helper()
	cfg.Brokers = c.ListenAddrs()
	if cfg.Topic == "" {
		cfg.Topic = testTopic
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	k, err := OpenKafka(ctx, cfg)
	if err != nil {
		t.Fatalf("OpenKafka: %v", err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// collector is a Handler that keeps copies of what it was given and
// signals when it holds at least want records.
type collector struct {
	mu   sync.Mutex
	recs []Record
	want int
	done chan struct{}
	fail int // fail the first fail Handle calls
}

func newCollector(want int) *collector { return &collector{want: want, done: make(chan struct{})} }

func (c *collector) Handle(_ context.Context, recs []Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail > 0 {
		c.fail--
		return errors.New("injected handler failure")
	}
	before := len(c.recs)
	c.recs = append(c.recs, recs...)
	if before < c.want && len(c.recs) >= c.want {
		close(c.done)
	}
	return nil
}

func (c *collector) records() []Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Record(nil), c.recs...)
}

// runConsumer runs k.Consume in a goroutine and returns a stop function
// that cancels it and returns its error.
func runConsumer(t *testing.T, k *Kafka, name string, from uint64, h Handler, opt ConsumeOptions) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- k.Consume(ctx, name, from, h, opt) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() { cancel(); err = <-errc })
		return err
	}
	// Only stops what a test left running (maybe after closing the bus):
	// the tests that care check stop's error themselves.
	t.Cleanup(func() { _ = stop() })
	return stop
}

func waitFor(t *testing.T, c *collector) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("consumer got %d records, want %d", len(c.records()), c.want)
	}
}

func appendOK(t *testing.T, k *Kafka, evs []event.Event) AppendResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := k.Append(ctx, evs)
	if err != nil {
		t.Fatalf("Append(%d events) error: %v", len(evs), err)
	}
	return res
}

func TestKafkaRoundTrip(t *testing.T) {
	c := newKafkaCluster(t)
	k := openTestKafka(t, c, KafkaConfig{Partitions: 1})
	if got := k.Partitions(); got != 1 {
		t.Fatalf("Partitions() = %d, want 1", got)
	}
	evs := testEvents("rt", 5)
	evs[2].TraceState = "vendor=abc"
	res := appendOK(t, k, evs)
	if diff := cmp.Diff(AppendResult{Appended: 5, First: 0, Last: 4}, res); diff != "" {
		t.Errorf("Append result (-want +got):\n%s", diff)
	}

	col := newCollector(5)
	stop := runConsumer(t, k, "rt", 0, col, ConsumeOptions{})
	waitFor(t, col)
	if err := stop(); err != nil {
		t.Fatalf("Consume() = %v, want nil after cancel", err)
	}
	got := col.records()
	if diff := cmp.Diff(evs, eventsOf(got)); diff != "" {
		t.Errorf("consumed events (-want +got):\n%s", diff)
	}
	for i, r := range got {
		if r.Offset != uint64(i) {
			t.Errorf("record %d Offset = %d, want %d", i, r.Offset, i)
		}
	}
	if got := k.Position("rt"); got != 5 {
		t.Errorf("Position(rt) = %d, want 5", got)
	}
	if n, _ := k.Lag("rt"); n != 0 {
		t.Errorf("Lag(rt) records = %d, want 0", n)
	}
	next, err := k.Next(context.Background())
	if err != nil || next != 5 {
		t.Errorf("Next() = %d, %v, want 5, nil", next, err)
	}

	// The trace context travels in the record headers, readable by any
	// Kafka client without our encoding.
	raw, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(testTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var kr []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(kr) < 5 && ctx.Err() == nil {
		kr = append(kr, raw.PollFetches(ctx).Records()...)
	}
	if len(kr) != 5 {
		t.Fatalf("raw consumer got %d records, want 5", len(kr))
	}
	for i, r := range kr {
		hdr := map[string]string{}
		for _, h := range r.Headers {
			hdr[h.Key] = string(h.Value)
		}
		want := map[string]string{HeaderTraceParent: evs[i].TraceParent}
		if evs[i].TraceState != "" {
			want[HeaderTraceState] = evs[i].TraceState
		}
		if diff := cmp.Diff(want, hdr); diff != "" {
			t.Errorf("record %d headers (-want +got):\n%s", i, diff)
		}
		if string(r.Key) != evs[i].UserID {
			t.Errorf("record %d key = %q, want the user id %q", i, r.Key, evs[i].UserID)
		}
	}
}

// A record from another producer whose value lacks the trace context gets
// it from the headers.
func TestRecordOfKafkaHeaders(t *testing.T) {
	ev := testEvents("h", 1)[0]
	ev.TraceParent = ""
	r := &kgo.Record{Offset: 7, Value: AppendRecord(nil, &ev), Headers: []kgo.RecordHeader{
		{Key: HeaderTraceParent, Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")},
		{Key: HeaderTraceState, Value: []byte("k=v")},
	}}
	got, err := recordOfKafka(r)
	if err != nil {
		t.Fatal(err)
	}
	if got.Event.TraceParent != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" || got.Event.TraceState != "k=v" || got.Offset != 7 {
		t.Errorf("recordOfKafka() = %+v, want trace context from headers at offset 7", got)
	}
	if _, err := recordOfKafka(&kgo.Record{Value: []byte{9, 9}}); !errors.Is(err, event.ErrCorrupt) {
		t.Errorf("recordOfKafka(garbage) error = %v, want ErrCorrupt", err)
	}
}

func TestKafkaOrderingPerUser(t *testing.T) {
	c := newKafkaCluster(t)
	k := openTestKafka(t, c, KafkaConfig{}) // default 6 partitions
	if got := k.Partitions(); got != 6 {
		t.Fatalf("Partitions() = %d, want 6", got)
	}
	const users, perUser = 7, 30
	want := map[string][]string{}
	var all []event.Event
	for i := range users * perUser {
		u := "user-" + strconv.Itoa(i%users)
		ev := testEvents(fmt.Sprintf("o%d", i), 1)[0]
		ev.UserID = u
		all = append(all, ev)
		want[u] = append(want[u], ev.ID)
	}
	for i := 0; i < len(all); i += 25 {
		appendOK(t, k, all[i:min(i+25, len(all))])
	}
	col := newCollector(len(all))
	runConsumer(t, k, "order", 0, col, ConsumeOptions{MaxBatch: 16})
	waitFor(t, col)
	got := map[string][]string{}
	for _, r := range col.records() {
		got[r.Event.UserID] = append(got[r.Event.UserID], r.Event.ID)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("per-user event order (-want +got):\n%s", diff)
	}
	next, err := k.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if next != uint64(len(all)) || k.Position("order") != next {
		t.Errorf("Next() = %d, Position(order) = %d, want both %d", next, k.Position("order"), len(all))
	}
}

func TestKafkaResumeFromCommitted(t *testing.T) {
	c := newKafkaCluster(t)
	k := openTestKafka(t, c, KafkaConfig{Partitions: 3})
	first := testEvents("a", 20)
	appendOK(t, k, first)
	opt := ConsumeOptions{CommitOffsets: true, CommitInterval: time.Hour, MaxBatch: 4}
	col := newCollector(len(first))
	stop := runConsumer(t, k, "resume", 0, col, opt)
	waitFor(t, col)
	if err := stop(); err != nil {
		t.Fatalf("Consume() = %v, want nil", err)
	}
	committed, ok, err := k.Committed(context.Background(), "resume")
	if err != nil || !ok || committed != 20 {
		t.Fatalf("Committed(resume) = %d, %v, %v, want 20, true, nil", committed, ok, err)
	}

	// A new process (a fresh bus) resumes from the committed offsets.
	k2 := openTestKafka(t, c, KafkaConfig{})
	second := testEvents("b", 6)
	appendOK(t, k2, second)
	col2 := newCollector(len(second))
	stop2 := runConsumer(t, k2, "resume", 0, col2, opt)
	waitFor(t, col2)
	time.Sleep(100 * time.Millisecond) // a redelivery would show up here
	if err := stop2(); err != nil {
		t.Fatalf("Consume() = %v, want nil", err)
	}
	ids := map[string]bool{}
	for _, r := range col2.records() {
		ids[r.Event.ID] = true
	}
	wantIDs := map[string]bool{}
	for _, ev := range second {
		wantIDs[ev.ID] = true
	}
	if diff := cmp.Diff(wantIDs, ids); diff != "" || len(col2.records()) != len(second) {
		t.Errorf("after restart got %d records, IDs (-want +got):\n%s", len(col2.records()), diff)
	}
	if lag, _ := k2.Lag("resume"); lag != 0 {
		t.Errorf("Lag(resume) = %d, want 0", lag)
	}
}

// A committing consumer's position reaches the group every CommitInterval
// while it runs (franz-go's autocommit of the marked offsets), not only on
// revoke or when it stops. An interval below franz-go's floor of 100ms is
// raised to it (franz-go refuses to start the consumer otherwise).
func TestKafkaCommitsEveryInterval(t *testing.T) {
	c := newKafkaCluster(t)
	k := openTestKafka(t, c, KafkaConfig{Partitions: 2})
	evs := testEvents("tick", 12)
	appendOK(t, k, evs)
	col := newCollector(len(evs))
	runConsumer(t, k, "ticking", 0, col, ConsumeOptions{CommitOffsets: true, CommitInterval: 20 * time.Millisecond, MaxBatch: 3})
	waitFor(t, col)
	deadline := time.Now().Add(10 * time.Second)
	for {
		committed, ok, err := k.Committed(context.Background(), "ticking")
		if err == nil && ok && committed == uint64(len(evs)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Committed(ticking) while running = %d, %v, %v, want %d", committed, ok, err, len(evs))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestKafkaConsumeFromOffset(t *testing.T) {
	c := newKafkaCluster(t)
	k := openTestKafka(t, c, KafkaConfig{Partitions: 1})
	evs := testEvents("f", 10)
	appendOK(t, k, evs)
	col := newCollector(3)
	runConsumer(t, k, "from", 7, col, ConsumeOptions{})
	waitFor(t, col)
	got := col.records()
	if len(got) != 3 || got[0].Offset != 7 || got[0].Event.ID != evs[7].ID {
		t.Errorf("Consume from 7 got %d records, first %+v, want 3 starting at offset 7", len(got), got[0])
	}

	multi := openTestKafka(t, c, KafkaConfig{Topic: "multi", Partitions: 2})
	err := multi.Consume(context.Background(), "x", 5, newCollector(1), ConsumeOptions{})
	if !errors.Is(err, ErrOffsetMapping) {
		t.Errorf("Consume(from 5) on 2 partitions = %v, want ErrOffsetMapping", err)
	}
}

func TestKafkaHandlerErrorRedelivers(t *testing.T) {
	c := newKafkaCluster(t)
	k := openTestKafka(t, c, KafkaConfig{Partitions: 1})
	evs := testEvents("e", 3)
	appendOK(t, k, evs)
	col := newCollector(3)
	col.fail = 2
	runConsumer(t, k, "retry", 0, col, ConsumeOptions{MinBackoff: time.Millisecond})
	waitFor(t, col)
	if diff := cmp.Diff(evs, eventsOf(col.records())); diff != "" {
		t.Errorf("events after handler failures (-want +got):\n%s", diff)
	}
}

func TestKafkaDuplicates(t *testing.T) {
	c := newKafkaCluster(t)
	k := openTestKafka(t, c, KafkaConfig{Partitions: 1, DedupeWindow: 4})
	evs := testEvents("d", 6)
	tests := []struct {
		name string
		in   []event.Event
		want AppendResult
	}{
		{"new with a repeat inside the batch", []event.Event{evs[0], evs[1], evs[0]}, AppendResult{Appended: 2, Duplicates: 1, First: 0, Last: 1}},
		{"all seen", []event.Event{evs[1], evs[0]}, AppendResult{Duplicates: 2}},
		{"mixed", []event.Event{evs[1], evs[2], evs[3], evs[4]}, AppendResult{Appended: 3, Duplicates: 1, First: 2, Last: 4}},
		// The window holds 4 IDs (0..4 minus the evicted 0): 0 is new again.
		{"evicted from the window", []event.Event{evs[0], evs[4]}, AppendResult{Appended: 1, Duplicates: 1, First: 5, Last: 5}},
	}
	for _, tt := range tests {
		got := appendOK(t, k, tt.in)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: Append (-want +got):\n%s", tt.name, diff)
		}
	}

	// Concurrent appends of the same events produce each once.
	k = openTestKafka(t, c, KafkaConfig{Topic: "concurrent"})
	more := testEvents("cc", 8)
	var wg sync.WaitGroup
	results := make([]AppendResult, 4)
	for i := range results {
		wg.Go(func() { results[i] = appendOK(t, k, more) })
	}
	wg.Wait()
	appended := 0
	for _, r := range results {
		appended += r.Appended
	}
	if appended != len(more) {
		t.Errorf("concurrent appends of the same %d events appended %d in total, want %d", len(more), appended, len(more))
	}
	next, err := k.Next(context.Background())
	if err != nil || next != uint64(len(more)) {
		t.Errorf("Next() = %d, %v, want %d", next, err, len(more))
	}
}

func TestKafkaAppendClusterDown(t *testing.T) {
	c := newKafkaCluster(t)
	addr := c.ListenAddrs()[0]
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	k := openTestKafka(t, c, KafkaConfig{Partitions: 1, ProduceTimeout: time.Second})
	c.Close()

	evs := testEvents("down", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := k.Append(ctx, evs)
	if err == nil {
		t.Fatalf("Append with the cluster down = %+v, nil, want an error", res)
	}
	if res != (AppendResult{}) {
		t.Errorf("Append with the cluster down result = %+v, want zero", res)
	}

	// The failed events were not claimed: once a cluster is back on the
	// same address, a retry appends them.
	// The producer reconnects with backoff, so the first retries may still
	// time out (ProduceTimeout is 1 s here); a client retries until the
	// brokers acknowledge, and so does this test, for a bounded time.
	c2 := newKafkaCluster(t, kfake.Ports(port), kfake.SeedTopics(1, testTopic))
	_ = c2
	var got AppendResult
	for deadline := time.Now().Add(20 * time.Second); ; {
		got, err = k.Append(context.Background(), evs)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrNotAcknowledged) || time.Now().After(deadline) {
			t.Fatalf("retry after the outage: %v", err)
		}
	}
	if got.Appended != 3 || got.Duplicates != 0 {
		t.Errorf("retry after the outage = %+v, want 3 appended, 0 duplicates", got)
	}
}

func TestKafkaClose(t *testing.T) {
	c := newKafkaCluster(t)
	k := openTestKafka(t, c, KafkaConfig{Partitions: 1})
	errc := make(chan error, 1)
	go func() { errc <- k.Consume(context.Background(), "closing", 0, newCollector(1), ConsumeOptions{}) }()
	time.Sleep(50 * time.Millisecond)
	if err := k.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Consume after Close = %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Consume did not return after Close")
	}
	if _, err := k.Append(context.Background(), testEvents("x", 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if err := k.Consume(context.Background(), "late", 0, newCollector(1), ConsumeOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Consume after Close = %v, want ErrClosed", err)
	}
}

// A second process joining the group takes over partitions from the
// first; the first commits what it handled when they are revoked, so the
// second starts where the first stopped: nothing is delivered twice.
func TestKafkaRebalanceCommitsOnRevoke(t *testing.T) {
	c := newKafkaCluster(t)
	a := openTestKafka(t, c, KafkaConfig{Partitions: 4, Group: "shared"})
	b := openTestKafka(t, c, KafkaConfig{Group: "shared"})
	opt := ConsumeOptions{CommitOffsets: true, CommitInterval: time.Hour}
	before := testEvents("before", 40)
	appendOK(t, a, before)
	colA := newCollector(len(before))
	runConsumer(t, a, "split", 0, colA, opt)
	waitFor(t, colA)

	after := testEvents("after", 40)
	colB := newCollector(1)
	runConsumer(t, b, "split", 0, colB, opt)
	waitFor := time.Now().Add(15 * time.Second)
	for len(b.localOwned("split")) == 0 && time.Now().Before(waitFor) {
		time.Sleep(10 * time.Millisecond)
	}
	if len(b.localOwned("split")) == 0 {
		t.Fatal("the second member was never assigned a partition")
	}
	appendOK(t, a, after)
	deadline := time.Now().Add(15 * time.Second)
	for len(colA.records())+len(colB.records()) < len(before)+len(after) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a redelivery would show up here
	seen := map[string]int{}
	for _, r := range append(colA.records(), colB.records()...) {
		seen[r.Event.ID]++
	}
	for _, ev := range append(before, after...) {
		if seen[ev.ID] != 1 {
			t.Errorf("event %s delivered %d times, want once", ev.ID, seen[ev.ID])
		}
	}
	if len(colB.records()) == 0 {
		t.Error("the second member handled no records")
	}
}

// TestKafkaLagOfStoppedConsumer: a consumer that stopped in this process
// (a trainer that stepped down) is not reported by the lag metrics, so its
// growing backlog does not page anyone; a running one is.
func TestKafkaLagOfStoppedConsumer(t *testing.T) {
	c := newKafkaCluster(t)
	reg := prometheus.NewRegistry()
	k := openTestKafka(t, c, KafkaConfig{Partitions: 2, Registerer: reg})
	appendOK(t, k, testEvents("a", 4))
	col := newCollector(4)
	stop := runConsumer(t, k, "model", 0, col, ConsumeOptions{MaxBatch: 2})
	waitFor(t, col)
	reported := func() map[string]bool {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, mf := range mfs {
			if mf.GetName() != "sightline_ingest_lag_seconds" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "consumer" {
						out[l.GetValue()] = true
					}
				}
			}
		}
		return out
	}
	if !reported()["model"] {
		t.Errorf("running consumer not in sightline_ingest_lag_seconds")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	appendOK(t, k, testEvents("b", 4))
	if reported()["model"] {
		t.Errorf("stopped consumer still in sightline_ingest_lag_seconds")
	}
}
