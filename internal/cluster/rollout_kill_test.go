package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
	"github.com/sightline/sightline/internal/sim"
)

// Shape of the rollout cluster: a world small enough that its load, the
// challengers' training and the traffic the guardrails need fit in about a
// minute.
const (
	rolloutUsers = 600
	rolloutItems = 200
	// goodTraining is the rounds the good challenger learns the world's
	// ground truth: far more updates than the champion learns from the
	// test's traffic, so the updates a node serves say which model it is.
	goodTraining = 12_000
)

// rolloutFlags are the trainers' rollout settings: checks every 200 ms,
// guardrails that judge on the few thousand impressions the test sends,
// and a latency slack a loaded test machine's p99 noise stays within
// (the latency guardrail is internal/rollout's to test).
var rolloutFlags = []string{
	"--rollout-check-every", "200ms",
	"--rollout-min-impressions", "200",
	"--rollout-non-inferiority", "0.95",
	"--rollout-max-wait", "2m",
	"--rollout-latency-slack", "100ms",
}

// rolloutNode is a node of the rollout cluster. Its output watcher reports
// its serving address and, once armed, kills it (SIGKILL, from the goroutine
// that reads its output) the moment it logs that a promotion begins.
type rolloutNode struct {
	*node
	addr      chan string
	pid       atomic.Int64
	killArmed atomic.Bool
	killed    chan struct{} // closed when the watcher killed it
}

