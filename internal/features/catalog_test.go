package features

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sightline/sightline/internal/event"
)

// runTail runs r.Run until the test ends, and checks that it then returns
// nil. It returns a function that stops it earlier (and is idempotent).
func runTail(t *testing.T, r *Redis) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run() = %v after cancel, want nil", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// receive returns the next n items from ch, failing the test when they do
// not all arrive within 5s.
func receive(t *testing.T, ch <-chan event.Item, n int) []event.Item {
	t.Helper()
	timeout := time.After(5 * time.Second)
	var got []event.Item
	for len(got) < n {
		select {
		case it := <-ch:
			got = append(got, it)
		case <-timeout:
			t.Fatalf("received %d item changes %v within 5s, want %d", len(got), got, n)
		}
	}
	return got
}

// expectNone fails the test when ch yields an item within d.
func expectNone(t *testing.T, ch <-chan event.Item, d time.Duration) {
	t.Helper()
	select {
	case it := <-ch:
		t.Errorf("unexpected item change %+v", it)
	case <-time.After(d):
	}
}

// counterValue returns the value of the counter c.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatalf("read counter: %v", err)
	}
	return m.GetCounter().GetValue()
}

func ids(items []event.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

// TestRedisCatalogAcrossNodes puts items through two stores on one prefix,
// as two nodes do: each store's callbacks see every put, its own included,
// in the order of the writes, well within 1s.
func TestRedisCatalogAcrossNodes(t *testing.T) {
	a := newTestRedis(t, RedisConfig{})
	b := newTestRedis(t, RedisConfig{KeyPrefix: a.cfg.KeyPrefix})
	ctx := t.Context()
	chA, chB := make(chan event.Item, 100), make(chan event.Item, 100)
	a.OnItemChange(func(it event.Item) { chA <- it })
	b.OnItemChange(func(it event.Item) { chB <- it })
	runTail(t, a)
	runTail(t, b)

	puts := []struct {
		via *Redis
		it  event.Item
	}{
		{a, event.Item{ID: "x", Category: "books", Tags: []string{"new", "x,y"}, Available: true}},
		{b, event.Item{ID: "y", Category: "music"}},
		{a, event.Item{ID: "x", Category: "film"}}, // a replacement is a change too
		{b, event.Item{ID: "z:1", Category: "books", Tags: []string{}, Available: true}},
	}
	var want []event.Item
	for _, p := range puts {
		start := time.Now()
		if err := p.via.PutItem(ctx, p.it); err != nil {
			t.Fatalf("PutItem(%+v) = %v", p.it, err)
		}
		want = append(want, p.it)
		if len(p.it.Tags) == 0 {
			want[len(want)-1].Tags = nil
		}
		gotA, gotB := receive(t, chA, 1), receive(t, chB, 1)
		if took := time.Since(start); took > time.Second {
			t.Errorf("PutItem(%s) reached both nodes' callbacks after %v, want within 1s", p.it.ID, took)
		}
		if diff := cmp.Diff(want[len(want)-1:], gotA); diff != "" {
			t.Errorf("node a callback after PutItem(%s) (-want +got):\n%s", p.it.ID, diff)
		}
		if diff := cmp.Diff(want[len(want)-1:], gotB); diff != "" {
			t.Errorf("node b callback after PutItem(%s) (-want +got):\n%s", p.it.ID, diff)
		}
	}
	if got := counterValue(t, b.met.changes); got != float64(len(puts)) {
		t.Errorf("sightline_features_catalog_changes_total = %v, want %d", got, len(puts))
	}
	// A rejected put appends nothing.
	if err := a.PutItem(ctx, event.Item{ID: "bad"}); !errors.Is(err, event.ErrMissingField) {
		t.Errorf("PutItem(no category) = %v, want ErrMissingField", err)
	}
	expectNone(t, chB, 3*tailBlock)
	if n, err := a.c.XLen(ctx, a.stream).Result(); n != int64(len(puts)) || err != nil {
		t.Errorf("XLEN catalog = %d, %v, want %d", n, err, len(puts))
	}
}

// TestRedisCatalogStartPosition checks where the tail starts: after the
// puts made before the first OnItemChange (RangeItems covers those), and
// before the puts made between it and Run.
func TestRedisCatalogStartPosition(t *testing.T) {
	r := newTestRedis(t, RedisConfig{})
	other := newTestRedis(t, RedisConfig{KeyPrefix: r.cfg.KeyPrefix})
	ctx := t.Context()
	for _, id := range []string{"old1", "old2"} {
		if err := other.PutItem(ctx, event.Item{ID: id, Category: "c"}); err != nil {
			t.Fatal(err)
		}
	}
	ch := make(chan event.Item, 10)
	r.OnItemChange(func(it event.Item) { ch <- it })
	if err := other.PutItem(ctx, event.Item{ID: "between", Category: "c"}); err != nil {
		t.Fatal(err)
	}
	runTail(t, r)
	if err := other.PutItem(ctx, event.Item{ID: "after", Category: "c"}); err != nil {
		t.Fatal(err)
	}
	if got, want := ids(receive(t, ch, 2)), []string{"between", "after"}; !slices.Equal(got, want) {
		t.Errorf("item changes seen = %v, want %v", got, want)
	}
	expectNone(t, ch, 3*tailBlock)

	// A store whose Run starts before any OnItemChange starts at the end.
	late := newTestRedis(t, RedisConfig{KeyPrefix: r.cfg.KeyPrefix})
	lateCh := make(chan event.Item, 10)
	runTail(t, late)
	late.OnItemChange(func(it event.Item) { lateCh <- it })
	if err := other.PutItem(ctx, event.Item{ID: "last", Category: "c"}); err != nil {
		t.Fatal(err)
	}
	if got := ids(receive(t, lateCh, 1)); !slices.Equal(got, []string{"last"}) {
		t.Errorf("late store's item changes = %v, want [last]", got)
	}
}

// TestRedisCatalogTailRestart stops the tail, puts items meanwhile, and
// starts it again: it resumes after the last entry it delivered, so
// nothing is lost and nothing is seen twice.
func TestRedisCatalogTailRestart(t *testing.T) {
	r := newTestRedis(t, RedisConfig{})
	other := newTestRedis(t, RedisConfig{KeyPrefix: r.cfg.KeyPrefix})
	ctx := t.Context()
	ch := make(chan event.Item, 10)
	r.OnItemChange(func(it event.Item) { ch <- it })
	stop := runTail(t, r)
	if err := other.PutItem(ctx, event.Item{ID: "before", Category: "c"}); err != nil {
		t.Fatal(err)
	}
	receive(t, ch, 1)
	stop()
	for _, id := range []string{"while1", "while2"} {
		if err := other.PutItem(ctx, event.Item{ID: id, Category: "c"}); err != nil {
			t.Fatal(err)
		}
	}
	runTail(t, r)
	if got, want := ids(receive(t, ch, 2)), []string{"while1", "while2"}; !slices.Equal(got, want) {
		t.Errorf("item changes after the restart = %v, want %v", got, want)
	}
	expectNone(t, ch, 3*tailBlock)
}

// TestRedisCatalogRunCancel checks that Run returns promptly once its ctx
// is done, while blocked waiting for entries, and that a second concurrent
// Run is refused.
func TestRedisCatalogRunCancel(t *testing.T) {
	r := newTestRedis(t, RedisConfig{})
	r.OnItemChange(func(event.Item) {})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	// Wait until the tail is blocked in XREAD: a second Run is then refused.
	for !r.tail.running.Load() {
		time.Sleep(time.Millisecond)
	}
	if err := r.Run(t.Context()); err == nil {
		t.Error("a second concurrent Run() = nil, want an error")
	}
	time.Sleep(tailBlock / 2) // now blocked in XREAD
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run() = %v after cancel, want nil", err)
		}
		if took := time.Since(start); took > tailBlock+250*time.Millisecond {
			t.Errorf("Run() returned %v after cancel, want within %v", took, tailBlock)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run() did not return within 5s of cancel")
	}
}

