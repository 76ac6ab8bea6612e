// Package drill runs game days: a whole node on an accelerated clock,
// simulated users from internal/sim driving it through the real API, one
// fault of faults.Names switched on at a known time, and the in-process alert
// rules evaluated on the simulated clock. The report is a timeline: the
// fault, each alert's first firing with its root-cause hints, and the time
// to detect.
package drill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/app"
	"github.com/sightline/sightline/internal/faults"
	"github.com/sightline/sightline/internal/quality"
	"github.com/sightline/sightline/internal/sim"
)

// Names lists the built-in game days: each injects one fault of
// faults.Names at a known time. "control" injects nothing.
var Names = []string{faults.ETLNullAge, faults.SlowFeatureStore, faults.ModelErrors, faults.PopularityShift, faults.TelemetryOutage, "control"}

// ErrUnknown reports a drill name outside Names.
var ErrUnknown = errors.New("unknown drill")

// Config configures Run. The zero value of every field means its
// default.
type Config struct {
	// Seed makes the world, the traffic and the clicks reproducible.
	Seed int64
	// Duration is the simulated length of the drill (default 75m).
	Duration time.Duration
	// FaultAt is when, in simulated time, the fault is switched on
	// (default 45m: after the model learned and the baselines settled).
	FaultAt time.Duration
	// Rate is the recommendation requests per simulated second (default 16).
	Rate int
	// EvalEvery is the simulated period of alert evaluation (default 15s).
	EvalEvery time.Duration
	// Users, Items and NewUserShare shape the world (defaults 20,000, 2,000
	// and 0.35: new users are a large share of traffic, as after a
	// marketing campaign).
	Users, Items int
	NewUserShare float64
	// DataDir holds the node's state; empty uses a temporary directory.
	DataDir string
	// Progress, if set, receives a line per simulated 10 minutes.
	Progress io.Writer
	// Inspect, if set, is called at the end while the node still serves,
	// with its base URL (the console's end-to-end test uses it).
	Inspect func(ctx context.Context, baseURL string) error
}

func (c Config) withDefaults() Config {
	if c.Duration <= 0 {
		c.Duration = 75 * time.Minute
	}
	if c.FaultAt <= 0 {
		c.FaultAt = 45 * time.Minute
	}
	if c.Rate <= 0 {
		c.Rate = 16
	}
	if c.EvalEvery <= 0 {
		c.EvalEvery = 15 * time.Second
	}
	if c.Users <= 0 {
		c.Users = 20_000
	}
	if c.Items <= 0 {
		c.Items = 2_000
	}
	if c.NewUserShare == 0 {
		c.NewUserShare = 0.35
	}
	return c
}

// Alert is an alert's first firing in a drill.
type Alert struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	// FiredAt is the simulated offset from the drill start.
	FiredAt time.Duration `json:"fired_at_ns"`
	// TimeToDetect is FiredAt minus the fault time (negative: fired before
	// the fault, a false alarm).
	TimeToDetect  time.Duration  `json:"time_to_detect_ns"`
	Hints         []quality.Hint `json:"hints,omitempty"`
	ExampleTraces []string       `json:"example_traces,omitempty"`
}

