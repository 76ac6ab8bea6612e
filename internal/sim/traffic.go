package sim

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sightline/sightline/client"
)

// TrafficConfig configures [NewTraffic]. The zero value of every field means
// its default.
type TrafficConfig struct {
	// Rate is the arrival rate in requests per second; default 100. The
	// schedule is open-loop: arrivals do not wait for earlier answers.
	Rate float64
	// Count is the number of items asked per request; default 10.
	Count int
	// Seed makes the sequence of users, channels and clicks reproducible
	// for a given sequence of answers. Zero is a valid seed.
	Seed int64
	// MaxInFlight bounds concurrent requests; default 64. An arrival that
	// finds MaxInFlight requests outstanding is dropped and counted, not
	// queued.
	MaxInFlight int
	// EventBatch is the most events per POST /v1/events; default 500.
	EventBatch int
	// EventFlush is the longest an event waits in a partial batch; default
	// 100ms.
	EventFlush time.Duration
	// EventBuffer bounds the events waiting for the sender; default
	// 20×EventBatch. Events that find it full are dropped and counted.
	EventBuffer int
	// RequestTimeout bounds each recommendation request; default 2s.
	RequestTimeout time.Duration
	// SendTimeout bounds each event batch while running, and the whole
	// final flush after the context is done; default 5s.
	SendTimeout time.Duration
	// Logger receives warnings about failed requests and batches; nil
	// means no logging.
	Logger *slog.Logger
}

func (c TrafficConfig) withDefaults() (TrafficConfig, error) {
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		return c, fmt.Errorf("%w: rate %v: want a finite value ≥ 0", ErrInvalidConfig, c.Rate)
	}
	if c.Count < 0 || c.Count > 100 {
		return c, fmt.Errorf("%w: count %d: want 0..100", ErrInvalidConfig, c.Count)
	}
	if c.MaxInFlight < 0 || c.EventBatch < 0 || c.EventBuffer < 0 ||
		c.EventFlush < 0 || c.RequestTimeout < 0 || c.SendTimeout < 0 {
		return c, fmt.Errorf("%w: sizes and durations must not be negative", ErrInvalidConfig)
	}
	if c.Rate == 0 {
		c.Rate = 100
	}
	if c.Count == 0 {
		c.Count = 10
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 64
	}
	if c.EventBatch == 0 {
		c.EventBatch = 500
	}
	if c.EventFlush == 0 {
		c.EventFlush = 100 * time.Millisecond
	}
	if c.EventBuffer == 0 {
		c.EventBuffer = 20 * c.EventBatch
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 2 * time.Second
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// latencySamples bounds the reservoir of client-side latencies.
const latencySamples = 10_000

// Traffic drives a node with synthetic users of a [World]. Create it with
// [NewTraffic], start it with [Traffic.Run]; [Traffic.Report] may be called
// at any time from any goroutine.
type Traffic struct {
	w   *World
	c   *client.Client
	cfg TrafficConfig
	log *slog.Logger

	ran   atomic.Bool
	runID string
	start atomic.Int64 // unix nanos of Run's start
	end   atomic.Int64 // unix nanos of Run's return

	arrivals, requests, errs, dropped, canceled, fallbacks atomic.Int64
	impressions, clicks, unknownItems                      atomic.Int64
	evAccepted, evDuplicate, evRejected                    atomic.Int64
	evOverflow, evFailed, batches                          atomic.Int64

	mu       sync.Mutex // guards the fields below
	variants map[string]*variantStats
	lat      []time.Duration // reservoir sample
	latSeen  int64
	latRand  *rand.Rand
	oracle   float64 // Σ expected clicks of the ground-truth top-k
	oracleN  int64   // impressions behind oracle
	warnedRq bool
}

type variantStats struct {
	requests, impressions, clicks int64
	expected                      float64
}

// NewTraffic returns a generator of w's users against the node behind c.
func NewTraffic(w *World, c *client.Client, cfg TrafficConfig) (*Traffic, error) {
	if w == nil || c == nil {
		return nil, fmt.Errorf("%w: world and client are required", ErrInvalidConfig)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Traffic{
		w:        w,
		c:        c,
		cfg:      cfg,
		log:      cfg.Logger,
		runID:    crand.Text()[:10],
		variants: make(map[string]*variantStats),
		latRand:  rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6c6174)),
	}, nil
}