// TestRedisCatalogResync trims the stream past the tail's position while
// the tail is stopped: on restart it reloads the whole catalog, once.
func TestRedisCatalogResync(t *testing.T) {
	r := newTestRedis(t, RedisConfig{})
	other := newTestRedis(t, RedisConfig{KeyPrefix: r.cfg.KeyPrefix})
	ctx := t.Context()
	ch := make(chan event.Item, 100)
	r.OnItemChange(func(it event.Item) { ch <- it })
	for i := range 5 {
		if err := other.PutItem(ctx, event.Item{ID: fmt.Sprint("i", i), Category: "c"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.c.XTrimMaxLen(ctx, r.stream, 0).Err(); err != nil { // as MAXLEN does for a tail far behind
		t.Fatal(err)
	}
	runTail(t, r)
	got := ids(receive(t, ch, 5))
	slices.Sort(got)
	if want := []string{"i0", "i1", "i2", "i3", "i4"}; !slices.Equal(got, want) {
		t.Errorf("item changes after the trim = %v, want the whole catalog %v", got, want)
	}
	if err := other.PutItem(ctx, event.Item{ID: "new", Category: "c"}); err != nil {
		t.Fatal(err)
	}
	if got := ids(receive(t, ch, 1)); !slices.Equal(got, []string{"new"}) {
		t.Errorf("item change after the resync = %v, want [new]", got)
	}
	if n := counterValue(t, r.met.resyncs); n != 1 {
		t.Errorf("sightline_features_catalog_resyncs_total = %v, want 1", n)
	}
}

// levelCounter is a slog handler that counts records by level.
type levelCounter struct {
	mu sync.Mutex
	n  map[slog.Level]int
}

func (h *levelCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *levelCounter) Handle(_ context.Context, rec slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == nil {
		h.n = map[slog.Level]int{}
	}
	h.n[rec.Level]++
	return nil
}
func (h *levelCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *levelCounter) WithGroup(string) slog.Handler      { return h }
func (h *levelCounter) count(l slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[l]
}

// TestRedisCatalogOutage runs the tail against a server that is down for a
// minute (of synctest time): Run keeps retrying without returning, logs a
// WARN at most every 5s, counts every failure, and returns once canceled.
func TestRedisCatalogOutage(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	synctest.Test(t, func(t *testing.T) {
		logs := &levelCounter{}
		r, err := NewRedis(RedisConfig{Addr: addr, Logger: slog.New(logs)})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			r.Close()
			// go-redis's pool redials in the background with 1s sleeps;
			// let those goroutines see the closed pool and end inside
			// the bubble.
			time.Sleep(5 * time.Second)
		}()
		r.OnItemChange(func(event.Item) {}) // cannot read the stream's end: starts from 0-0
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		const outage = time.Minute
		time.Sleep(outage)
		select {
		case err := <-done:
			t.Fatalf("Run() = %v during the outage, want it to keep retrying", err)
		default:
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v after cancel, want nil", err)
		}
		failures := counterValue(t, r.met.errors.WithLabelValues(opTail, "error")) +
			counterValue(t, r.met.errors.WithLabelValues(opTail, "timeout"))
		// Backoff doubles from 50ms to at most 2s (with jitter down to half).
		if minFailures := float64(outage / tailMaxBackoff); failures < minFailures {
			t.Errorf("catalog_tail failures counted = %v in %v, want >= %v", failures, outage, minFailures)
		}
		// One WARN from OnItemChange, then at most one per 5s from Run.
		if warns, most := logs.count(slog.LevelWarn), 1+int(outage/tailWarnEvery)+1; warns < 2 || warns > most {
			t.Errorf("WARN lines = %d in %v of outage, want 2..%d", warns, outage, most)
		}
	})
}

// proxy forwards TCP connections to a server and can cut them all, as a
// network partition or a restarting server does.
type proxy struct {
	t        *testing.T
	addr     string // where it listens, the same across restore
	upstream string

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
	wg    sync.WaitGroup
}

func newProxy(t *testing.T, upstream string) *proxy {
	p := &proxy{t: t, upstream: upstream, addr: "127.0.0.1:0"}
	p.restore()
	p.addr = p.ln.Addr().String()
	t.Cleanup(p.cut)
	return p
}

// restore listens again and forwards new connections.
func (p *proxy) restore() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy listen on %s: %v", p.addr, err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.upstream)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			// A copy ends with an error when the test cuts the link: that
			// is the point of the proxy.
			p.wg.Go(func() { _, _ = io.Copy(u, c); u.Close() })
			p.wg.Go(func() { _, _ = io.Copy(c, u); c.Close() })
		}
	})
}

