package cluster

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/sim"
)

// Phases of scenario 1.
const (
	warmup      = 20 * time.Second
	measure     = 20 * time.Second
	usersRate   = 50 // recommendations per second per API node
	minVariantN = 1000
)

// testLearningAndVersions runs simulated users on both API nodes: after a
// warm-up, the ftrl variant's CTR beats popularity on each node, and every
// model version the trainer publishes meanwhile is served by both API
// nodes within 2 s.
func (c *cluster) testLearningAndVersions(t *testing.T) {
	warm := c.traffic(t, 100, warmup)
	for i, r := range warm {
		t.Logf("warm-up on %s: %s", c.api[i].name, fmtReport(r))
	}
	var watch *versionWatch
	var wg sync.WaitGroup
	wctx, stopWatch := context.WithCancel(c.ctx)
	if c.roles {
		watch = &versionWatch{c: c}
		wg.Go(func() { watch.run(wctx) })
	}
	reps := c.traffic(t, 200, measure)
	if watch != nil {
		// Let the last publication after the traffic reach the API nodes.
		ctxSleep(c.ctx, 2*publishInterval+500*time.Millisecond)
	}
	stopWatch()
	wg.Wait()

	for i, r := range reps {
		n := c.api[i]
		t.Logf("measured on %s: %s", n.name, fmtReport(r))
		if r.Errors > 0 || r.EventsFailed > 0 || r.EventsRejected > 0 {
			t.Errorf("%s: %d recommendation errors, %d events failed, %d rejected during the simulated users' traffic, want none", n.name, r.Errors, r.EventsFailed, r.EventsRejected)
		}
		ftrl, pop := r.Variants["ftrl"], r.Variants["popularity"]
		if ftrl.Impressions < minVariantN || pop.Impressions < minVariantN {
			t.Errorf("%s: %d ftrl and %d popularity impressions in %v, want ≥ %d each to compare CTRs", n.name, ftrl.Impressions, pop.Impressions, measure, minVariantN)
			continue
		}
		if ftrl.CTR <= pop.CTR {
			t.Errorf("%s: ftrl CTR %.4f (expected %.4f) ≤ popularity CTR %.4f (expected %.4f) after %v of learning: the trainer's model does not beat popularity on this API node",
				n.name, ftrl.CTR, ftrl.ExpectedCTR, pop.CTR, pop.ExpectedCTR, warmup)
		}
	}
	if !c.roles {
		t.Error("the model version part needs a trainer: sightline serve has no --role flag")
		return
	}
	watch.check(t)
}

// traffic runs simulated users against both API nodes at once for d and
// returns each node's report.
func (c *cluster) traffic(t *testing.T, seed int64, d time.Duration) []sim.TrafficReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, d)
	defer cancel()
	reps := make([]sim.TrafficReport, len(c.api))
	var wg sync.WaitGroup
	for i, n := range c.api {
		tr, err := sim.NewTraffic(c.world, n.c, sim.TrafficConfig{Rate: usersRate, Seed: seed + int64(i), MaxInFlight: 64})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			_ = tr.Run(ctx)
			reps[i] = tr.Report()
		})
	}
	wg.Wait()
	return reps
}

func fmtReport(r sim.TrafficReport) string {
	var vs []string
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range r.Variants {
			if !yield(k) {
				return
			}
		}
	}) {
		v := r.Variants[name]
		vs = append(vs, fmt.Sprintf("%s: %d impressions, CTR %.4f (expected %.4f)", name, v.Impressions, v.CTR, v.ExpectedCTR))
	}
	return fmt.Sprintf("%d requests, %d errors, %d fallbacks, p99 %v, events %d accepted %d failed; %s; oracle CTR %.4f",
		r.Requests, r.Errors, r.Fallbacks, r.LatencyP99, r.EventsAccepted, r.EventsFailed, strings.Join(vs, "; "), r.OracleCTR)
}