// Run issues requests at the configured rate until ctx is done, then waits
// for the requests in flight, flushes the buffered events (within
// SendTimeout) and returns nil. Every goroutine it starts has ended when it
// returns. It may be called once.
func (t *Traffic) Run(ctx context.Context) error {
	if t.ran.Swap(true) {
		return ErrAlreadyRun
	}
	events := make(chan client.Event, t.cfg.EventBuffer)
	var sender sync.WaitGroup
	sender.Go(func() { t.sendLoop(ctx, events) })

	var reqs sync.WaitGroup
	sem := make(chan struct{}, t.cfg.MaxInFlight)
	r := rand.New(rand.NewPCG(uint64(t.cfg.Seed), 0x7472_6166_6669_63))

	// Tick at the arrival interval, but no faster than 1ms nor slower than
	// 100ms; each tick starts every arrival that is due (catch-up).
	interval := time.Duration(float64(time.Second) / t.cfg.Rate)
	interval = min(max(interval, time.Millisecond), 100*time.Millisecond)
	start := time.Now()
	t.start.Store(start.UnixNano())
	ticker := time.NewTicker(interval)
	var issued int64
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case now := <-ticker.C:
			// The epsilon keeps 0.29s×100 from flooring to 28.
			due := int64(now.Sub(start).Seconds()*t.cfg.Rate + 1e-6)
			for ; issued < due && ctx.Err() == nil; issued++ {
				t.arrivals.Add(1)
				ui := t.w.PickUser(r)
				ch := t.w.PickChannel(r, ui)
				seed := r.Uint64()
				n := issued
				select {
				case sem <- struct{}{}:
					reqs.Go(func() {
						defer func() { <-sem }()
						t.request(ctx, events, n, ui, ch, seed)
					})
				default:
					t.dropped.Add(1)
				}
			}
		}
	}
	ticker.Stop()
	reqs.Wait()
	close(events)
	sender.Wait()
	t.end.Store(time.Now().UnixNano())
	return nil
}

// request serves arrival n: one recommendation for user ui on channel ch,
// then its impressions and clicks.
func (t *Traffic) request(ctx context.Context, events chan<- client.Event, n int64, ui int, ch string, seed uint64) {
	u := t.w.User(ui)
	rctx, cancel := context.WithTimeout(ctx, t.cfg.RequestTimeout)
	defer cancel()
	t.requests.Add(1)
	began := time.Now()
	rec, err := t.c.Recommend(rctx, client.RecommendRequest{
		UserID:  u.ID,
		Count:   t.cfg.Count,
		Context: client.Context{Channel: ch, SessionID: t.runID + "-s" + strconv.Itoa(ui), Page: "home"},
	})
	took := time.Since(began)
	if err != nil {
		if ctx.Err() != nil {
			t.canceled.Add(1)
			return
		}
		t.errs.Add(1)
		t.warnOnce(ctx, err)
		return
	}
	if rec.Fallback != nil {
		t.fallbacks.Add(1)
	}

	r := rand.New(rand.NewPCG(seed, uint64(n)))
	var eng Engagement
	t.w.Engage(r, ui, ch, rec.Items, &eng)
	now := time.Now()
	for k, si := range rec.Items {
		ev := client.Event{
			Type:      client.TypeImpression,
			UserID:    u.ID,
			ItemID:    si.ItemID,
			RequestID: rec.RequestID,
			Channel:   ch,
			Timestamp: now,
		}
		ev.EventID = t.eventID(n, k, 'i')
		t.enqueue(events, ev)
		if eng.Clicked(k) {
			ev.Type = client.TypeClick
			ev.EventID = t.eventID(n, k, 'c')
			ev.DwellMS = eng.DwellMS[k]
			t.enqueue(events, ev)
		}
	}
	imps, clicks := int64(len(rec.Items)), int64(eng.Clicks)
	expected, oracle := eng.Expected, eng.Oracle
	t.unknownItems.Add(int64(eng.Unknown))
	t.impressions.Add(imps)
	t.clicks.Add(clicks)

	variant := rec.Variant
	if variant == "" {
		variant = "unknown"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	vs := t.variants[variant]
	if vs == nil {
		vs = &variantStats{}
		t.variants[variant] = vs
	}
	vs.requests++
	vs.impressions += imps
	vs.clicks += clicks
	vs.expected += expected
	t.oracle += oracle
	t.oracleN += imps
	t.latSeen++
	if len(t.lat) < latencySamples {
		t.lat = append(t.lat, took)
	} else if j := t.latRand.Int64N(t.latSeen); j < latencySamples {
		t.lat[j] = took
	}
}

// eventID is unique per run, arrival, position and type.
func (t *Traffic) eventID(n int64, k int, typ byte) string {
	b := make([]byte, 0, 32)
	b = append(b, "sim-"...)
	b = append(b, t.runID...)
	b = append(b, '-')
	b = strconv.AppendInt(b, n, 36)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(k), 10)
	b = append(b, typ)
	return string(b)
}

