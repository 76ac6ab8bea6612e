package qualityrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/app"
	"github.com/sightline/sightline/internal/sim"
)

// Defaults of Config: the demo's world and rate.
const (
	DefaultDuration = 10 * time.Minute
	DefaultRate     = 200
	DefaultUsers    = 100_000
	DefaultItems    = 10_000
	DefaultStep     = 100 * time.Millisecond
	// DefaultEvery is the simulated length of one point of the curve.
	DefaultEvery = time.Minute
)

// DefaultVariants are the variants measured when Config.Variants is empty:
// the popularity control, the FTRL model and the FTRL family that explores.
var DefaultVariants = []string{"popularity", "ftrl", "ftrl-ucb"}

// ErrInvalidConfig reports a Config field out of range.
var ErrInvalidConfig = errors.New("invalid quality run config")

// Config configures [Run]. The zero value of every field means its default.
type Config struct {
	// Variants are the variant names measured, each alone on a node of its
	// own (split "<name>=100"); default DefaultVariants.
	Variants []string
	// Seeds seed the world and the traffic; each variant runs once per
	// seed. Default 1 and 2.
	Seeds []int64
	// Duration is the simulated length of each run (default 10m).
	Duration time.Duration
	// Every is the simulated length of one point of the curve (default 1m).
	// Duration must be a multiple of it.
	Every time.Duration
	// Rate is the recommendation requests per simulated second (default
	// 200, the demo's).
	Rate float64
	// Count is the number of items asked per request (default 10).
	Count int
	// Users and Items size the world (default 100,000 and 10,000, the
	// demo's).
	Users, Items int
	// Step is the simulated time between two sends of events (default
	// 100ms, the traffic generator's flush interval); the node applies
	// every event sent before the next step is served.
	Step time.Duration
	// Node is the node's configuration. Run sets its address, data
	// directory, clock, split and logging, and turns off fsync, periodic
	// snapshots and alert evaluation; the rest (model settings,
	// exploration) applies as given.
	Node app.Config
	// Progress, if set, receives a line per run and per simulated minute.
	Progress io.Writer
}