// Report is the outcome of a drill.
type Report struct {
	Drill    string        `json:"drill"`
	Seed     int64         `json:"seed"`
	Duration time.Duration `json:"duration_ns"`
	// FaultAt is when the fault was injected (0 for the control).
	FaultAt  time.Duration `json:"fault_at_ns"`
	Requests int64         `json:"requests"`
	// Alerts lists each alert series' first firing, in firing order.
	Alerts []Alert `json:"alerts"`
	// CTRBefore and CTRAfter are the ftrl variant's CTR over the 10
	// simulated minutes before the fault and the last 10 minutes.
	CTRBefore float64 `json:"ctr_before"`
	CTRAfter  float64 `json:"ctr_after"`
	// Elapsed is the wall-clock time the drill took.
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Fired returns the first firing of the named alert, if any.
func (r *Report) Fired(name string) (Alert, bool) {
	for _, a := range r.Alerts {
		if a.Name == name {
			return a, true
		}
	}
	return Alert{}, false
}

// simClock is an accelerated clock that only moves when the drill says.
type simClock struct{ ns atomic.Int64 }

func (c *simClock) Now() time.Time                  { return time.Unix(0, c.ns.Load()).UTC() }
func (c *simClock) Advance(d time.Duration)         { c.ns.Add(int64(d)) }
func newSimClock(start time.Time) *simClock         { c := &simClock{}; c.ns.Store(start.UnixNano()); return c }
func (c *simClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// stage is a drill's node on an accelerated clock, its simulated world
// loaded through the API.
type stage struct {
	world *sim.World
	clock *simClock
	start time.Time // the simulated clock's start
	node  *app.Node
	c     *client.Client // the API, served in process
	dir   string         // the node's data directory
	stop  func()
}

// startStage starts a node of cfg on an accelerated clock (the drills'
// common settings filled in: loopback, no fsync, no periodic snapshot or
// alert evaluation, logs discarded) in dataDir, or a temporary directory
// named after prefix when it is empty, and loads world through the API.
// close stops the node and removes the temporary directory.
func startStage(ctx context.Context, prefix, dataDir string, world *sim.World, cfg app.Config) (*stage, error) {
	st := &stage{world: world, start: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC), stop: func() {}}
	st.clock = newSimClock(st.start)
	if dataDir == "" {
		dir, err := os.MkdirTemp("", prefix)
		if err != nil {
			return nil, err
		}
		st.stop = func() { _ = os.RemoveAll(dir) } // a temporary directory
		dataDir = dir
	}
	st.dir = dataDir
	cfg.Addr, cfg.DataDir, cfg.Fsync = "127.0.0.1:0", dataDir, "never"
	cfg.SnapshotInterval, cfg.AlertInterval, cfg.LogWriter, cfg.Now = -1, -1, io.Discard, st.clock.Now
	node, err := app.New(ctx, cfg)
	if err != nil {
		st.stop()
		return nil, err
	}
	ln, err := node.Listen()
	if err != nil {
		st.stop()
		return nil, err
	}
	nodeCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- node.Serve(nodeCtx, ln) }()
	rm := st.stop
	// The drill reports what the node did, not how it stopped: the blank
	// assignment says so to errcheck (and S1005 does not apply).
	st.node, st.stop = node, func() { cancel(); _ = <-served; rm() } //nolint:staticcheck // see above
	if st.c, err = client.New("http://drill.invalid", client.WithHTTPClient(&http.Client{Transport: handlerTransport{node.Handler()}})); err == nil {
		err = world.Load(ctx, st.c)
	}
	if err != nil {
		st.stop()
		return nil, fmt.Errorf("load world: %w", err)
	}
	node.Engine().Index().Refresh()
	return st, nil
}

// close stops the node and removes its temporary directory.
func (st *stage) close() { st.stop() }

// driver returns the simulated users of the stage, drawn from seed.
func (st *stage) driver(seed int64) *driver {
	return &driver{world: st.world, c: st.c, rng: rand.New(rand.NewPCG(uint64(seed), 0xd1)), clock: st.clock}
}

