package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/sightline/sightline/internal/telemetry"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/loadtest"
	"github.com/sightline/sightline/internal/sim"
)

const loadgenSummary = `Drive load against a running node. Modes:
  users      simulated users: recommend, send impressions and clicks drawn from the
             synthetic ground truth (default)
  open       open loop at a constant --rate for --duration, latency measured from each
             request's scheduled send time; --workload recommend or events
  max        step the open-loop rate up until p99 > --p99 or errors, report the highest
             passing rate
  freshness  click, then poll the user's recommendations until the click shows
  load       only import the synthetic world (users and items)
  bare       serve the baseline: a bare net/http handler answering a JSON body of
             --body-bytes on --addr, until interrupted
Prints a JSON report at the end (--report json), or the same on one line (--report line).`

type loadgenFlags struct {
	mode, target, workload, report, addr, run       string
	eventsTarget, lagTarget                         string
	kafkaBrokers, kafkaTopic                        string
	rate, start, factor, maxErr                     float64
	duration, step, p99, timeout                    time.Duration
	users, items, inflight, count, batch, bodyBytes int
	refine, retries, trials, clicks                 int
	seed                                            int64
	loadWorld, lag                                  bool
	traceExporter, apiKey                           string
	traceRatio                                      float64
}

func runLoadgen(ctx context.Context, args []string) error {
	fs := newFlagSet("loadgen", loadgenSummary)
	var f loadgenFlags
	fs.StringVar(&f.mode, "mode", "users", "users, open, max, freshness, load or bare")
	fs.StringVar(&f.target, "target", "http://127.0.0.1:8080", "base URL of the node (or of the bare handler)")
	fs.Float64Var(&f.rate, "rate", 200, "requests per second (open loop; users mode: recommendations per second)")
	fs.DurationVar(&f.duration, "duration", 30*time.Second, "how long to run")
	fs.IntVar(&f.users, "users", 100_000, "simulated users")
	fs.IntVar(&f.items, "items", 10_000, "catalog items")
	fs.Int64Var(&f.seed, "seed", 1, "seed of the synthetic world and traffic")
	fs.BoolVar(&f.loadWorld, "load-world", false, "import the world's users and items first")
	fs.IntVar(&f.inflight, "max-inflight", 1024, "most concurrent requests; later arrivals are dropped and counted (users mode: 256 if unset)")
	fs.StringVar(&f.workload, "workload", "recommend", "open and max modes: recommend (POST /v1/recommendations) or events (POST /v1/events batches); open mode also kafka-events (batches produced straight to --kafka-topic, as an API node does)")
	fs.StringVar(&f.kafkaBrokers, "kafka-brokers", "", "kafka-events workload: comma-separated seed brokers")
	fs.StringVar(&f.kafkaTopic, "kafka-topic", "sightline-events", "kafka-events workload: the cluster's event topic")
	fs.IntVar(&f.count, "count", 10, "items per recommendation")
	fs.IntVar(&f.batch, "batch", 500, "events per POST /v1/events (events workload)")
	fs.BoolVar(&f.lag, "lag", false, "open mode, events workload: sample the node's ingest_lag_seconds and wait for it to drain")
	fs.StringVar(&f.report, "report", "json", "report format: json (indented) or line (one line of JSON)")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Second, "per-request timeout")
	fs.Float64Var(&f.start, "start", 500, "max mode: first rate tried")
	fs.Float64Var(&f.factor, "factor", 1.5, "max mode: rate multiplier after a passing step")
	fs.IntVar(&f.refine, "refine", 2, "max mode: bisection steps after the first failing rate")
	fs.IntVar(&f.retries, "retries", 1, "max mode: runs again of a failing step; the rate passes when one run does (negative: none)")
	fs.DurationVar(&f.step, "step", 5*time.Second, "max mode: duration of each step")
	fs.DurationVar(&f.p99, "p99", 10*time.Millisecond, "max mode: p99 a passing step stays at or under")
	fs.Float64Var(&f.maxErr, "max-error-ratio", 0.001, "max mode: share of failed arrivals a passing step allows (negative: none)")
	fs.IntVar(&f.trials, "trials", 20, "freshness mode: users probed")
	fs.IntVar(&f.clicks, "clicks", 3, "freshness mode: items of one new category each user clicks")
	fs.StringVar(&f.eventsTarget, "events-target", "", "freshness mode: base URL the clicks are sent to (default --target): another API node of a cluster measures freshness across nodes")
	fs.StringVar(&f.lagTarget, "lag-target", "", "open mode with --lag: base URL whose ingest lag is sampled and drained (default --target): a cluster's trainer")
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8090", "bare mode: listen address")
	fs.IntVar(&f.bodyBytes, "body-bytes", 0, "bare mode: response body size (0: the size of one recommendation from --target)")
	fs.StringVar(&f.traceExporter, "trace-exporter", "none", "users mode: client spans to none, otlp (OTEL_EXPORTER_OTLP_* variables) or stdout; each request's trace then starts in the load generator")
	fs.Float64Var(&f.traceRatio, "trace-sample-ratio", 0.01, "users mode: share of requests whose trace is sampled (the node follows the decision)")
	fs.StringVar(&f.run, "run-id", "", "prefix that makes event ids unique per run (default: the start time)")
	fs.StringVar(&f.apiKey, "api-key", "", "API key sent as Authorization: Bearer to a node with --api-keys-file (scopes: recommend for recommendations, ingest for events and the world; the lag probes need an open node or the key's read scope)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if f.run == "" {
		f.run = strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	if f.loadWorld || f.mode == "load" {
		c, err := client.New(f.target, f.keyOption()...)
		if err != nil {
			return err
		}
		if err := f.world().Load(ctx, c); err != nil {
			return fmt.Errorf("load world: %w", err)
		}
	}
	switch f.mode {
	case "users":
		return runUsers(ctx, &f, fs.Lookup("max-inflight").Value.String() == fs.Lookup("max-inflight").DefValue)
	case "open":
		return runOpen(ctx, &f)
	case "max":
		return runMax(ctx, &f)
	case "freshness":
		res, err := loadtest.Freshness(ctx, f.target, f.world(), loadtest.FreshnessConfig{Trials: f.trials, Clicks: f.clicks, Run: f.run, EventsBase: f.eventsTarget, APIKey: f.apiKey})
		if err != nil {
			return err
		}
		return emit(&f, map[string]any{"mode": "freshness", "freshness": res})
	case "load":
		return nil
	case "bare":
		return runBare(ctx, &f)
	}
	return fmt.Errorf("unknown mode %q: want users, open, max, freshness, load or bare", f.mode)
}