// TestClusterRolloutKill9 runs guarded rollouts on a cluster of processes
// (a Kafka-protocol broker, redis-server, trainers and two API nodes on
// 127.0.0.1) and kills the trainer running them with SIGKILL:
//
//   - mid-canary, with a broken challenger: the standby takes over,
//     resumes the rollout from the registry (stage, share, the guardrails'
//     totals) while the API nodes keep serving the challenger, the
//     guardrails roll it back on the standby, and both API nodes stop
//     serving it;
//   - the moment the promotion of a good challenger begins: the next
//     trainer finishes it from the registry, and once it settles both API
//     nodes serve the promoted model to every user, none the challenger
//     variant or the old champion.
func TestClusterRolloutKill9(t *testing.T) {
	redisBin := os.Getenv("SIGHTLINE_TEST_REDIS_SERVER")
	if redisBin == "" {
		t.Skip("SIGHTLINE_TEST_REDIS_SERVER unset (the path of redis-server; scripts/test sets it)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	began := time.Now()
	c, nodes := newRolloutCluster(ctx, t, redisBin)
	t1, t2 := nodes["trainer-1"], nodes["trainer-2"]
	dir := t.TempDir()
	bad, good := filepath.Join(dir, "bad.snap"), filepath.Join(dir, "good.snap")
	goodUpdates := writeChallengers(t, c.world, bad, good)
	t.Logf("%v: cluster up, challengers written (the good one learned %d updates)", time.Since(began).Round(time.Millisecond), goodUpdates)

	tr := &rolloutTraffic{c: c, rng: rand.New(rand.NewPCG(7, 12))}
	tr.send(t, 300)
	c.quiesce(t)

	// 1. A broken challenger in canary; its trainer is killed mid-rollout.
	st := c.startRollout(t, t1.node, bad, `"steps": [0.2, 0.5], "step_hold": "1h"`)
	if st.Stage != "canary" || st.Share != 0.2 {
		t.Fatalf("start: rollout %s at %v, want canary at 0.2", st.Stage, st.Share)
	}
	for _, a := range c.api {
		c.waitServed(t, a, func(v map[string]int) bool { return v["challenger"] > 0 }, "the challenger to some users")
	}
	tr.send(t, 150) // far from the 50 clicks the calibration guardrail needs
	var before rolloutState
	why, ok := pollUntil(ctx, 10*time.Second, 100*time.Millisecond, func() (bool, string) {
		// The registry's copy, as an API node reads it.
		if err := c.getJSON(c.api[0], "/v1/rollouts", &before); err != nil {
			return false, err.Error()
		}
		return before.Stage == "canary" && before.Arms[1].Decisions > 0, fmt.Sprintf("registry: %s, arms %+v", before.Stage, before.Arms)
	})
	if !ok {
		t.Fatalf("the registry does not hold the rollout's progress: %s", why)
	}
	t1.p.kill()
	killed := time.Now()
	t.Logf("%v: killed trainer-1 (kill -9) at canary 20%%, challenger arm %+v in the registry", time.Since(began).Round(time.Millisecond), before.Arms[1])
	for _, a := range c.api {
		if v := c.served(t, a); v["challenger"] == 0 {
			t.Errorf("%s stopped serving the challenger when its trainer died: %v", a.name, v)
		}
	}
	var resumed rolloutState
	why, ok = pollUntil(ctx, 20*time.Second, 100*time.Millisecond, func() (bool, string) {
		s, err := c.stats(t2.node)
		if err != nil {
			return false, err.Error()
		}
		if err := c.getJSON(t2.node, "/v1/rollouts", &resumed); err != nil {
			return false, err.Error()
		}
		return s.Active != nil && *s.Active && resumed.Stage == "canary", fmt.Sprintf("trainer-2 active=%s, rollout %s", fmtBool(s.Active), resumed.Stage)
	})
	if !ok {
		t.Fatalf("trainer-2 did not take the rollout over within 20s: %s", why)
	}
	t.Logf("%v: trainer-2 resumed the rollout %v after the kill: %s at %v, challenger arm %+v",
		time.Since(began).Round(time.Millisecond), time.Since(killed).Round(time.Millisecond), resumed.Stage, resumed.Share, resumed.Arms[1])
	if resumed.Share != 0.2 || resumed.Step != 0 || resumed.Arms[1].Decisions < before.Arms[1].Decisions {
		t.Errorf("trainer-2 resumed at share %v step %d with challenger arm %+v, want 0.2, step 0, and at least the %+v the registry held",
			resumed.Share, resumed.Step, resumed.Arms[1], before.Arms[1])
	}
	var rolled rolloutState
	why, ok = pollUntil(ctx, 60*time.Second, 0, func() (bool, string) {
		if err := c.getJSON(t2.node, "/v1/rollouts", &rolled); err != nil {
			return false, err.Error()
		}
		if rolled.Stage != "canary" {
			return true, ""
		}
		tr.send(t, 100)
		return false, fmt.Sprintf("canary; checks %s", fmtChecks(rolled.Checks))
	})
	last := rolled.last()
	if !ok || rolled.Stage != "rolled_back" || !slices.Contains([]string{"ctr", "calibration", "latency_p99", "fallback_rate", "null_feature_rate"}, last.Reason) {
		t.Fatalf("the broken challenger was not rolled back by a guardrail on trainer-2 (%s): stage %s, last transition %+v", why, rolled.Stage, last)
	}
	t.Logf("%v: trainer-2 rolled the challenger back (%s: %s)", time.Since(began).Round(time.Millisecond), last.Reason, last.Detail)
	for _, a := range c.api {
		c.waitServed(t, a, func(v map[string]int) bool { return v["challenger"] == 0 }, "no user the challenger")
	}

	// 2. A good challenger; its trainer is killed as the promotion begins.
	t3 := c.startRolloutNode(t, "trainer-3", "trainer")
	c.trainers = append(c.trainers, t3.node)
	t2.killArmed.Store(true)
	c.startRollout(t, t2.node, good, `"steps": [0.5], "step_hold": "1s"`)
	why, _ = pollUntil(ctx, 90*time.Second, 0, func() (bool, string) {
		select {
		case <-t2.killed:
			return true, ""
		default:
		}
		var st rolloutState
		if err := c.getJSON(t2.node, "/v1/rollouts", &st); err == nil && st.Stage != "canary" {
			return true, "rollout " + string(st.Stage) + " without a promotion"
		}
		tr.send(t, 100)
		return false, fmt.Sprintf("canary; checks %s", fmtChecks(st.Checks))
	})
	select {
	case <-t2.killed:
	default:
		t.Fatalf("trainer-2 did not begin a promotion: %s", why)
	}
	<-t2.p.done
	var atKill rolloutState
	if err := c.getJSON(c.api[0], "/v1/rollouts", &atKill); err != nil {
		t.Fatal(err)
	}
	t.Logf("%v: killed trainer-2 (kill -9) on its \"rollout promoting\" line; the registry says %s", time.Since(began).Round(time.Millisecond), atKill.Stage)
	var fin rolloutState
	why, ok = pollUntil(ctx, 20*time.Second, 100*time.Millisecond, func() (bool, string) {
		s, err := c.stats(t3.node)
		if err != nil {
			return false, err.Error()
		}
		if err := c.getJSON(t3.node, "/v1/rollouts", &fin); err != nil {
			return false, err.Error()
		}
		return s.Active != nil && *s.Active && fin.Stage == "promoted", fmt.Sprintf("trainer-3 active=%s, rollout %s", fmtBool(s.Active), fin.Stage)
	})
	if !ok {
		t.Fatalf("trainer-3 did not finish the promotion within 20s of the kill: %s", why)
	}
	t.Logf("%v: trainer-3 active, rollout %s (%s)", time.Since(began).Round(time.Millisecond), fin.Stage, fin.last().Detail)
	_, ts := c.quiesce(t)
	if ts.ModelUpdates < goodUpdates {
		t.Errorf("trainer-3 learns a model of %d updates, want the promoted challenger's (≥ %d)", ts.ModelUpdates, goodUpdates)
	}
	// Settled: every API node serves trainer-3's model (the promoted one)
	// to every user, as the ftrl variant; twice, a publish interval apart.
	for round := range 2 {
		why, ok := pollUntil(ctx, 10*time.Second, 100*time.Millisecond, func() (bool, string) {
			for _, a := range c.api {
				s, err := c.stats(a)
				if err != nil {
					return false, err.Error()
				}
				if s.ModelVersion != ts.ModelVersion || s.ModelUpdates < goodUpdates {
					return false, fmt.Sprintf("%s serves %s (%d updates), trainer-3 publishes %s (%d)", a.name, s.ModelVersion, s.ModelUpdates, ts.ModelVersion, ts.ModelUpdates)
				}
			}
			return true, ""
		})
		if !ok {
			t.Fatalf("round %d: the API nodes do not serve the promoted model: %s", round, why)
		}
		for _, a := range c.api {
			versions := map[string]int{}
			for i := range rolloutUsers / 2 {
				r, err := a.c.Recommend(ctx, client.RecommendRequest{UserID: c.world.User(i).ID, Count: 5, Context: client.Context{Channel: "web"}})
				if err != nil {
					t.Fatal(err)
				}
				if r.Variant == "challenger" || (r.Variant == "ftrl" && r.ModelVersion != ts.ModelVersion) {
					versions[r.Variant+" "+r.ModelVersion]++
				}
			}
			if len(versions) > 0 {
				t.Errorf("round %d: %s serves a mix after the promotion settled: %v besides ftrl %s", round, a.name, versions, ts.ModelVersion)
			}
		}
		ctxSleep(ctx, publishInterval)
	}
	t.Logf("%v: both API nodes serve the promoted model (%s, %d updates) and nothing else", time.Since(began).Round(time.Millisecond), ts.ModelVersion, ts.ModelUpdates)
}

// newRolloutCluster starts a broker, redis-server, trainer-1 (active),
// trainer-2 and two API nodes, and loads a small world.
func newRolloutCluster(ctx context.Context, t *testing.T, redisBin string) (*cluster, map[string]*rolloutNode) {
	t.Helper()
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	run := randomHex(t, 4)
	c := &cluster{
		t: t, ctx: ctx, run: run, dir: dir, logDir: logDir, group: "sightline-" + run, roles: true,
		hc:    &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		world: sim.NewWorld(sim.WorldConfig{Seed: 12, Users: rolloutUsers, Items: rolloutItems}),
	}
	t.Cleanup(c.hc.CloseIdleConnections)
	bins := buildBinaries(t, dir)
	c.bin = bins["sightline"]
	c.flags = serveFlags(t, c.bin)
	if !c.flags["rollout-check-every"] || !c.flags["role"] {
		t.Fatal("sightline serve lacks --role or the rollout flags")
	}
	bp, bready := startProc(t, logDir, procConfig{
		name: "kfakebroker", bin: bins["kfakebroker"], env: childEnv(nil),
		ready: func(line string) string { addr, _ := strings.CutPrefix(line, "listening "); return addrIf(line, addr) },
	})
	c.procs = append(c.procs, bp)
	c.broker = waitReady(t, bp, bready, 20*time.Second)
	c.redis = startRedis(t, redisBin, filepath.Join(dir, "redis"), logDir)

	nodes := map[string]*rolloutNode{}
	nodes["trainer-1"] = c.startRolloutNode(t, "trainer-1", "trainer")
	if why, ok := pollUntil(ctx, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
		s, err := c.stats(nodes["trainer-1"].node)
		if err != nil {
			return false, err.Error()
		}
		return s.Active != nil && *s.Active, "trainer-1 active=" + fmtBool(s.Active)
	}); !ok {
		t.Fatalf("trainer-1 did not become active: %s", why)
	}
	for _, s := range []struct{ name, role string }{{"trainer-2", "trainer"}, {"api-a", "api"}, {"api-b", "api"}} {
		n := c.startRolloutNode(t, s.name, s.role)
		nodes[s.name] = n
		if s.role == "trainer" {
			c.trainers = append(c.trainers, n.node)
		} else {
			c.api = append(c.api, n.node)
		}
	}
	c.trainers = append([]*node{nodes["trainer-1"].node}, c.trainers...)
	if err := c.world.Load(ctx, c.api[0].c); err != nil {
		t.Fatalf("load the world: %v", err)
	}
	for _, a := range c.api {
		c.waitServed(t, a, func(v map[string]int) bool { return v["ftrl"] > 0 }, "the catalog")
	}
	return c, nodes
}

// startRolloutNode starts a node with the trainers' rollout flags and
// waits until it serves HTTP.
func (c *cluster) startRolloutNode(t *testing.T, name, role string) *rolloutNode {
	t.Helper()
	n := &rolloutNode{node: &node{name: name, role: role}, addr: make(chan string, 1), killed: make(chan struct{})}
	watch := func(line string) string {
		if addr := servingAddr(line); addr != "" {
			select {
			case n.addr <- addr:
			default:
			}
		}
		if n.killArmed.Load() && strings.Contains(line, `"msg":"rollout promoting"`) && n.killArmed.CompareAndSwap(true, false) {
			_ = syscall.Kill(-int(n.pid.Load()), syscall.SIGKILL)
			close(n.killed)
		}
		return "" // keeps the watcher called for every line
	}
	args := append(c.nodeArgs(name, role), rolloutFlags...)
	p, _ := startProc(t, c.logDir, procConfig{name: name, bin: c.bin, args: args, env: childEnv(nil), ready: watch})
	n.pid.Store(int64(p.cmd.Process.Pid))
	n.p = p
	c.procs = append(c.procs, p)
	select {
	case addr := <-n.addr:
		n.base = "http://" + addr
	case <-p.done:
		t.Fatalf("%s exited while starting (%s):\n%s", name, p.exitState(), p.log.tail(30))
	case <-time.After(60 * time.Second):
		t.Fatalf("%s not serving after 60s:\n%s", name, p.log.tail(30))
	}
	cl, err := client.New(n.base, client.WithHTTPClient(c.hc))
	if err != nil {
		t.Fatal(err)
	}
	n.c = cl
	return n
}

// writeChallengers writes the two challengers' snapshots: bad, a model
// taught that every item is clicked (its predictions are far above the
// click rate users show it, which the calibration guardrail sees), and
// good, one taught the world's ground truth. It returns the good one's
// updates.
func writeChallengers(t *testing.T, w *sim.World, bad, good string) uint64 {
	t.Helper()
	rng := rand.New(rand.NewPCG(12, 0xbad))
	users, items := w.Users(), w.Items()
	mb, err := model.New(model.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for range 20_000 {
		i := rng.IntN(len(users))
		x := &model.Context{User: users[i], Channel: w.PickChannel(rng, i), Hour: rng.IntN(24)}
		mb.Learn(x, items[rng.IntN(len(items))], model.Positive)
	}
	mg, err := model.New(model.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for range goodTraining {
		i := rng.IntN(len(users))
		u := &users[i]
		ch := w.PickChannel(rng, i)
		x := &model.Context{User: *u, Channel: ch, Hour: rng.IntN(24)}
		learn := func(it *event.Item, k int) {
			lb := model.Negative
			if rng.Float64() < w.ClickProbAt(u, it, ch, k) {
				lb = model.Positive
			}
			mg.Learn(x, *it, lb)
		}
		for k, j := range w.Oracle(u, ch, 5) {
			learn(w.Item(j), k)
		}
		learn(w.Item(rng.IntN(len(items))), 5)
	}
	for path, m := range map[string]*model.Model{bad: mb, good: mg} {
		if err := m.SaveFile(path, model.SnapshotMeta{}); err != nil {
			t.Fatal(err)
		}
	}
	return mg.Updates()
}

// rolloutTraffic sends recommendations through the API nodes in turn, and
// their impressions and clicks (drawn from the world's click model)
// through the other node.
type rolloutTraffic struct {
	c   *cluster
	rng *rand.Rand
	k   int // requests sent so far: user and event ids
}

// send sends n recommendations and their events.
func (r *rolloutTraffic) send(t *testing.T, n int) {
	t.Helper()
	c := r.c
	evs := make([][]client.Event, len(c.api))
	for range n {
		r.k++
		i := r.rng.IntN(rolloutUsers)
		u := c.world.User(i)
		ch := c.world.PickChannel(r.rng, i)
		a := r.k % len(c.api)
		rec, err := c.api[a].c.Recommend(c.ctx, client.RecommendRequest{UserID: u.ID, Count: 5, Context: client.Context{Channel: ch}})
		if err != nil {
			t.Fatalf("recommend through %s: %v", c.api[a].name, err)
		}
		other := (a + 1) % len(c.api)
		for k, it := range rec.Items {
			id := fmt.Sprintf("r%d-%d", r.k, k)
			evs[other] = append(evs[other], client.Event{EventID: id, Type: client.TypeImpression, UserID: u.ID, ItemID: it.ItemID, RequestID: rec.RequestID, Channel: ch, Timestamp: time.Now()})
			var item *event.Item
			for j := range c.world.Items() {
				if c.world.Item(j).ID == it.ItemID {
					item = c.world.Item(j)
					break
				}
			}
			if item != nil && r.rng.Float64() < c.world.ClickProbAt(u, item, ch, k) {
				evs[other] = append(evs[other], client.Event{EventID: id + "-c", Type: client.TypeClick, UserID: u.ID, ItemID: it.ItemID, RequestID: rec.RequestID, Channel: ch, Timestamp: time.Now()})
			}
		}
	}
	for a, batch := range evs {
		for len(batch) > 0 {
			m := min(len(batch), 500)
			if _, err := c.api[a].c.SendEvents(c.ctx, batch[:m]); err != nil {
				t.Fatalf("events through %s: %v", c.api[a].name, err)
			}
			batch = batch[m:]
		}
	}
}

// rolloutState is the part of GET /v1/rollouts the test reads.
type rolloutState struct {
	Stage  string  `json:"stage"`
	Share  float64 `json:"share"`
	Step   int     `json:"step"`
	Checks []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
		Detail string `json:"detail"`
	} `json:"checks"`
	Arms [2]struct {
		Decisions   int64 `json:"decisions"`
		Impressions int64 `json:"impressions"`
		Clicks      int64 `json:"clicks"`
	} `json:"arms"`
	Timeline []rolloutTransition `json:"timeline"`
}

type rolloutTransition struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

// last returns the last transition, or a zero one.
func (s *rolloutState) last() rolloutTransition {
	if len(s.Timeline) == 0 {
		return rolloutTransition{}
	}
	return s.Timeline[len(s.Timeline)-1]
}

func fmtChecks(checks []struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
}) string {
	var b strings.Builder
	for _, k := range checks {
		fmt.Fprintf(&b, "%s=%s ", k.Name, k.Status)
	}
	return b.String()
}

// startRollout starts a rollout of the challenger snapshot path on
// trainer n with the extra JSON fields of the request, and returns its
// state.
func (c *cluster) startRollout(t *testing.T, n *node, path, extra string) rolloutState {
	t.Helper()
	body := fmt.Sprintf(`{"source": %q, %s}`, path, extra)
	req, err := http.NewRequestWithContext(c.ctx, http.MethodPost, n.base+"/admin/rollouts", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatalf("start a rollout on %s: %v", n.name, err)
	}
	defer resp.Body.Close()
	var st rolloutState
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("start a rollout on %s: %s (%v)", n.name, resp.Status, err)
	}
	return st
}

// served counts the variants a serves to the first half of the users.
func (c *cluster) served(t *testing.T, a *node) map[string]int {
	t.Helper()
	v := map[string]int{}
	for i := range rolloutUsers / 2 {
		r, err := a.c.Recommend(c.ctx, client.RecommendRequest{UserID: c.world.User(i).ID, Count: 5, Context: client.Context{Channel: "web"}})
		if err != nil {
			t.Fatalf("recommend through %s: %v", a.name, err)
		}
		if len(r.Items) > 0 {
			v[r.Variant]++
		}
	}
	return v
}

// waitServed waits up to 15 s until what a serves satisfies ok.
func (c *cluster) waitServed(t *testing.T, a *node, ok func(map[string]int) bool, what string) {
	t.Helper()
	why, done := pollUntil(c.ctx, 15*time.Second, 100*time.Millisecond, func() (bool, string) {
		v := c.served(t, a)
		return ok(v), fmt.Sprintf("%v", v)
	})
	if !done {
		t.Fatalf("%s does not serve %s within 15s: %s", a.name, what, why)
	}
}
