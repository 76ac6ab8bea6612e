package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/sim"
)

// freeLoopbackPort returns a port nothing listens on at 127.0.0.1 right now.
func freeLoopbackPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startPrometheus runs the prometheus binary at bin scraping target every
// second, with its config and TSDB in a temporary directory, and returns
// its base URL once it is ready. Cleanup stops it.
//
// With native histograms enabled, Prometheus 2.42 ingests only the native
// form of a histogram that has both (scrape_classic_histograms came in
// 2.45), so the _bucket series of the dashboards need an instance without
// the flag.
func startPrometheus(t testing.TB, bin, target string, native bool) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: sightline
    scrape_interval: 1s
    scrape_timeout: 900ms
    static_configs:
      - targets: [%q]
`, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "prometheus.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freeLoopbackPort(t))
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--web.listen-address="+addr,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
	)
	if native {
		cmd.Args = append(cmd.Args, "--enable-feature=exemplar-storage,native-histograms")
	} else {
		cmd.Args = append(cmd.Args, "--enable-feature=exemplar-storage")
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan struct{})
	// Prometheus runs until the cleanup stops it: its exit status says
	// nothing, and a signal to a process that has ended fails harmlessly.
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("prometheus log:\n%s", tail(b, 30))
		}
	})
	base := "http://" + addr
	pollUntil(t, 30*time.Second, func() (bool, string) {
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("prometheus exited:\n%s", tail(b, 30))
		default:
		}
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, "prometheus not ready: " + resp.Status
	})
	return base
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// promSample is one element of an instant vector.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// promQuery runs an instant query and returns its vector.
func promQuery(ctx context.Context, base, q string) ([]promSample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?"+url.Values{"query": {q}}.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSample `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query %s: decode: %w", q, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, body.Error)
	}
	if body.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %s, want vector", q, body.Data.ResultType)
	}
	return body.Data.Result, nil
}

// finiteValues reports whether every sample has a finite numeric value.
func finiteValues(v []promSample) bool {
	for _, s := range v {
		str, _ := s.Value[1].(string)
		if str == "" || str == "NaN" || str == "+Inf" || str == "-Inf" {
			return false
		}
	}
	return true
}

// getBody GETs url and returns the body, failing on a non-200 status.
func getBody(t testing.TB, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", u, resp.Status, b)
	}
	return b
}

// putRaw PUTs a raw JSON body, so nulls reach the server as nulls.
func putRaw(t testing.TB, u, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("PUT %s: %s: %s", u, resp.Status, b)
	}
}

// TestIntegrationPrometheus has a real Prometheus scrape a node under
// simulated load every second, then runs the dashboard queries on the
// recommendation latency and the fallback rate; and lints /metrics with
// promtool.
func TestIntegrationPrometheus(t *testing.T) {
	prom, promtool := os.Getenv("SIGHTLINE_TEST_PROMETHEUS"), os.Getenv("SIGHTLINE_TEST_PROMTOOL")
	if prom == "" || promtool == "" {
		t.Skip("SIGHTLINE_TEST_PROMETHEUS and SIGHTLINE_TEST_PROMTOOL unset (scripts/test sets them)")
	}
	tn := startNode(t, Config{Fsync: "never"})
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	world := sim.NewWorld(sim.WorldConfig{Users: 2000, Items: 500})
	if err := world.Load(ctx, tn.c); err != nil {
		t.Fatalf("Load: %v", err)
	}
	// A user whose required features are null: every request for it falls
	// back (missing_features).
	putRaw(t, tn.base+"/v1/users/it-null-age", `{"age_bucket": null, "segment": null}`)
	rec, err := tn.c.Recommend(ctx, client.RecommendRequest{UserID: "it-null-age"})
	if err != nil {
		t.Fatalf("Recommend(null age) = %v", err)
	}
	if rec.Fallback == nil {
		t.Fatalf("Recommend(null age).Fallback = nil, want a fallback")
	}

	traffic, err := sim.NewTraffic(world, tn.c, sim.TrafficConfig{Rate: 200, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var trafficErr error
	wg.Go(func() { trafficErr = traffic.Run(loadCtx) })
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-loadCtx.Done():
				return
			case <-tick.C:
				// Background load only: the test checks what the node
				// recorded, and the last request is cut by stopLoad.
				_, _ = tn.c.Recommend(loadCtx, client.RecommendRequest{UserID: "it-null-age", Context: client.Context{Channel: "web"}})
			}
		}
	})
	defer func() { stopLoad(); wg.Wait() }()
	loadStart := time.Now()

	base := startPrometheus(t, prom, tn.Addr(), false)
	nativeBase := startPrometheus(t, prom, tn.Addr(), true)
	for _, b := range []string{base, nativeBase} {
		pollUntil(t, 20*time.Second, func() (bool, string) {
			v, err := promQuery(ctx, b, `up{job="sightline"}`)
			if err != nil {
				return false, err.Error()
			}
			if len(v) != 1 || v[0].Value[1] != "1" {
				return false, fmt.Sprintf("up = %v, want 1", v)
			}
			return true, ""
		})
	}
	queries := []struct{ base, q string }{
		{base, `histogram_quantile(0.99, sum by (le) (rate(sightline_recommendation_duration_seconds_bucket[1m])))`},
		{base, `rate(sightline_fallbacks_total{reason="missing_features"}[1m]) > 0`},
		{nativeBase, `histogram_quantile(0.99, sum(rate(sightline_recommendation_duration_seconds[1m])))`},
	}
	for _, qq := range queries {
		q := qq.q
		pollUntil(t, 20*time.Second, func() (bool, string) {
			v, err := promQuery(ctx, qq.base, q)
			if err != nil {
				return false, err.Error()
			}
			if len(v) == 0 || !finiteValues(v) {
				return false, fmt.Sprintf("%s = %v, want a non-empty vector of numbers", q, v)
			}
			t.Logf("%s = %v", q, v)
			return true, ""
		})
	}
	// Keep the load on for a while, then check it was served.
	for time.Since(loadStart) < 15*time.Second && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	stopLoad()
	wg.Wait()
	if trafficErr != nil {
		t.Errorf("traffic.Run = %v", trafficErr)
	}
	r := traffic.Report()
	t.Logf("load: %d requests in %v, %d errors, %d fallbacks, p99 %v", r.Requests, r.Elapsed.Round(time.Millisecond), r.Errors, r.Fallbacks, r.LatencyP99)
	if r.Requests < 1000 || r.Errors > 0 {
		t.Errorf("load: %d requests, %d errors; want at least 1000 requests and no errors", r.Requests, r.Errors)
	}
	// The latency quantile again, over the whole load.
	v, err := promQuery(ctx, base, queries[0].q)
	if err != nil || len(v) == 0 || !finiteValues(v) {
		t.Errorf("%s = %v, %v; want a number", queries[0].q, v, err)
	}

	// promtool lints the exposition: no output, exit 0.
	body := getBody(t, tn.base+"/metrics")
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("promtool check metrics = %v, output:\n%s", err, out)
	}
}

