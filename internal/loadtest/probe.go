package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/sim"
)

// NodeStats is the part of a node's GET /v1/stats that the harness reads.
type NodeStats struct {
	EventsLogged     uint64  `json:"events_logged"`
	EventsApplied    uint64  `json:"events_applied"`
	IngestLagSeconds float64 `json:"ingest_lag_seconds"`
}

// FetchStats reads GET {base}/v1/stats with hc (nil means
// http.DefaultClient).
func FetchStats(ctx context.Context, hc *http.Client, base string) (NodeStats, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	var s NodeStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/v1/stats", nil)
	if err != nil {
		return s, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return s, fmt.Errorf("fetch stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("fetch stats: %w", &StatusError{Code: resp.StatusCode})
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return s, fmt.Errorf("decode stats: %w", err)
	}
	return s, nil
}

// LagProbe samples a node's model-update lag (the stats field
// ingest_lag_seconds) into a histogram.
type LagProbe struct {
	base  string
	hc    *http.Client
	every time.Duration
	// Lag holds the sampled lags.
	Lag Histogram
	// Failures counts samples that could not be read.
	Failures int
}

// NewLagProbe returns a probe of the node at base, sampling every interval
// (default 100ms).
func NewLagProbe(base string, every time.Duration) *LagProbe {
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	return &LagProbe{base: base, hc: &http.Client{Timeout: 2 * time.Second}, every: every}
}

// Run samples until ctx is done and returns nil. It is not safe to call Run
// twice at once.
func (p *LagProbe) Run(ctx context.Context) error {
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		s, err := FetchStats(ctx, p.hc, p.base)
		if err != nil {
			if ctx.Err() == nil {
				p.Failures++
			}
			continue
		}
		p.Lag.Record(time.Duration(s.IngestLagSeconds * float64(time.Second)))
	}
}