func (f *loadgenFlags) world() *sim.World {
	return sim.NewWorld(sim.WorldConfig{Seed: f.seed, Users: f.users, Items: f.items})
}

// keyOption is the client option of --api-key, if set.
func (f *loadgenFlags) keyOption() []client.Option {
	if f.apiKey == "" {
		return nil
	}
	return []client.Option{client.WithAPIKey(f.apiKey)}
}

// keyHeader is the request header of --api-key, if set.
func (f *loadgenFlags) keyHeader() http.Header {
	if f.apiKey == "" {
		return nil
	}
	return http.Header{"Authorization": {"Bearer " + f.apiKey}}
}

func runUsers(ctx context.Context, f *loadgenFlags, defaultInflight bool) error {
	opts := f.keyOption()
	if f.traceExporter != "none" {
		tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "sightline-loadgen", Exporter: f.traceExporter, SampleRatio: f.traceRatio, LogWriter: io.Discard})
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = tel.Shutdown(sctx) // the load generator's own spans: best effort
		}()
		opts = append(opts, client.WithTracerProvider(tel.TracerProvider()))
	}
	c, err := client.New(f.target, opts...)
	if err != nil {
		return err
	}
	if defaultInflight {
		f.inflight = 256
	}
	ctx, cancel := context.WithTimeout(ctx, f.duration)
	defer cancel()
	tr, err := sim.NewTraffic(f.world(), c, sim.TrafficConfig{Rate: f.rate, Seed: f.seed, MaxInFlight: f.inflight})
	if err != nil {
		return err
	}
	if err := tr.Run(ctx); err != nil {
		return err
	}
	return emit(f, tr.Report())
}