// cut closes the listener and every forwarded connection, and waits for
// the forwarding goroutines.
func (p *proxy) cut() {
	p.mu.Lock()
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// TestRedisCatalogOutageResume cuts the tail's connection to a real server
// while other nodes keep putting items: once the server is reachable again
// the tail resumes after the last entry it delivered.
func TestRedisCatalogOutageResume(t *testing.T) {
	writer := newTestRedis(t, RedisConfig{})
	p := newProxy(t, redisAddr(t))
	logs := &levelCounter{}
	r, err := NewRedis(RedisConfig{Addr: p.addr, KeyPrefix: writer.cfg.KeyPrefix, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	ctx := t.Context()
	ch := make(chan event.Item, 10)
	r.OnItemChange(func(it event.Item) { ch <- it })
	runTail(t, r)
	if err := writer.PutItem(ctx, event.Item{ID: "before", Category: "c"}); err != nil {
		t.Fatal(err)
	}
	receive(t, ch, 1)

	p.cut()
	for _, id := range []string{"during1", "during2"} {
		if err := writer.PutItem(ctx, event.Item{ID: id, Category: "c"}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the tail has failed at least once.
	for deadline := time.Now().Add(5 * time.Second); counterValue(t, r.met.errors.WithLabelValues(opTail, "error"))+
		counterValue(t, r.met.errors.WithLabelValues(opTail, "timeout")) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the tail counted no failure within 5s of the cut")
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.restore()
	if got, want := ids(receive(t, ch, 2)), []string{"during1", "during2"}; !slices.Equal(got, want) {
		t.Errorf("item changes after the outage = %v, want %v", got, want)
	}
	if logs.count(slog.LevelWarn) == 0 {
		t.Error("no WARN line for the failing tail")
	}
	expectNone(t, ch, 3*tailBlock)
}

func TestDecodeEntry(t *testing.T) {
	tests := []struct {
		name    string
		vals    map[string]any
		want    event.Item
		wantErr bool
	}{
		{"item", map[string]any{"id": "a", "category": "c", "available": "1", "tags": `["x"]`}, event.Item{ID: "a", Category: "c", Available: true, Tags: []string{"x"}}, false},
		{"no id", map[string]any{"category": "c"}, event.Item{}, true},
		{"bad tags", map[string]any{"id": "a", "category": "c", "tags": "[x"}, event.Item{}, true},
		{"not a string", map[string]any{"id": 1}, event.Item{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeEntry(tc.vals)
			if (err != nil) != tc.wantErr || !cmp.Equal(got, tc.want) {
				t.Errorf("decodeEntry(%v) = %+v, %v, want %+v, error %v", tc.vals, got, err, tc.want, tc.wantErr)
			}
		})
	}
}