func (c Config) withDefaults() (Config, error) {
	if len(c.Variants) == 0 {
		c.Variants = DefaultVariants
	}
	if len(c.Seeds) == 0 {
		c.Seeds = []int64{1, 2}
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Every == 0 {
		c.Every = DefaultEvery
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Count == 0 {
		c.Count = 10
	}
	if c.Users == 0 {
		c.Users = DefaultUsers
	}
	if c.Items == 0 {
		c.Items = DefaultItems
	}
	if c.Step == 0 {
		c.Step = DefaultStep
	}
	switch {
	case c.Duration < 0 || c.Every < 0 || c.Step < 0 || c.Duration%c.Every != 0 || c.Every%c.Step != 0:
		return c, fmt.Errorf("%w: duration %v, every %v, step %v: want positive, each a multiple of the next", ErrInvalidConfig, c.Duration, c.Every, c.Step)
	case !(c.Rate > 0) || math.IsInf(c.Rate, 0):
		return c, fmt.Errorf("%w: rate %v: want a positive number", ErrInvalidConfig, c.Rate)
	case c.Count < 1 || c.Count > 100:
		return c, fmt.Errorf("%w: count %d: want 1..100", ErrInvalidConfig, c.Count)
	case c.Users < 0 || c.Items < 0:
		return c, fmt.Errorf("%w: users %d, items %d: want positive", ErrInvalidConfig, c.Users, c.Items)
	}
	return c, nil
}

// Run measures every variant of cfg on every seed, one after the other,
// and returns the report. It fails on the first run that fails; ctx ends
// it early.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	rep := &Report{Duration: cfg.Duration, Every: cfg.Every, Rate: cfg.Rate, Count: cfg.Count, Users: cfg.Users, Items: cfg.Items, Seeds: cfg.Seeds, Variants: cfg.Variants}
	for _, seed := range cfg.Seeds {
		world := sim.NewWorld(sim.WorldConfig{Seed: seed, Users: cfg.Users, Items: cfg.Items})
		for _, v := range cfg.Variants {
			r, err := runOne(ctx, cfg, world, v, seed)
			if err != nil {
				return nil, fmt.Errorf("variant %s, seed %d: %w", v, seed, err)
			}
			rep.Runs = append(rep.Runs, *r)
		}
	}
	return rep, nil
}

// clock is the simulated clock: it moves only when the run advances it.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// inProcess serves a client's requests with the node's handler, without
// sockets.
type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// simStart is the simulated clock's start: 09:00 UTC of the current day.
// It stays within a day of the wall clock because the candidate index
// weighs events by their age against the wall clock it started at (its
// popularity decays with a half-life of an hour): months away, every weight
// would underflow to zero and popularity would play no part.
func simStart() time.Time {
	return time.Now().UTC().Truncate(24 * time.Hour).Add(9 * time.Hour)
}

// runOne measures one variant on one seed on a fresh node.
func runOne(ctx context.Context, cfg Config, world *sim.World, variant string, seed int64) (r *Result, err error) {
	wallStart := time.Now()
	dir, err := os.MkdirTemp("", "sightline-quality-")
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	clk := &clock{}
	clk.ns.Store(simStart().UnixNano())
	nc := cfg.Node
	nc.Addr, nc.DataDir, nc.Fsync, nc.Now = "127.0.0.1:0", dir, "never", clk.now
	nc.Split = variant + "=100"
	nc.SnapshotInterval, nc.AlertInterval = -1, -1
	nc.LogWriter = io.Discard
	nc.DecisionStore.Disabled = true
	node, err := app.New(ctx, nc)
	if err != nil {
		return nil, err
	}
	ln, err := node.Listen()
	if err != nil {
		return nil, err
	}
	nodeCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- node.Serve(nodeCtx, ln) }()
	defer func() {
		stop()
		if serr := <-served; serr != nil && !errors.Is(serr, context.Canceled) {
			err = errors.Join(err, serr)
		}
	}()
	c, err := client.New("http://quality.invalid", client.WithHTTPClient(&http.Client{Transport: inProcess{node.Handler()}}))
	if err != nil {
		return nil, err
	}
	if err := world.Load(ctx, c); err != nil {
		return nil, fmt.Errorf("load world: %w", err)
	}
	node.Engine().Index().Refresh()

	d := newDriver(world, c, cfg, seed)
	res := &Result{Variant: variant, Seed: seed}
	steps := int(cfg.Duration / cfg.Step)
	perPoint := int(cfg.Every / cfg.Step)
	refreshEvery := max(int(200*time.Millisecond/cfg.Step), 1) // the engine's default refresh interval
	for s := 1; s <= steps; s++ {
		clk.ns.Add(int64(cfg.Step))
		if err := d.step(ctx, clk.now()); err != nil {
			return nil, err
		}
		if err := node.WaitApplied(ctx); err != nil {
			return nil, err
		}
		if s%refreshEvery == 0 {
			node.Engine().Index().Refresh()
		}
		if s%perPoint == 0 {
			p := d.take()
			p.At = time.Duration(s) * cfg.Step
			res.Points = append(res.Points, p)
			if cfg.Progress != nil {
				fmt.Fprintf(cfg.Progress, "%s seed %d t=%v ctr=%.4f oracle=%.4f ratio=%.3f (wall %v)\n",
					variant, seed, p.At, p.CTR(), p.OracleCTR(), p.Ratio(), time.Since(wallStart).Round(time.Second))
			}
		}
	}
	st, err := c.Stats(ctx)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	if v, ok := st.CTRByVariant[variant]; ok {
		res.NodeCTR = v.CTR
	}
	res.NodeWindow = time.Duration(st.WindowSeconds * float64(time.Second))
	ns, ok := node.Stats(ctx).(app.Stats)
	if !ok {
		return nil, errors.New("node stats: unexpected type")
	}
	ev, ok := ns.VariantModels[variant]
	if !ok {
		ev = ns.Model // the champion's, which every variant's events teach
	}
	res.ModelLogLoss, res.ModelPredicted, res.ModelObserved = ev.LogLoss, ev.MeanPredicted, ev.ObservedCTR
	res.Elapsed = time.Since(wallStart)
	return res, nil
}