// handlerTransport serves client requests with a handler in process, so a
// drill pays for JSON and routing but not for sockets.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// Run runs the named drill: a node on an accelerated clock, simulated
// users driving it through the real API, the fault switched on at FaultAt,
// and the in-process alert rules evaluated every EvalEvery of simulated
// time. It is deterministic for a seed, up to wall-clock effects on
// timeouts.
func Run(ctx context.Context, name string, cfg Config) (*Report, error) {
	if !slices.Contains(Names, name) {
		return nil, fmt.Errorf("%w %q: want one of %v", ErrUnknown, name, Names)
	}
	cfg = cfg.withDefaults()
	wallStart := time.Now()
	world := sim.NewWorld(sim.WorldConfig{Seed: cfg.Seed, Users: cfg.Users, Items: cfg.Items, NewUserShare: cfg.NewUserShare})
	st, err := startStage(ctx, "sightline-drill-", cfg.DataDir, world, app.Config{
		FeatureBudget: 2 * time.Millisecond, // slow-feature-store waits real time: keep it short
		OnFault: func(f string, on bool) {
			if f == faults.PopularityShift {
				world.ShiftAffinities(on)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	defer st.close()
	node, clock, start := st.node, st.clock, st.start

	rep := &Report{Drill: name, Seed: cfg.Seed, Duration: cfg.Duration}
	if name != "control" {
		rep.FaultAt = cfg.FaultAt
	}
	d := st.driver(cfg.Seed)
	seen := map[string]bool{}
	var ctrWin []ctrPoint
	for t := time.Duration(0); t < cfg.Duration; t += time.Second {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if t == cfg.FaultAt && name != "control" {
			if err := node.SetFault(name, true); err != nil {
				return nil, err
			}
		}
		clock.Advance(time.Second)
		if err := d.step(ctx, cfg.Rate); err != nil {
			return nil, err
		}
		if err := node.WaitApplied(ctx); err != nil {
			return nil, err
		}
		if t%time.Minute == 0 {
			node.Engine().Index().Refresh()
		}
		if (t+time.Second)%cfg.EvalEvery == 0 {
			node.EvaluateAlerts(ctx, clock.Now())
			for _, a := range node.Alerts() {
				key := a.Name + labelKey(a.Labels)
				if a.State != "firing" || seen[key] {
					continue
				}
				seen[key] = true
				at := a.FiredAt.Sub(start)
				rep.Alerts = append(rep.Alerts, Alert{Name: a.Name, Labels: a.Labels, FiredAt: at, TimeToDetect: at - rep.FaultAt, Hints: a.Hints, ExampleTraces: a.ExampleTraces})
			}
		}
		if (t+time.Second)%time.Minute == 0 {
			ctrWin = append(ctrWin, ctrPoint{t + time.Second, d.impressions, d.clicks})
		}
		if cfg.Progress != nil && (t+time.Second)%(10*time.Minute) == 0 {
			fmt.Fprintf(cfg.Progress, "t=%v requests=%d ctr[ftrl]=%.4f alerts=%d\n", t+time.Second, d.requests, d.ctr(), len(rep.Alerts))
		}
	}
	rep.Requests = d.requests
	rep.CTRBefore = windowCTR(ctrWin, cfg.FaultAt-10*time.Minute, cfg.FaultAt)
	rep.CTRAfter = windowCTR(ctrWin, cfg.Duration-10*time.Minute, cfg.Duration)
	if cfg.Inspect != nil {
		base := "http://" + node.Addr()
		if err := cfg.Inspect(ctx, base); err != nil {
			return rep, fmt.Errorf("inspect: %w", err)
		}
	}
	rep.Elapsed = time.Since(wallStart)
	return rep, nil
}

type ctrPoint struct {
	at                  time.Duration
	impressions, clicks int64
}

func windowCTR(pts []ctrPoint, from, to time.Duration) float64 {
	var i0, c0, i1, c1 int64
	for _, p := range pts {
		if p.at <= from {
			i0, c0 = p.impressions, p.clicks
		}
		if p.at <= to {
			i1, c1 = p.impressions, p.clicks
		}
	}
	if i1 == i0 {
		return 0
	}
	return float64(c1-c0) / float64(i1-i0)
}

func labelKey(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString("," + k + "=" + l[k])
	}
	return b.String()
}

// driver generates one simulated second of traffic at a time.
type driver struct {
	world *sim.World
	c     *client.Client
	rng   *rand.Rand
	clock *simClock
	seq   int64

	requests            int64
	impressions, clicks int64 // ftrl variant only
	// served, if set, is told the user and variant of every answer and
	// whether each item shown was clicked.
	served func(userID, variant string, clicks []bool)
}

func (d *driver) ctr() float64 {
	if d.impressions == 0 {
		return 0
	}
	return float64(d.clicks) / float64(d.impressions)
}

func (d *driver) step(ctx context.Context, rate int) error {
	evs := make([]client.Event, 0, rate*12)
	now := d.clock.Now()
	for range rate {
		ui := int(d.rng.IntN(len(d.world.Users())))
		u := d.world.User(ui)
		ch := d.world.PickChannel(d.rng, ui)
		rec, err := d.c.Recommend(ctx, client.RecommendRequest{UserID: u.ID, Count: 10, Context: client.Context{Channel: ch}})
		if err != nil {
			return fmt.Errorf("recommend: %w", err)
		}
		d.requests++
		var clicks []bool
		for k, it := range rec.Items {
			d.seq++
			evs = append(evs, client.Event{EventID: fmt.Sprintf("d%d", d.seq), Type: client.TypeImpression, UserID: u.ID, ItemID: it.ItemID, RequestID: rec.RequestID, Channel: ch, Timestamp: now})
			item, ok := d.world.ItemByID(it.ItemID)
			if !ok {
				continue
			}
			clicked := d.rng.Float64() < d.world.ClickProbAt(u, item, ch, k)
			clicks = append(clicks, clicked)
			if rec.Variant == "ftrl" {
				d.impressions++
				if clicked {
					d.clicks++
				}
			}
			if clicked {
				d.seq++
				evs = append(evs, client.Event{EventID: fmt.Sprintf("d%d", d.seq), Type: client.TypeClick, UserID: u.ID, ItemID: it.ItemID, RequestID: rec.RequestID, Channel: ch, Timestamp: now})
			}
		}
		if d.served != nil {
			d.served(u.ID, rec.Variant, clicks)
		}
	}
	for len(evs) > 0 {
		n := min(len(evs), 1000)
		res, err := d.c.SendEvents(ctx, evs[:n])
		if err != nil {
			return fmt.Errorf("send events: %w", err)
		}
		if len(res.Rejected) > 0 {
			return fmt.Errorf("send events: %d rejected: %s", len(res.Rejected), res.Rejected[0].Error)
		}
		evs = evs[n:]
	}
	return nil
}

// WriteTimeline prints the drill as a human timeline.
func (r *Report) WriteTimeline(w io.Writer) {
	fmt.Fprintf(w, "drill %s (seed %d): %v simulated in %v, %d requests\n", r.Drill, r.Seed, r.Duration, r.Elapsed.Round(time.Millisecond), r.Requests)
	if r.Drill != "control" {
		fmt.Fprintf(w, "  T+%-8v fault %s injected\n", r.FaultAt, r.Drill)
	}
	for _, a := range r.Alerts {
		fmt.Fprintf(w, "  T+%-8v %s%s fired (time to detect %v)\n", a.FiredAt, a.Name, labelKey(a.Labels), a.TimeToDetect)
		for i, h := range a.Hints {
			if i == 3 {
				break
			}
			fmt.Fprintf(w, "             hint %d (score %.2f): %s\n", i+1, h.Score, h.Detail)
		}
		if len(a.ExampleTraces) > 0 {
			fmt.Fprintf(w, "             example traces: %s\n", strings.Join(a.ExampleTraces, " "))
		}
	}
	if len(r.Alerts) == 0 {
		fmt.Fprintln(w, "  no alert fired")
	}
	fmt.Fprintf(w, "  ftrl CTR: %.4f in the 10 minutes before the fault, %.4f in the last 10 minutes\n", r.CTRBefore, r.CTRAfter)
}

// JSON returns the report as indented JSON.
func (r *Report) JSON() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }
