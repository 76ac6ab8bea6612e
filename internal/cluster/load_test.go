package cluster

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/sim"
)

// prober asks one node for recommendations in a loop and, when events is
// set, sends the impressions of each answer through the events node. It
// counts every outcome as a user would see it. Its methods are safe for
// concurrent use.
type prober struct {
	c      *cluster
	n      *node // recommendations
	events *node // impressions; nil sends none
	tag    string
	every  time.Duration

	mu          sync.Mutex
	requests    int
	answered    int
	fallbacks   int
	reasons     map[string]int
	errs        map[string]int // by statusOf
	firstErrs   []string
	versions    map[string][]string // variant → distinct model versions, in order of first appearance
	regressions []string            // answers with a version older than one served before
	noModel     int                 // answers without a model version
	evSent      int
	evAcked     int // accepted minus duplicates: new events acknowledged
	evDup       int
	evErrs      map[string]int
}

func newProber(c *cluster, n, events *node, tag string) *prober {
	return &prober{c: c, n: n, events: events, tag: tag, every: 20 * time.Millisecond,
		reasons: map[string]int{}, errs: map[string]int{}, evErrs: map[string]int{}, versions: map[string][]string{}}
}

// run probes until ctx ends.
func (p *prober) run(ctx context.Context) {
	t := time.NewTicker(p.every)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.once(ctx, i)
	}
}

func (p *prober) once(ctx context.Context, i int) {
	u := sim.UserID((i*131 + len(p.tag)*7) % worldUsers)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	r, err := p.n.c.Recommend(rctx, client.RecommendRequest{UserID: u, Count: 10, Context: client.Context{Channel: "web"}})
	p.mu.Lock()
	p.requests++
	if err != nil {
		k := statusOf(err)
		p.errs[k]++
		if len(p.firstErrs) < 5 {
			p.firstErrs = append(p.firstErrs, time.Now().Format("15:04:05.000")+" "+err.Error())
		}
		p.mu.Unlock()
		return
	}
	p.answered++
	if r.Fallback != nil {
		p.fallbacks++
		p.reasons[r.Fallback.Reason]++
	}
	// Each variant has a model (and version) of its own.
	switch vs, v := p.versions[r.Variant], r.ModelVersion; {
	case v == "":
		p.noModel++
	case len(vs) == 0 || vs[len(vs)-1] != v:
		if slices.Contains(vs, v) {
			p.regressions = append(p.regressions, fmt.Sprintf("%s: %s after %s", r.Variant, v, vs[len(vs)-1]))
		}
		p.versions[r.Variant] = append(vs, v)
	}
	p.mu.Unlock()
	if p.events == nil || len(r.Items) == 0 {
		return
	}
	evs := make([]client.Event, 0, len(r.Items))
	for k, it := range r.Items {
		evs = append(evs, client.Event{
			EventID: fmt.Sprintf("%s-%s-%d-%d", p.c.run, p.tag, i, k), Type: client.TypeImpression,
			UserID: u, ItemID: it.ItemID, RequestID: r.RequestID, Channel: "web",
		})
	}
	res, err := p.events.c.SendEvents(rctx, evs)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.evSent += len(evs)
	if err != nil {
		p.evErrs[statusOf(err)]++
		if len(p.firstErrs) < 5 {
			p.firstErrs = append(p.firstErrs, time.Now().Format("15:04:05.000")+" events: "+err.Error())
		}
		return
	}
	p.evAcked += res.Accepted - res.Duplicates
	p.evDup += res.Duplicates
	if len(res.Rejected) > 0 {
		p.evErrs["rejected"] += len(res.Rejected)
	}
}

// acked returns the new events acknowledged.
func (p *prober) acked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.evAcked
}

// String summarizes the outcomes.
func (p *prober) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := fmt.Sprintf("%s: %d recommendations, %d answered, %d fallbacks %v, errors %v, %d without model version, versions %v",
		p.n.name, p.requests, p.answered, p.fallbacks, p.reasons, p.errs, p.noModel, p.versions)
	if p.events != nil {
		s += fmt.Sprintf("; events through %s: %d sent, %d acknowledged new, %d duplicates, errors %v", p.events.name, p.evSent, p.evAcked, p.evDup, p.evErrs)
	}
	if len(p.firstErrs) > 0 {
		s += fmt.Sprintf("; first errors: %q", p.firstErrs)
	}
	return s
}

// checkServed reports (through errorf) every request that got no 2xx
// answer and every answer with an older model version than one served
// before.
func (p *prober) checkServed(errorf func(string, ...any)) {
	p.mu.Lock()
	errs, evErrs, regressions, noModel := maps.Clone(p.errs), maps.Clone(p.evErrs), slices.Clone(p.regressions), p.noModel
	p.mu.Unlock()
	if len(errs) > 0 || len(evErrs) > 0 {
		errorf("%s answered not every request: recommendation errors %v, event errors %v (want none: 0 5xx, no refused or timed-out request); %v", p.n.name, errs, evErrs, p)
	}
	if len(regressions) > 5 {
		regressions = append(regressions[:5], "…")
	}
	if len(regressions) > 0 || noModel > 0 {
		errorf("%s served an older model than before (%v) or none (%d answers without model_version): want the last published model throughout; %v", p.n.name, regressions, noModel, p)
	}
}

// metricSum returns the sum of every sample of the named metric family in
// n's /metrics.
func (c *cluster) metricSum(n *node, family string) (float64, error) {
	req, err := http.NewRequestWithContext(c.ctx, http.MethodGet, n.base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s: GET /metrics: %w", n.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: GET /metrics: %s", n.name, resp.Status)
	}
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, family+"{") && !strings.HasPrefix(line, family+" ") {
			continue
		}
		rest := line[len(family):]
		if i := strings.LastIndexByte(rest, '}'); i >= 0 {
			rest = rest[i+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: /metrics line %q: %w", n.name, line, err)
		}
		sum, found = sum+v, true
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("%s: read /metrics: %w", n.name, err)
	}
	if !found {
		return 0, nil // no sample yet: a counter vector with no labels set
	}
	return sum, nil
}