// Drain waits until the node has applied every event it logged and returns
// how long that took, or ctx's error.
func Drain(ctx context.Context, base string) (time.Duration, error) {
	start := time.Now()
	for {
		s, err := FetchStats(ctx, nil, base)
		if err != nil {
			return 0, err
		}
		if s.EventsApplied >= s.EventsLogged {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// FreshnessConfig configures [Freshness]. The zero value means the
// defaults.
type FreshnessConfig struct {
	// Trials is the number of users probed (default 20).
	Trials int
	// Clicks is the number of items of the new category each user clicks
	// (default 3).
	Clicks int
	// Timeout is how long a trial waits for the click to show (default 2s).
	Timeout time.Duration
	// Poll is the interval between recommendation polls (default 10ms).
	Poll time.Duration
	// Run makes event ids unique across runs against one node (optional).
	Run string
	// EventsBase is the base URL the clicks are sent to; empty means the
	// node the recommendations are polled from. A cluster's cross-node
	// freshness sends them through another API node.
	EventsBase string
	// APIKey is sent with every request of a node with API keys; it needs
	// the recommend and ingest scopes.
	APIKey string
}

// FreshnessResult is the outcome of [Freshness].
type FreshnessResult struct {
	Trials int `json:"trials"`
	// Visible counts trials whose click showed within the timeout.
	Visible int `json:"visible"`
	// Skipped counts trials that could not start (every category already
	// shown, or a request failed).
	Skipped int `json:"skipped"`
	// TimeoutMS is the per-trial timeout.
	TimeoutMS float64 `json:"timeout_ms"`
	// Accept is the latency of the POST /v1/events that carried the clicks.
	Accept Summary `json:"accept_ms"`
	// Visibility is the time from sending the clicks to the first answer
	// that reflects them, over the visible trials.
	Visibility Summary `json:"visible_ms"`
	// VisibleByVariant counts visible and probed trials per variant.
	VisibleByVariant map[string][2]int `json:"visible_and_probed_by_variant"`
}

// Freshness measures how fast a click changes a user's next
// recommendation on the node at base, which must hold world w. Each trial
// takes a user, reads their recommendations twice to learn which item
// categories they show (explored slots ignored), then sends an impression
// and a click on cfg.Clicks items of a category they do not show, and
// polls their recommendations until a non-explored item of that category
// appears. The trials run one after another; run them on an otherwise
// quiet node.
func Freshness(ctx context.Context, base string, w *sim.World, cfg FreshnessConfig) (*FreshnessResult, error) {
	if cfg.Trials <= 0 {
		cfg.Trials = 20
	}
	if cfg.Clicks <= 0 {
		cfg.Clicks = 3
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 10 * time.Millisecond
	}
	var opts []client.Option
	if cfg.APIKey != "" {
		opts = append(opts, client.WithAPIKey(cfg.APIKey))
	}
	c, err := client.New(base, opts...)
	if err != nil {
		return nil, err
	}
	defer c.CloseIdleConnections()
	ec := c
	if cfg.EventsBase != "" {
		if ec, err = client.New(cfg.EventsBase, opts...); err != nil {
			return nil, err
		}
		defer ec.CloseIdleConnections()
	}
	byCat := map[string][]string{}
	catOf := map[string]string{}
	for _, it := range w.Items() {
		byCat[it.Category] = append(byCat[it.Category], it.ID)
		catOf[it.ID] = it.Category
	}
	cats := make([]string, w.Categories())
	for i := range cats {
		cats[i] = sim.CategoryID(i)
	}
	res := &FreshnessResult{Trials: cfg.Trials, TimeoutMS: ms(cfg.Timeout), VisibleByVariant: map[string][2]int{}}
	var accept, visible Histogram
	shown := func(r *client.Recommendation, into map[string]bool) {
		for _, it := range r.Items {
			if it.Reason != "explore" {
				into[catOf[it.ItemID]] = true
			}
		}
	}
	users := len(w.Users())
	for trial := range cfg.Trials {
		u := sim.UserID(int(mix(uint64(trial)+1<<40) % uint64(users)))
		req := client.RecommendRequest{UserID: u, Count: 10, Context: client.Context{Channel: "web"}}
		seen := map[string]bool{}
		var last *client.Recommendation
		ok := true
		for range 2 {
			r, err := c.Recommend(ctx, req)
			if err != nil {
				ok = false
				break
			}
			shown(r, seen)
			last = r
		}
		target := ""
		for k := range cats {
			if cand := cats[(trial+k)%len(cats)]; !seen[cand] && len(byCat[cand]) > 0 {
				target = cand
				break
			}
		}
		if !ok || target == "" {
			res.Skipped++
			continue
		}
		evs := make([]client.Event, 0, 2*cfg.Clicks)
		for k := range cfg.Clicks {
			item := byCat[target][(trial*7+k)%len(byCat[target])]
			id := "fresh-" + cfg.Run + "-" + strconv.Itoa(trial) + "-" + strconv.Itoa(k)
			evs = append(evs,
				client.Event{EventID: id + "-i", Type: client.TypeImpression, UserID: u, ItemID: item, RequestID: last.RequestID, Channel: "web"},
				client.Event{EventID: id + "-c", Type: client.TypeClick, UserID: u, ItemID: item, RequestID: last.RequestID, Channel: "web"})
		}
		t0 := time.Now()
		if _, err := ec.SendEvents(ctx, evs); err != nil {
			res.Skipped++
			continue
		}
		accept.Record(time.Since(t0))
		counts := res.VisibleByVariant[last.Variant]
		counts[1]++
		deadline := t0.Add(cfg.Timeout)
		for time.Now().Before(deadline) {
			r, err := c.Recommend(ctx, req)
			if err == nil {
				now := map[string]bool{}
				shown(r, now)
				if now[target] {
					visible.Record(time.Since(t0))
					res.Visible++
					counts[0]++
					break
				}
			}
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(cfg.Poll):
			}
		}
		res.VisibleByVariant[last.Variant] = counts
	}
	res.Accept, res.Visibility = accept.Summary(), visible.Summary()
	return res, nil
}
