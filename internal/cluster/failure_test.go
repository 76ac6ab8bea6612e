package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/sim"
)

// Durations of the failure scenarios.
const (
	redisOutage   = 10 * time.Second
	beforeFault   = 2 * time.Second // healthy traffic before a fault
	afterTakeover = 4 * time.Second // traffic after the standby took over
	afterAPIKill  = 5 * time.Second
)

// startProbers runs the probers until the returned stop is called; stop
// waits for them.
func startProbers(ctx context.Context, ps ...*prober) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { p.run(ctx) })
	}
	return func() { cancel(); wg.Wait() }
}

// testRedisOutage stops Redis for 10 s under traffic on both API nodes
// (recommendations on each, their impressions through the other): every
// request is answered (0 5xx), the fallbacks are counted by the nodes, and
// the cluster recovers without restarting any node.
func (c *cluster) testRedisOutage(t *testing.T) {
	a, b := c.api[0], c.api[1]
	fb0 := make([]float64, len(c.api))
	for i, n := range c.api {
		v, err := c.metricSum(n, "sightline_fallbacks_total")
		if err != nil {
			t.Fatal(err)
		}
		fb0[i] = v
	}
	var before *stats
	if c.roles {
		_, before = c.quiesce(t)
	}
	pids := map[string]int{}
	for _, n := range append(slices.Clone(c.api), c.trainers...) {
		pids[n.name] = n.p.cmd.Process.Pid
	}
	pa, pb := newProber(c, a, b, "redis-a"), newProber(c, b, a, "redis-b")
	stop := startProbers(c.ctx, pa, pb)
	ctxSleep(c.ctx, beforeFault)
	c.redis.stop()
	down := time.Now()
	t.Logf("redis-server stopped (SHUTDOWN SAVE); restarting it on %s in %v", c.redis.addr, redisOutage)
	ctxSleep(c.ctx, redisOutage)
	c.redis.start()
	up := time.Now()
	t.Logf("redis-server back after %v", up.Sub(down).Round(time.Millisecond))

	// Recovery: each API node serves from the model again (no fallback).
	for _, n := range c.api {
		var last *client.Recommendation
		why, ok := pollUntil(c.ctx, 20*time.Second, 50*time.Millisecond, func() (bool, string) {
			r, err := n.c.Recommend(c.ctx, client.RecommendRequest{UserID: sim.UserID(3), Count: 10, Context: client.Context{Channel: "web"}})
			if err != nil {
				return false, err.Error()
			}
			last = r
			return r.Fallback == nil && len(r.Items) > 0, fmtRec(r)
		})
		if !ok {
			t.Errorf("%s still falls back 20s after Redis came back: %s", n.name, why)
		} else {
			t.Logf("%s serves without fallback %v after Redis came back (%s)", n.name, time.Since(up).Round(time.Millisecond), fmtRec(last))
		}
	}
	// Recovery: a trainer holds the lease again, learns the events sent
	// meanwhile and publishes a new version that both API nodes serve.
	if c.roles {
		why, ok := pollUntil(c.ctx, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
			tn, s, err := c.activeTrainer()
			if err != nil {
				return false, err.Error()
			}
			if s.ModelUpdates <= before.ModelUpdates || s.ModelVersion == before.ModelVersion {
				return false, fmt.Sprintf("%s: model_updates %d → %d, version %q → %q", tn.name, before.ModelUpdates, s.ModelUpdates, before.ModelVersion, s.ModelVersion)
			}
			for _, n := range c.api {
				as, err := c.stats(n)
				if err != nil {
					return false, err.Error()
				}
				if as.ModelVersion != s.ModelVersion {
					return false, fmt.Sprintf("%s serves %q, %s published %q", n.name, as.ModelVersion, tn.name, s.ModelVersion)
				}
			}
			return true, fmt.Sprintf("%s active, version %q served by both API nodes", tn.name, s.ModelVersion)
		})
		if !ok {
			t.Errorf("no trainer learned and published again within 30s of Redis coming back: %s", why)
		} else {
			t.Logf("learning resumed %v after Redis came back: %s", time.Since(up).Round(time.Millisecond), why)
		}
	}
	stop()

	for _, p := range []*prober{pa, pb} {
		t.Logf("%v", p)
		p.checkServed(t.Errorf)
	}
	for i, n := range c.api {
		v, err := c.metricSum(n, "sightline_fallbacks_total")
		if err != nil {
			t.Error(err)
			continue
		}
		p := []*prober{pa, pb}[i]
		p.mu.Lock()
		seen := p.fallbacks
		p.mu.Unlock()
		t.Logf("%s: sightline_fallbacks_total %.0f → %.0f; the prober saw %d fallbacks", n.name, fb0[i], v, seen)
		if seen == 0 {
			t.Errorf("%s answered no request with a fallback while Redis was down for %v: the outage did not reach the serving path", n.name, redisOutage)
		}
		if v-fb0[i] < float64(seen) {
			t.Errorf("%s: sightline_fallbacks_total grew by %.0f, want ≥ the %d fallbacks it answered", n.name, v-fb0[i], seen)
		}
	}
	for _, n := range append(slices.Clone(c.api), c.trainers...) {
		if n.p.exited() || n.p.cmd.Process.Pid != pids[n.name] {
			t.Errorf("%s was not running throughout (%s): want recovery without restarts", n.name, n.p.exitState())
		}
	}
}