// driver is the demo's traffic, one simulated step at a time: the users,
// channels and clicks of sim.Traffic with the same seed.
type driver struct {
	w     *sim.World
	c     *client.Client
	cfg   Config
	rng   *rand.Rand
	runID string
	carry float64 // fraction of a request carried to the next step
	n     int64   // requests issued
	eng   sim.Engagement
	evs   []client.Event
	cur   Point // the point being accumulated
}

func newDriver(w *sim.World, c *client.Client, cfg Config, seed int64) *driver {
	return &driver{
		w: w, c: c, cfg: cfg,
		rng:   rand.New(rand.NewPCG(uint64(seed), 0x7472_6166_6669_63)),
		runID: "q" + strconv.FormatInt(seed, 36),
	}
}

// step serves one step's requests at now and sends their events.
func (d *driver) step(ctx context.Context, now time.Time) error {
	d.carry += d.cfg.Rate * d.cfg.Step.Seconds()
	n := int(d.carry + 1e-9)
	d.carry -= float64(n)
	d.evs = d.evs[:0]
	for range n {
		if err := d.request(ctx, now); err != nil {
			return err
		}
	}
	for evs := d.evs; len(evs) > 0; {
		k := min(len(evs), 500)
		res, err := d.c.SendEvents(ctx, evs[:k])
		if err != nil {
			return fmt.Errorf("send events: %w", err)
		}
		if len(res.Rejected) > 0 {
			return fmt.Errorf("send events: %d rejected, first: %s", len(res.Rejected), res.Rejected[0].Error)
		}
		evs = evs[k:]
	}
	return nil
}

// request serves one simulated user and records the events it causes.
func (d *driver) request(ctx context.Context, now time.Time) error {
	ui := d.w.PickUser(d.rng)
	ch := d.w.PickChannel(d.rng, ui)
	r := rand.New(rand.NewPCG(d.rng.Uint64(), uint64(d.n)))
	n := d.n
	d.n++
	u := d.w.User(ui)
	rec, err := d.c.Recommend(ctx, client.RecommendRequest{
		UserID:  u.ID,
		Count:   d.cfg.Count,
		Context: client.Context{Channel: ch, SessionID: d.runID + "-s" + strconv.Itoa(ui), Page: "home"},
	})
	if err != nil {
		return fmt.Errorf("recommend: %w", err)
	}
	d.w.Engage(r, ui, ch, rec.Items, &d.eng)
	p := &d.cur
	p.Requests++
	if rec.Fallback != nil {
		p.Fallbacks++
	}
	scored := rec.Fallback == nil
	for _, it := range rec.Items {
		if it.Reason == "popularity" {
			scored = false // the popularity control: scores are not probabilities
		}
	}
	for k, it := range rec.Items {
		ev := client.Event{Type: client.TypeImpression, UserID: u.ID, ItemID: it.ItemID, RequestID: rec.RequestID, Channel: ch, Timestamp: now}
		ev.EventID = d.runID + "-" + strconv.FormatInt(n, 36) + "-" + strconv.Itoa(k) + "i"
		d.evs = append(d.evs, ev)
		clicked := d.eng.Clicked(k)
		if clicked {
			ev.Type, ev.DwellMS = client.TypeClick, d.eng.DwellMS[k]
			ev.EventID = ev.EventID[:len(ev.EventID)-1] + "c"
			d.evs = append(d.evs, ev)
		}
		if scored {
			p.Scored++
			p.Predicted += it.Score
			p.LogLoss += logLoss(it.Score, clicked)
			if clicked {
				p.ScoredClicks++
			}
		}
	}
	p.Impressions += int64(len(rec.Items))
	p.Clicks += int64(d.eng.Clicks)
	p.Expected += d.eng.Expected
	p.Oracle += d.eng.Oracle
	return nil
}

// take returns the point accumulated since the last take and starts a new
// one.
func (d *driver) take() Point {
	p := d.cur
	d.cur = Point{}
	return p
}

// logLoss is the log loss of predicting p for an outcome.
func logLoss(p float64, clicked bool) float64 {
	p = min(max(p, 1e-15), 1-1e-15)
	if clicked {
		return -math.Log(p)
	}
	return -math.Log(1 - p)
}