// versionWatch polls the active trainer's and both API nodes' model
// versions, recording when each version was first seen where.
type versionWatch struct {
	c *cluster

	mu      sync.Mutex
	order   []string             // trainer versions in order of publication
	pub     map[string]time.Time // trainer version → first seen on the trainer
	seen    []map[string]time.Time
	polls   int
	errs    []string
	started time.Time
	ended   time.Time
}

func (w *versionWatch) run(ctx context.Context) {
	w.mu.Lock()
	w.pub = map[string]time.Time{}
	w.seen = make([]map[string]time.Time, len(w.c.api))
	for i := range w.seen {
		w.seen[i] = map[string]time.Time{}
	}
	w.started = time.Now()
	w.mu.Unlock()
	for ctx.Err() == nil {
		w.poll()
		ctxSleep(ctx, 50*time.Millisecond)
	}
	w.mu.Lock()
	w.ended = time.Now()
	w.mu.Unlock()
}

func (w *versionWatch) poll() {
	_, ts, terr := w.c.activeTrainer()
	tAt := time.Now()
	versions := make([]string, len(w.c.api))
	ats := make([]time.Time, len(w.c.api))
	errs := make([]error, len(w.c.api))
	for i, n := range w.c.api {
		s, err := w.c.stats(n)
		ats[i], errs[i] = time.Now(), err
		if err == nil {
			versions[i] = s.ModelVersion
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polls++
	note := func(err error) {
		if len(w.errs) < 5 {
			w.errs = append(w.errs, err.Error())
		}
	}
	if terr != nil {
		note(terr)
	} else if v := ts.ModelVersion; v != "" {
		if _, ok := w.pub[v]; !ok {
			w.pub[v] = tAt
			w.order = append(w.order, v)
		}
	}
	for i := range w.c.api {
		if errs[i] != nil {
			note(errs[i])
		} else if _, ok := w.seen[i][versions[i]]; !ok {
			w.seen[i][versions[i]] = ats[i]
		}
	}
}

// check fails t unless every version the trainer published during the
// watch (the first one seen is older) reached both API nodes within 2 s.
func (w *versionWatch) check(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.errs) > 0 {
		t.Errorf("reading the versions failed (first errors: %q)", w.errs)
	}
	if len(w.order) < 2 {
		t.Errorf("the active trainer reported versions %q over %v of traffic and %d polls: want it to publish new versions (every %v)", w.order, w.ended.Sub(w.started).Round(time.Millisecond), w.polls, publishInterval)
		return
	}
	const budget = 2 * time.Second
	var worst time.Duration
	checked := 0
	for j := 1; j < len(w.order); j++ {
		v, pub := w.order[j], w.pub[w.order[j]]
		for i, n := range w.c.api {
			var first time.Time
			for _, later := range w.order[j:] {
				if at, ok := w.seen[i][later]; ok && (first.IsZero() || at.Before(first)) {
					first = at
				}
			}
			switch {
			case first.IsZero() && w.ended.Sub(pub) < budget:
				continue // published too close to the end to judge
			case first.IsZero():
				t.Errorf("%s never served model version %q (or a later one) in the %v after the trainer published it; it served %v",
					n.name, v, w.ended.Sub(pub).Round(time.Millisecond), keys(w.seen[i]))
				continue
			}
			lag := max(first.Sub(pub), 0)
			worst = max(worst, lag)
			checked++
			if lag > budget {
				t.Errorf("%s served model version %q %v after the trainer published it, want ≤ %v", n.name, v, lag.Round(time.Millisecond), budget)
			}
		}
	}
	t.Logf("%d trainer versions %q; %d (version, API node) pairs checked, worst propagation %v (polling every 50ms)", len(w.order), w.order, checked, worst.Round(time.Millisecond))
}

func keys(m map[string]time.Time) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b string) int { return m[a].Compare(m[b]) })
	return out
}

// Scenario 2.
const (
	freshnessProbes  = 30
	freshnessBudget  = 2 * time.Second
	freshnessWorkers = 3
	freshnessClicks  = 3
)