// metricSeries counts the series of a text exposition: its non-empty,
// non-comment lines.
func metricSeries(body []byte) (n int, byName map[string]int) {
	byName = map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		n++
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		byName[name]++
	}
	return n, byName
}

// TestCardinality sends events and recommendations for 100,000 distinct
// users, 10,000 items and garbage channel names, and checks that the
// number of series on /metrics stays bounded.
func TestCardinality(t *testing.T) {
	const (
		users    = 100_000
		items    = 10_000
		recUsers = 25_000 // users also asked recommendations for
		batch    = 1000
	)
	tn := startNode(t, Config{Fsync: "never"})
	// A guard, not a speed test: alone under the race detector the test
	// takes about 25 s, and in a full scripts/test run, beside the other
	// packages' tests on two cores, it passed 55 s.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	start := time.Now()
	// Half the items are in the catalog; events name all of them.
	var ndjson bytes.Buffer
	for i := range items / 2 {
		fmt.Fprintf(&ndjson, `{"item_id":%q,"category":"c%02d","available":true}`+"\n", fmt.Sprintf("card-i%05d", i), i%20)
	}
	if _, err := tn.c.ImportItems(ctx, &ndjson); err != nil {
		t.Fatalf("ImportItems: %v", err)
	}
	garbage := func(i int) string { return fmt.Sprintf("chan-%d-%x", i, i*7919) }
	types := []string{"impression", "click", "conversion"}
	evs := make([]client.Event, 0, batch)
	for i := range users {
		evs = append(evs, client.Event{
			EventID: fmt.Sprintf("card-e%06d", i),
			Type:    types[i%len(types)],
			UserID:  fmt.Sprintf("card-u%06d", i),
			ItemID:  fmt.Sprintf("card-i%05d", i%items),
			Channel: garbage(i),
		})
		if len(evs) == batch {
			res, err := tn.c.SendEvents(ctx, evs)
			if err != nil {
				t.Fatalf("SendEvents: %v", err)
			}
			if res.Accepted != batch {
				t.Fatalf("SendEvents accepted %d of %d: %v", res.Accepted, batch, res.Rejected[:min(3, len(res.Rejected))])
			}
			evs = evs[:0]
		}
	}
	// Recommendations: distinct users (most unknown, so fallbacks too) and
	// garbage channels, from a few workers.
	t.Logf("events: %v", time.Since(start))
	recStart := time.Now()
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < recUsers; i += workers {
				_, err := tn.c.Recommend(ctx, client.RecommendRequest{
					UserID:  fmt.Sprintf("card-u%06d", i*(users/recUsers)),
					Count:   5,
					Context: client.Context{Channel: garbage(i)},
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("recommendations: %v", time.Since(recStart))
	close(errs)
	for err := range errs {
		t.Fatalf("Recommend: %v", err)
	}

	n, byName := metricSeries(getBody(t, tn.base+"/metrics"))
	t.Logf("/metrics: %d series", n)
	if n >= 2000 {
		var big []string
		for name, c := range byName {
			if c > 50 {
				big = append(big, fmt.Sprintf("%s=%d", name, c))
			}
		}
		t.Errorf("/metrics has %d series, want < 2000; largest: %v", n, big)
	}
	// The garbage channels were folded into "other".
	if body := getBody(t, tn.base+"/metrics"); bytes.Contains(body, []byte("chan-")) {
		t.Errorf("/metrics contains a garbage channel name as a label value")
	}
}