// testTrainerFailover kills the active trainer with SIGKILL while events
// flow through both API nodes: the standby takes over, the final model
// holds every acknowledged event exactly once, and the API nodes answer
// every request meanwhile from the last published model.
func (c *cluster) testTrainerFailover(t *testing.T) {
	c.requireRoles(t)
	active, s0 := c.quiesce(t)
	var standby *node
	for _, n := range c.trainers {
		if n != active && !n.p.exited() {
			standby = n
		}
	}
	if standby == nil {
		t.Fatalf("no standby trainer besides %s", active.name)
	}
	// The published snapshot holds every update so far: the API nodes
	// serve the trainer's version.
	if why, ok := pollUntil(c.ctx, 5*time.Second, 50*time.Millisecond, func() (bool, string) {
		for _, n := range c.api {
			s, err := c.stats(n)
			if err != nil {
				return false, err.Error()
			}
			if s.ModelVersion != s0.ModelVersion {
				return false, fmt.Sprintf("%s serves %q, %s has %q", n.name, s.ModelVersion, active.name, s0.ModelVersion)
			}
		}
		return true, ""
	}); !ok {
		t.Errorf("before the kill, the API nodes do not serve the trainer's settled version: %s", why)
	}
	a, b := c.api[0], c.api[1]
	pa, pb := newProber(c, a, b, "failover-a"), newProber(c, b, a, "failover-b")
	stop := startProbers(c.ctx, pa, pb)
	ctxSleep(c.ctx, beforeFault)
	active.p.kill()
	killed := time.Now()
	t.Logf("killed %s (kill -9) with %d model updates settled before the stream; %s is the standby", active.name, s0.ModelUpdates, standby.name)
	var took time.Duration
	why, ok := pollUntil(c.ctx, 20*time.Second, 50*time.Millisecond, func() (bool, string) {
		s, err := c.stats(standby)
		if err != nil {
			return false, err.Error()
		}
		return s.Active != nil && *s.Active, fmt.Sprintf("%s active=%s", standby.name, fmtBool(s.Active))
	})
	took = time.Since(killed)
	if !ok {
		stop()
		t.Fatalf("the standby did not take over within 20s of the kill (lease %v): %s; %v; %v", trainerLease, why, pa, pb)
	}
	t.Logf("%s active %v after the kill (lease %v)", standby.name, took.Round(time.Millisecond), trainerLease)
	ctxSleep(c.ctx, afterTakeover)
	stop()
	for _, p := range []*prober{pa, pb} {
		t.Logf("%v", p)
		p.checkServed(t.Errorf)
	}
	acked := uint64(pa.acked() + pb.acked())
	if acked == 0 {
		t.Fatal("no event was acknowledged during the failover")
	}
	want := s0.ModelUpdates + acked
	why, ok = pollUntil(c.ctx, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
		s, err := c.stats(standby)
		if err != nil {
			return false, err.Error()
		}
		return s.ModelUpdates >= want, fmt.Sprintf("%s model_updates %d, want %d = %d + %d acknowledged", standby.name, s.ModelUpdates, want, s0.ModelUpdates, acked)
	})
	if !ok {
		t.Errorf("the new active trainer did not apply every acknowledged event within 30s: %s", why)
	}
	fn, fs := c.quiesce(t)
	if fn != standby {
		t.Errorf("after the failover %s is active, want %s", fn.name, standby.name)
	}
	if got := fs.ModelUpdates - s0.ModelUpdates; got != acked {
		t.Errorf("%s model_updates grew by %d over the failover, want %d: every acknowledged event applied exactly once (%d more: applied twice; fewer: lost)",
			fn.name, got, acked, int64(got)-int64(acked))
	} else {
		t.Logf("%d acknowledged events, %d model updates: each applied exactly once across the failover", acked, got)
	}
	// The API nodes follow the new trainer's publications.
	if why, ok := pollUntil(c.ctx, 2*time.Second+2*publishInterval, 50*time.Millisecond, func() (bool, string) {
		for _, n := range c.api {
			s, err := c.stats(n)
			if err != nil {
				return false, err.Error()
			}
			if s.ModelVersion != fs.ModelVersion {
				return false, fmt.Sprintf("%s serves %q, %s published %q", n.name, s.ModelVersion, fn.name, fs.ModelVersion)
			}
		}
		return true, ""
	}); !ok {
		t.Errorf("the API nodes do not serve the new active trainer's version: %s", why)
	}
}

// testAPINodeLoss kills API node B with SIGKILL under traffic: node A
// answers every request before and after, and (with a trainer) the events
// it acknowledged are all learned.
func (c *cluster) testAPINodeLoss(t *testing.T) {
	a, b := c.api[0], c.api[1]
	var s0 *stats
	if c.roles {
		_, s0 = c.quiesce(t)
	}
	pa := newProber(c, a, a, "apikill-a")
	pb := newProber(c, b, nil, "apikill-b")
	stopA := startProbers(c.ctx, pa)
	stopB := startProbers(c.ctx, pb)
	ctxSleep(c.ctx, beforeFault)
	stopB()
	b.p.kill()
	t.Logf("killed %s (kill -9: %s); %s keeps the traffic", b.name, b.p.exitState(), a.name)
	ctxSleep(c.ctx, afterAPIKill)
	stopA()
	t.Logf("%v", pa)
	t.Logf("%v", pb)
	pa.checkServed(t.Errorf)
	pb.checkServed(t.Errorf) // before the kill
	if !c.roles {
		return
	}
	acked := uint64(pa.acked())
	_, fs := c.quiesce(t)
	if got := fs.ModelUpdates - s0.ModelUpdates; got != acked {
		t.Errorf("the trainer's model_updates grew by %d, want the %d events %s acknowledged", got, acked, a.name)
	}
}