// testCrossNodeFreshness sends each probed user's click through API node
// A and polls node B until the user's next recommendation shows the
// clicked category: p99 over 30 probes within 2 s. Users of the
// popularity control are not probed: it is unpersonalised by design.
func (c *cluster) testCrossNodeFreshness(t *testing.T) {
	a, b := c.api[0], c.api[1]
	byCat := map[string][]string{}
	catOf := map[string]string{}
	for _, it := range c.world.Items() {
		byCat[it.Category] = append(byCat[it.Category], it.ID)
		catOf[it.ID] = it.Category
	}
	cats := slices.Sorted(func(yield func(string) bool) {
		for k := range byCat {
			if !yield(k) {
				return
			}
		}
	})
	shown := func(r *client.Recommendation, into map[string]bool) {
		for _, it := range r.Items {
			if it.Reason != "explore" {
				into[catOf[it.ItemID]] = true
			}
		}
	}
	var (
		mu       sync.Mutex
		visible  []time.Duration
		late     []string
		skipped  []string
		next     atomic.Int64
		probed   atomic.Int64
		attempts = 3 * freshnessProbes
	)
	probe := func(k int) bool {
		u := sim.UserID((k*977 + 13) % worldUsers)
		req := client.RecommendRequest{UserID: u, Count: 10, Context: client.Context{Channel: "web"}}
		seen := map[string]bool{}
		var last *client.Recommendation
		for range 2 {
			r, err := b.c.Recommend(c.ctx, req)
			if err != nil {
				mu.Lock()
				skipped = append(skipped, fmt.Sprintf("%s: recommend on %s: %v", u, b.name, err))
				mu.Unlock()
				return false
			}
			shown(r, seen)
			last = r
		}
		if last.Variant == "popularity" {
			// The control variant ranks by popularity alone, for every
			// user alike: a user's clicks are not meant to change it.
			return false
		}
		target := ""
		for j := range cats {
			if cand := cats[(k+j)%len(cats)]; !seen[cand] {
				target = cand
				break
			}
		}
		if target == "" {
			return false
		}
		evs := make([]client.Event, 0, 2*freshnessClicks)
		for j := range freshnessClicks {
			item := byCat[target][(k*7+j)%len(byCat[target])]
			id := fmt.Sprintf("%s-fresh-%d-%d", c.run, k, j)
			evs = append(evs,
				client.Event{EventID: id + "-i", Type: client.TypeImpression, UserID: u, ItemID: item, RequestID: last.RequestID, Channel: "web"},
				client.Event{EventID: id + "-c", Type: client.TypeClick, UserID: u, ItemID: item, RequestID: last.RequestID, Channel: "web"})
		}
		t0 := time.Now()
		if _, err := a.c.SendEvents(c.ctx, evs); err != nil {
			mu.Lock()
			skipped = append(skipped, fmt.Sprintf("%s: events through %s: %v", u, a.name, err))
			mu.Unlock()
			return false
		}
		probed.Add(1)
		var lastSeen *client.Recommendation
		for time.Since(t0) < 2*freshnessBudget && c.ctx.Err() == nil {
			r, err := b.c.Recommend(c.ctx, req)
			if err == nil {
				now := map[string]bool{}
				shown(r, now)
				lastSeen = r
				if now[target] {
					d := time.Since(t0)
					mu.Lock()
					visible = append(visible, d)
					if d > freshnessBudget {
						late = append(late, fmt.Sprintf("%s after %v", u, d.Round(time.Millisecond)))
					}
					mu.Unlock()
					return true
				}
			}
			ctxSleep(c.ctx, 20*time.Millisecond)
		}
		mu.Lock()
		late = append(late, fmt.Sprintf("%s: category %s never shown on %s within %v (last answer %s)", u, target, b.name, 2*freshnessBudget, fmtRec(lastSeen)))
		mu.Unlock()
		return true
	}
	var wg sync.WaitGroup
	for range freshnessWorkers {
		wg.Go(func() {
			for probed.Load() < freshnessProbes && c.ctx.Err() == nil {
				k := int(next.Add(1))
				if k > attempts {
					return
				}
				probe(k)
			}
		})
	}
	wg.Wait()
	// p99 by nearest rank over every probe; a click never seen counts as
	// slower than any.
	all := slices.Clone(visible)
	for len(all) < int(probed.Load()) {
		all = append(all, never)
	}
	slices.Sort(all)
	q := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(max(int(math.Ceil(p*float64(len(all))))-1, 0), len(all)-1)]
	}
	t.Logf("%d probes (click through %s, recommendations from %s): %d visible, p50 %s p99 %s; %d skipped",
		probed.Load(), a.name, b.name, len(visible), fmtLatency(q(0.5)), fmtLatency(q(0.99)), len(skipped))
	if n := probed.Load(); n < freshnessProbes {
		t.Errorf("only %d of %d probes could start (skipped: %q)", n, freshnessProbes, first(skipped, 5))
	}
	if len(late) > 0 {
		t.Errorf("%d of %d clicks through %s did not change %s's next recommendation within %v: %q", len(late), probed.Load(), a.name, b.name, freshnessBudget, first(late, 8))
	}
	if p99 := q(0.99); p99 > freshnessBudget {
		t.Errorf("p99 of click-to-visible across nodes = %s, want ≤ %v", fmtLatency(p99), freshnessBudget)
	}
}