// dwell draws a dwell time in milliseconds: log-normal, median ~13s.
func dwell(r *rand.Rand) int64 {
	ms := math.Exp(9.5 + r.NormFloat64())
	return int64(min(ms, 10*60*1000))
}

func (t *Traffic) enqueue(events chan<- client.Event, ev client.Event) {
	select {
	case events <- ev:
	default:
		t.evOverflow.Add(1)
	}
}

func (t *Traffic) warnOnce(ctx context.Context, err error) {
	t.mu.Lock()
	first := !t.warnedRq
	t.warnedRq = true
	t.mu.Unlock()
	level := slog.LevelDebug
	if first {
		level = slog.LevelWarn
	}
	t.log.LogAttrs(ctx, level, "recommendation request failed", slog.Any("err", err))
}

// sendLoop batches events until events is closed, then flushes the rest
// within SendTimeout.
func (t *Traffic) sendLoop(ctx context.Context, events <-chan client.Event) {
	batch := make([]client.Event, 0, t.cfg.EventBatch)
	ticker := time.NewTicker(t.cfg.EventFlush)
	defer ticker.Stop()
	flush := func(sctx context.Context) {
		if len(batch) == 0 {
			return
		}
		t.send(sctx, batch)
		batch = batch[:0]
	}
	timed := func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.cfg.SendTimeout)
		defer cancel()
		flush(sctx)
	}
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				timed()
				return
			}
			batch = append(batch, ev)
			if len(batch) == t.cfg.EventBatch {
				timed()
			}
		case <-ticker.C:
			timed()
		case <-ctx.Done():
			// Drain what is left once the producers are done; one deadline
			// for the whole final flush.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.cfg.SendTimeout)
			defer cancel()
			for ev := range events {
				batch = append(batch, ev)
				if len(batch) == t.cfg.EventBatch {
					flush(dctx)
				}
			}
			flush(dctx)
			return
		}
	}
}

func (t *Traffic) send(ctx context.Context, batch []client.Event) {
	t.batches.Add(1)
	res, err := t.c.SendEvents(ctx, batch)
	if err != nil {
		t.evFailed.Add(int64(len(batch)))
		t.log.LogAttrs(ctx, slog.LevelWarn, "send events failed",
			slog.Int("events", len(batch)), slog.Any("err", err))
		return
	}
	t.evAccepted.Add(int64(res.Accepted))
	t.evDuplicate.Add(int64(res.Duplicates))
	if len(res.Rejected) > 0 {
		t.evRejected.Add(int64(len(res.Rejected)))
		t.log.LogAttrs(ctx, slog.LevelWarn, "events rejected",
			slog.Int("rejected", len(res.Rejected)), slog.String("first", res.Rejected[0].Error))
	}
}