// target returns the HTTP target of the workload.
func (f *loadgenFlags) httpTarget() (*loadtest.HTTP, error) {
	base := strings.TrimRight(f.target, "/")
	switch f.workload {
	case "recommend":
		return loadtest.NewHTTP(base+"/v1/recommendations", loadtest.HTTPConfig{MaxConns: f.inflight, Body: loadtest.RecommendBody(f.users, f.count), Header: f.keyHeader()})
	case "events":
		return loadtest.NewHTTP(base+"/v1/events", loadtest.HTTPConfig{MaxConns: f.inflight, Body: loadtest.EventsBody(f.run, f.users, f.items, f.batch), Header: f.keyHeader()})
	}
	return nil, fmt.Errorf("unknown workload %q: want recommend or events", f.workload)
}

// closingTarget is a target with connections to close.
type closingTarget interface {
	loadtest.Target
	Close()
}

func runOpen(ctx context.Context, f *loadgenFlags) error {
	var t closingTarget
	var err error
	if f.workload == "kafka-events" {
		t, err = newKafkaTarget(ctx, f)
	} else {
		t, err = f.httpTarget()
	}
	if err != nil {
		return err
	}
	defer t.Close()
	out := map[string]any{"mode": "open", "workload": f.workload}
	var probe *loadtest.LagProbe
	var wg sync.WaitGroup
	pctx, stop := context.WithCancel(ctx)
	lagTarget := f.target
	if f.lagTarget != "" {
		lagTarget = f.lagTarget
	}
	if f.lag {
		probe = loadtest.NewLagProbe(lagTarget, 100*time.Millisecond)
		wg.Go(func() { _ = probe.Run(pctx) })
	}
	r, err := loadtest.Run(ctx, t, loadtest.Config{Rate: f.rate, Duration: f.duration, MaxInFlight: f.inflight, Timeout: f.timeout, Name: f.workload})
	if err == nil && probe != nil {
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		d, derr := loadtest.Drain(dctx, lagTarget)
		cancel()
		out["drain_ms"] = d.Seconds() * 1e3
		if derr != nil {
			out["drain_error"] = derr.Error()
		}
	}
	stop()
	wg.Wait()
	if err != nil {
		return err
	}
	out["report"] = r
	if f.workload == "events" || f.workload == "kafka-events" {
		out["events_per_second"] = r.Throughput * float64(f.batch)
	}
	if probe != nil {
		out["ingest_lag_ms"] = probe.Lag.Summary()
		out["lag_sample_failures"] = probe.Failures
	}
	return emit(f, out)
}

func runMax(ctx context.Context, f *loadgenFlags) error {
	t, err := f.httpTarget()
	if err != nil {
		return err
	}
	defer t.Close()
	res, err := loadtest.MaxRate(ctx, t, loadtest.SearchConfig{
		Start: f.start, Factor: f.factor, Refine: f.refine, Retries: f.retries, Step: f.step, P99: f.p99, MaxErrorRatio: f.maxErr,
		Run: loadtest.Config{MaxInFlight: f.inflight, Timeout: f.timeout, Name: f.workload},
		OnStep: func(r *loadtest.Report, pass bool) {
			fmt.Fprintf(os.Stderr, "loadgen: %s %8.0f/s  p99 %8.3fms  errors %d %v  pass %v\n",
				f.workload, r.Rate, r.Latency.P99, r.Errors, r.ErrorsByKind, pass)
		},
	})
	if err != nil {
		return err
	}
	return emit(f, map[string]any{"mode": "max", "workload": f.workload, "search": res})
}

// runBare serves the baseline handler until ctx is done.
func runBare(ctx context.Context, f *loadgenFlags) error {
	n := f.bodyBytes
	if n <= 0 {
		size, err := recommendationSize(ctx, f)
		if err != nil {
			return fmt.Errorf("size one recommendation: %w", err)
		}
		n = size
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: loadtest.BareHandler(loadtest.PaddedJSON(n)), ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(os.Stderr, "loadgen: bare handler on %s, %d-byte body\n", ln.Addr(), n)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// recommendationSize returns the body size of one recommendation answered
// by the node at f.target.
func recommendationSize(ctx context.Context, f *loadgenFlags) (int, error) {
	body := loadtest.RecommendBody(f.users, f.count)(nil, 0)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(f.target, "/")+"/v1/recommendations", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = &loadtest.StatusError{Code: resp.StatusCode}
	}
	return len(b), err
}

func emit(f *loadgenFlags, v any) error {
	if f.report == "line" {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Println(string(b))
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