// never stands for a click that never became visible.
const never = time.Duration(1 << 62)

func fmtLatency(d time.Duration) string {
	if d == never {
		return "never"
	}
	return d.Round(time.Millisecond).String()
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Scenario 3.
const (
	catalogTrials = 5
	catalogBudget = time.Second
)

// testCatalogPropagation writes new items through API node A and polls
// node B with a request that excludes every other item, so the new item is
// the only candidate: B must serve it within 1 s of the PUT's answer.
func (c *cluster) testCatalogPropagation(t *testing.T) {
	a, b := c.api[0], c.api[1]
	exclude := make([]string, 0, worldItems)
	for _, it := range c.world.Items() {
		exclude = append(exclude, it.ID)
	}
	var worst time.Duration
	for k := range catalogTrials {
		item := client.Item{ItemID: fmt.Sprintf("new-%s-%d", c.run, k), Category: fmt.Sprintf("cnew-%s-%d", c.run, k), Available: true}
		if err := a.c.PutItem(c.ctx, item); err != nil {
			t.Fatalf("PUT item %s through %s: %v", item.ItemID, a.name, err)
		}
		t0 := time.Now()
		var last *client.Recommendation
		var lastErr error
		why, ok := pollUntil(c.ctx, 5*catalogBudget, 10*time.Millisecond, func() (bool, string) {
			r, err := b.c.Recommend(c.ctx, client.RecommendRequest{UserID: sim.UserID(k + 1), Count: 5, Context: client.Context{Channel: "web"}, ExcludeItemIDs: exclude})
			if err != nil {
				lastErr = err
				return false, err.Error()
			}
			last = r
			return slices.ContainsFunc(r.Items, func(s client.ScoredItem) bool { return s.ItemID == item.ItemID }), fmtRec(r)
		})
		d := time.Since(t0)
		worst = max(worst, d)
		switch {
		case !ok:
			t.Errorf("%s did not serve item %s within %v of its PUT through %s (only candidate once every world item is excluded); last answer %s, last error %v",
				b.name, item.ItemID, 5*catalogBudget, a.name, why, lastErr)
		case d > catalogBudget:
			t.Errorf("%s served item %s %v after its PUT through %s, want ≤ %v (answer %s)", b.name, item.ItemID, d.Round(time.Millisecond), a.name, catalogBudget, fmtRec(last))
		}
		// Withdraw the item so later traffic sees only the world.
		item.Available = false
		if err := a.c.PutItem(c.ctx, item); err != nil {
			t.Errorf("PUT item %s unavailable through %s: %v", item.ItemID, a.name, err)
		}
	}
	t.Logf("%d items written through %s; slowest served by %s after %v", catalogTrials, a.name, b.name, worst.Round(time.Millisecond))
}

// testCrossNodeDedupe sends one learnable event (an impression answering
// a recommendation) through API node A, then the same event id through
// node B, as a client retry through another node would: the trainer
// learns it once and counts the second as a duplicate.
func (c *cluster) testCrossNodeDedupe(t *testing.T) {
	c.requireRoles(t)
	a, b := c.api[0], c.api[1]
	tn, s0 := c.quiesce(t)
	if s0.EventsDeduplicated == nil {
		t.Errorf("%s's /v1/stats has no events_deduplicated", tn.name)
	}
	u := sim.UserID(7)
	r, err := a.c.Recommend(c.ctx, client.RecommendRequest{UserID: u, Count: 5, Context: client.Context{Channel: "web"}})
	if err != nil || len(r.Items) == 0 {
		t.Fatalf("recommend on %s = %s, %v; want items", a.name, fmtRec(r), err)
	}
	ev := client.Event{EventID: c.run + "-dedupe-1", Type: client.TypeImpression, UserID: u, ItemID: r.Items[0].ItemID, RequestID: r.RequestID, Channel: "web"}
	res, err := a.c.SendEvents(c.ctx, []client.Event{ev})
	if err != nil || res.Accepted != 1 {
		t.Fatalf("send event %s through %s = %+v, %v; want accepted", ev.EventID, a.name, res, err)
	}
	why, ok := pollUntil(c.ctx, 10*time.Second, 20*time.Millisecond, func() (bool, string) {
		s, err := c.stats(tn)
		if err != nil {
			return false, err.Error()
		}
		return s.ModelUpdates >= s0.ModelUpdates+1, fmt.Sprintf("model_updates %d → %d", s0.ModelUpdates, s.ModelUpdates)
	})
	if !ok {
		t.Fatalf("%s did not learn the event sent through %s within 10s: %s", tn.name, a.name, why)
	}
	res, err = b.c.SendEvents(c.ctx, []client.Event{ev})
	if err != nil || res.Accepted != 1 {
		t.Fatalf("send the same event %s through %s = %+v, %v; want accepted (and applied once)", ev.EventID, b.name, res, err)
	}
	t.Logf("the retry through %s was answered %+v", b.name, res)
	var s1 *stats
	why, ok = pollUntil(c.ctx, 10*time.Second, 20*time.Millisecond, func() (bool, string) {
		s, err := c.stats(tn)
		if err != nil {
			return false, err.Error()
		}
		s1 = s
		return s.EventsDeduplicated != nil && s0.EventsDeduplicated != nil && *s.EventsDeduplicated >= *s0.EventsDeduplicated+1,
			fmt.Sprintf("events_deduplicated %s → %s, model_updates %d → %d", fmtU(s0.EventsDeduplicated), fmtU(s.EventsDeduplicated), s0.ModelUpdates, s.ModelUpdates)
	})
	if !ok {
		t.Errorf("%s did not count the retry through %s as a duplicate within 10s: %s", tn.name, b.name, why)
	}
	// Both sends have been consumed: the model learned the event once.
	_, s2 := c.quiesce(t)
	if s2.ModelUpdates != s0.ModelUpdates+1 {
		t.Errorf("%s model_updates %d → %d after one event sent through %s and again through %s, want exactly +1 (learned once)",
			tn.name, s0.ModelUpdates, s2.ModelUpdates, a.name, b.name)
	}
	if s1 != nil {
		t.Logf("%s: model_updates %d → %d, events_deduplicated %s → %s", tn.name, s0.ModelUpdates, s2.ModelUpdates, fmtU(s0.EventsDeduplicated), fmtU(s2.EventsDeduplicated))
	}
}