// TrafficReport summarizes a [Traffic] run so far.
type TrafficReport struct {
	// Elapsed is the time since Run started, up to its return.
	Elapsed time.Duration
	// Arrivals counts scheduled arrivals; Requests those that were sent
	// and Dropped those that found MaxInFlight requests outstanding.
	Arrivals, Requests, Dropped int64
	// Errors counts failed requests; Canceled those cut short by the end of
	// the run; Fallbacks answers served by the node's fallback path.
	Errors, Canceled, Fallbacks int64
	// Impressions and Clicks count the events generated (sent or not).
	Impressions, Clicks int64
	// UnknownItems counts returned items that are not in the world.
	UnknownItems int64
	// EventBatches counts POST /v1/events calls. EventsAccepted,
	// EventsDuplicate and EventsRejected are the server's answers;
	// EventsFailed counts events of batches that failed, EventsOverflow
	// events dropped because the send buffer was full.
	EventBatches, EventsAccepted, EventsDuplicate, EventsRejected int64
	EventsFailed, EventsOverflow                                  int64
	// LatencyP50 and LatencyP99 are client-side recommendation latencies.
	LatencyP50, LatencyP99 time.Duration
	// Variants breaks requests and engagement down by experiment variant.
	Variants map[string]VariantReport
	// OracleCTR is the expected CTR, with position bias, of showing each
	// request's user the ground-truth best items instead: an upper bound.
	OracleCTR float64
}

// VariantReport is the engagement of one experiment variant.
type VariantReport struct {
	Requests, Impressions, Clicks int64
	// CTR is Clicks / Impressions.
	CTR float64
	// ExpectedCTR is the mean ground-truth click probability of the shown
	// items: the CTR without sampling noise.
	ExpectedCTR float64
}

// CTR returns Clicks / Impressions over all variants, 0 without impressions.
func (r TrafficReport) CTR() float64 { return ratio(r.Clicks, r.Impressions) }

// Report returns the counters so far. It is safe to call concurrently with
// Run.
func (t *Traffic) Report() TrafficReport {
	rep := TrafficReport{
		Arrivals:        t.arrivals.Load(),
		Requests:        t.requests.Load(),
		Dropped:         t.dropped.Load(),
		Errors:          t.errs.Load(),
		Canceled:        t.canceled.Load(),
		Fallbacks:       t.fallbacks.Load(),
		Impressions:     t.impressions.Load(),
		Clicks:          t.clicks.Load(),
		UnknownItems:    t.unknownItems.Load(),
		EventBatches:    t.batches.Load(),
		EventsAccepted:  t.evAccepted.Load(),
		EventsDuplicate: t.evDuplicate.Load(),
		EventsRejected:  t.evRejected.Load(),
		EventsFailed:    t.evFailed.Load(),
		EventsOverflow:  t.evOverflow.Load(),
		Variants:        make(map[string]VariantReport),
	}
	if s := t.start.Load(); s != 0 {
		end := time.Now()
		if e := t.end.Load(); e != 0 {
			end = time.Unix(0, e)
		}
		rep.Elapsed = end.Sub(time.Unix(0, s))
	}
	t.mu.Lock()
	lat := slices.Clone(t.lat)
	for name, vs := range t.variants {
		rep.Variants[name] = VariantReport{
			Requests:    vs.requests,
			Impressions: vs.impressions,
			Clicks:      vs.clicks,
			CTR:         ratio(vs.clicks, vs.impressions),
			ExpectedCTR: vs.expected / float64(max(vs.impressions, 1)),
		}
	}
	if t.oracleN > 0 {
		rep.OracleCTR = t.oracle / float64(t.oracleN)
	}
	t.mu.Unlock()
	slices.Sort(lat)
	rep.LatencyP50 = quantile(lat, 0.50)
	rep.LatencyP99 = quantile(lat, 0.99)
	return rep
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// quantile returns the q-quantile of sorted (nearest rank), 0 when empty.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
