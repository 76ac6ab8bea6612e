package cluster

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/ingest"
	"github.com/sightline/sightline/internal/sim"
)

// Shape of the broker restart scenario.
const (
	// shortOutage is within the node's produce timeout (10s): the
	// producer rides it out. longOutage is past it: the node answers
	// 503 and the client sends the batch again.
	shortOutage     = 2 * time.Second
	longOutage      = 12 * time.Second
	restartUsers    = 300
	restartItems    = 120
	restartSenders  = 2
	beforeBrokerOut = 1500 * time.Millisecond
	afterBrokerBack = 10 * time.Second // bound on the producer's reconnection
	afterResume     = 2 * time.Second  // traffic once acknowledgements resumed
)

// TestBrokerRestart kills the Kafka-protocol broker (SIGKILL) twice while
// an API node takes events, and starts it again on the same port and data
// directory: after 2s the node's producer rides out the outage; after 12s
// (past the produce timeout) the node answers 503 and the client sends the
// batch again (event ids make that safe). In the end every event acknowledged
// with 202 is in the topic and learned exactly once by the trainer. The
// cluster is one broker, one redis-server, one trainer and one API node.
func TestBrokerRestart(t *testing.T) {
	redisBin := os.Getenv("SIGHTLINE_TEST_REDIS_SERVER")
	if redisBin == "" {
		t.Skip("SIGHTLINE_TEST_REDIS_SERVER unset (the path of redis-server; scripts/test sets it)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	run := randomHex(t, 4)
	c := &cluster{
		t: t, ctx: ctx, run: run, dir: dir, logDir: logDir,
		group: "sightline-" + run,
		hc:    &http.Client{Timeout: 2 * time.Second},
		world: sim.NewWorld(sim.WorldConfig{Seed: 5, Users: restartUsers, Items: restartItems}),
	}
	t.Cleanup(c.hc.CloseIdleConnections)
	bins := buildBinaries(t, dir)
	c.bin = bins["sightline"]
	c.flags = serveFlags(t, c.bin)
	c.roles = c.flags["role"]
	c.requireRoles(t)

	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	brokerData := filepath.Join(dir, "broker")
	startBroker := func(name string) *proc {
		p, ready := startProc(t, logDir, procConfig{
			name: name, bin: bins["kfakebroker"], env: childEnv(nil),
			args: []string{"-port", strconv.Itoa(port), "-data-dir", brokerData},
			ready: func(line string) string {
				addr, _ := strings.CutPrefix(line, "listening ")
				return addrIf(line, addr)
			},
		})
		c.broker = waitReady(t, p, ready, 20*time.Second)
		return p
	}
	broker := startBroker("kfakebroker-1")
	c.procs = append(c.procs, broker)
	c.redis = startRedis(t, redisBin, filepath.Join(dir, "redis"), logDir)
	trainer := c.startNode("trainer-1", "trainer")
	c.trainers = []*node{trainer}
	if why, ok := pollUntil(ctx, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
		s, err := c.stats(trainer)
		if err != nil {
			return false, err.Error()
		}
		return s.Active != nil && *s.Active, "trainer-1 active=" + fmtBool(s.Active)
	}); !ok {
		t.Fatalf("trainer-1 did not become active: %s", why)
	}
	api := c.startNode("api-a", "api")
	c.api = []*node{api}
	c.procs = append(c.procs, trainer.p, api.p)
	start := time.Now()
	t.Cleanup(func() {
		if t.Failed() {
			c.reportLogs(t, start)
		}
	})
	if err := c.world.Load(ctx, api.c); err != nil {
		t.Fatalf("load the world: %v", err)
	}
	if why, ok := pollUntil(ctx, 20*time.Second, 50*time.Millisecond, func() (bool, string) {
		r, err := api.c.Recommend(ctx, client.RecommendRequest{UserID: sim.UserID(1), Count: 5, Context: client.Context{Channel: "web"}})
		if err != nil {
			return false, err.Error()
		}
		return len(r.Items) > 0, fmtRec(r)
	}); !ok {
		t.Fatalf("api-a serves no items after the world was loaded: %s", why)
	}
	_, s0 := c.quiesce(t)

	// Senders: a recommendation, then its impressions and a click, sent
	// until acknowledged (a client without retries of its own, so that
	// every answer is seen here).
	events, err := client.New(api.base, client.WithHTTPClient(&http.Client{Timeout: 20 * time.Second}),
		client.WithRetry(client.RetryPolicy{MaxAttempts: 1}))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		acked    = map[string]bool{}
		answers  = map[string]int{}
		firstBad []string
		ackTimes []time.Time // of every 202
	)
	sendCtx, stopSending := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for g := range restartSenders {
		wg.Go(func() {
			for i := 0; sendCtx.Err() == nil; i++ {
				u := sim.UserID((i*37 + g*101) % restartUsers)
				r, err := api.c.Recommend(ctx, client.RecommendRequest{UserID: u, Count: 5, Context: client.Context{Channel: "web"}})
				if err != nil || len(r.Items) == 0 {
					mu.Lock()
					answers["recommend "+statusOf(err)]++
					mu.Unlock()
					continue
				}
				evs := []client.Event{{EventID: fmt.Sprintf("br-%s-%d-%d-c", run, g, i), Type: client.TypeClick,
					UserID: u, ItemID: r.Items[0].ItemID, RequestID: r.RequestID, Channel: "web"}}
				for k, it := range r.Items {
					evs = append(evs, client.Event{EventID: fmt.Sprintf("br-%s-%d-%d-%d", run, g, i, k), Type: client.TypeImpression,
						UserID: u, ItemID: it.ItemID, RequestID: r.RequestID, Channel: "web"})
				}
				// Until acknowledged, even after the stop: a batch
				// given up on could still be stored.
				for ctx.Err() == nil {
					_, err := events.SendEvents(ctx, evs)
					mu.Lock()
					if err == nil {
						answers["202"]++
						ackTimes = append(ackTimes, time.Now())
						for _, ev := range evs {
							acked[ev.EventID] = true
						}
						mu.Unlock()
						break
					}
					answers[statusOf(err)]++
					if len(firstBad) < 5 {
						firstBad = append(firstBad, time.Now().Format("15:04:05.000")+" "+err.Error())
					}
					mu.Unlock()
					ctxSleep(ctx, 100*time.Millisecond)
				}
			}
		})
	}
	ackedNow := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	ctxSleep(ctx, beforeBrokerOut)
	before := ackedNow()
	for i, down := range []time.Duration{shortOutage, longOutage} {
		broker.kill()
		killed := time.Now()
		t.Logf("killed the broker (kill -9) with %d events acknowledged; down for %v", ackedNow(), down)
		ctxSleep(ctx, down)
		broker = startBroker(fmt.Sprintf("kfakebroker-%d", i+2))
		c.procs = append(c.procs, broker)
		back, n := time.Now(), ackedNow()
		t.Logf("broker started again on %s %v after the kill", c.broker, back.Sub(killed).Round(time.Millisecond))
		// Acknowledgements resume within afterBrokerBack.
		why, ok := pollUntil(ctx, afterBrokerBack, 20*time.Millisecond, func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			return len(acked) > n && ackTimes[len(ackTimes)-1].After(back), fmt.Sprintf("%d events acknowledged", len(acked))
		})
		if !ok {
			t.Errorf("no event acknowledged in the %v after the broker came back: %s", afterBrokerBack, why)
		} else {
			t.Logf("acknowledgements resumed %v after the broker came back", time.Since(back).Round(time.Millisecond))
		}
		ctxSleep(ctx, afterResume)
	}
	stopSending()
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("out of time: %v", ctx.Err())
	}
	mu.Lock()
	t.Logf("answers to the senders: %v; first failures: %q", answers, firstBad)
	mu.Unlock()
	if len(acked) <= before {
		t.Fatalf("no event acknowledged after the broker restart (%d before the kill, %d in all): answers %v", before, len(acked), answers)
	}
	for _, n := range []*node{trainer, api} {
		if n.p.exited() {
			t.Errorf("%s exited during the broker restart (%s); want it to ride it out", n.name, n.p.exitState())
		}
	}

	// Every acknowledged event is in the topic.
	inTopic := topicEventIDs(ctx, t, c.broker, "sightline-events")
	missing, dupInTopic := 0, 0
	for id := range acked {
		switch n := inTopic[id]; {
		case n == 0:
			missing++
			if missing <= 5 {
				t.Errorf("acknowledged event %s is not in the topic", id)
			}
		case n > 1:
			dupInTopic++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged events are not in the topic after the broker restart", missing, len(acked))
	}
	// Learned exactly once.
	want := s0.ModelUpdates + uint64(len(acked))
	why, ok := pollUntil(ctx, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
		s, err := c.stats(trainer)
		if err != nil {
			return false, err.Error()
		}
		return s.ModelUpdates >= want, fmt.Sprintf("model_updates %d, want %d", s.ModelUpdates, want)
	})
	if !ok {
		t.Errorf("the trainer did not learn every acknowledged event within 30s: %s", why)
	}
	_, fs := c.quiesce(t)
	if got := fs.ModelUpdates - s0.ModelUpdates; got != uint64(len(acked)) {
		t.Errorf("the trainer learned %d events over the broker restart, want the %d acknowledged, each once (%d records in the topic, %d acknowledged ids more than once there)",
			got, len(acked), sumCounts(inTopic), dupInTopic)
	}
	t.Logf("%d events acknowledged (%d before the kill), all in the topic (%d of them more than once there), learned once each", len(acked), before, dupInTopic)
}

// topicEventIDs reads topic from its start to its current end and counts
// the records of each event id.
func topicEventIDs(ctx context.Context, t *testing.T, broker, topic string) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := endOffsets(ctx, cl, topic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	ids := map[string]int{}
	pos := map[int32]int64{}
	done := func() bool {
		for p, end := range ends {
			if pos[p] < end {
				return false
			}
		}
		return true
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for !done() {
		fetches := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			t.Fatalf("read %s: %v (positions %v, ends %v)", topic, rctx.Err(), pos, ends)
		}
		fetches.EachError(func(_ string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			pos[r.Partition] = r.Offset + 1
			ev, err := ingest.DecodeRecord(r.Value)
			if err != nil {
				t.Errorf("record %s/%d@%d: %v", topic, r.Partition, r.Offset, err)
				return
			}
			ids[ev.ID]++
		})
	}
	return ids
}

// endOffsets returns the end offset of every partition of topic.
func endOffsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			out[o.Partition] = o.Offset
		}
	})
	return out, nil
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
