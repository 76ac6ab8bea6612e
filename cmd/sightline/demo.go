package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"golang.org/x/sync/errgroup"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/app"
	"github.com/sightline/sightline/internal/faults"
	"github.com/sightline/sightline/internal/sim"
)

func runDemo(ctx context.Context, args []string) error {
	fs := newFlagSet("demo", "Start a node, load a synthetic world (users, items, ground-truth affinities), drive simulated\nusers against it over HTTP and print one summary line every few seconds.")
	cfg, level := nodeFlags(fs)
	rate := fs.Float64("rate", 200, "simulated recommendation requests per second")
	duration := fs.Duration("duration", 0, "stop after this long (0 runs until SIGINT)")
	users := fs.Int("users", 100_000, "simulated users")
	items := fs.Int("items", 10_000, "catalog items")
	seed := fs.Int64("seed", 1, "seed of the synthetic world and traffic")
	every := fs.Duration("summary-every", 5*time.Second, "how often to print the summary line")
	logs := fs.String("log-file", "", "write the node's JSON logs here (default: discard; the console and /v1/logs still have them)")
	rt := runtimeFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	rt.apply()
	if err := finish(cfg, *level); err != nil {
		return err
	}
	cfg.LogWriter = io.Discard
	if *logs != "" {
		f, err := os.Create(*logs)
		if err != nil {
			return err
		}
		defer f.Close()
		cfg.LogWriter = f
	}
	if cfg.AdminToken == "" {
		b := make([]byte, 12)
		rand.Read(b)
		cfg.AdminToken = hex.EncodeToString(b)
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	var worldp atomic.Pointer[sim.World] // set once the world is built
	cfg.OnFault = func(name string, on bool) {
		if w := worldp.Load(); name == faults.PopularityShift && w != nil {
			w.ShiftAffinities(on)
		}
	}
	node, err := app.New(ctx, *cfg)
	if err != nil {
		return err
	}
	// Not ready, and no recommendation, until the world is loaded: an
	// answer from a half-loaded catalog has no items.
	loaded := node.Loading("the synthetic world (users and items)")
	otel.SetErrorHandler(node.Telemetry().ErrorHandler())
	ln, err := node.Listen()
	if err != nil {
		return err
	}
	base := "http://" + node.Addr()
	fmt.Printf("sightline demo: serving on %s (console %s/, stats %s/v1/stats, metrics %s/metrics)\n", base, base, base, base)
	fmt.Printf("game day: curl -X POST %s/admin/faults -H 'Authorization: Bearer <token>' -d '{\"name\":\"etl-null-age\",\"active\":true}'\n", base)
	fmt.Printf("admin token: %s\n", cfg.AdminToken)
	fmt.Printf("loading the synthetic world (%d users, %d items): %s/readyz and recommendations answer 503 until it is loaded\n", *users, *items, base)

	g, gctx := errgroup.WithContext(ctx)
	nodeCtx, stopNode := context.WithCancel(context.WithoutCancel(ctx))
	defer stopNode()
	nodeDone := make(chan error, 1)
	go func() { nodeDone <- node.Serve(nodeCtx, ln) }()

	// The simulated users' client starts each request's trace, as a real
	// application's would; the node continues it.
	c, err := client.New(base, client.WithTracerProvider(node.Telemetry().TracerProvider()))
	if err != nil {
		return err
	}
	world := sim.NewWorld(sim.WorldConfig{Seed: *seed, Users: *users, Items: *items})
	worldp.Store(world)
	start := time.Now()
	if err := waitHealthy(gctx, c); err != nil {
		stopNode()
		return errors.Join(err, <-nodeDone)
	}
	if err := world.Load(gctx, c); err != nil && gctx.Err() == nil {
		stopNode()
		return errors.Join(fmt.Errorf("load world: %w", err), <-nodeDone)
	}
	loaded()
	fmt.Printf("loaded %d users and %d items in %v; driving %.0f requests/s\n", *users, *items, time.Since(start).Round(time.Millisecond), *rate)
	traffic, err := sim.NewTraffic(world, c, sim.TrafficConfig{Rate: *rate, Seed: *seed})
	if err != nil {
		return err
	}
	g.Go(func() error { return traffic.Run(gctx) })
	g.Go(func() error {
		t := time.NewTicker(*every)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
				st, err := c.Stats(gctx)
				if err != nil {
					if gctx.Err() != nil {
						return nil
					}
					fmt.Printf("stats: %v\n", err)
					continue
				}
				fmt.Println(summaryLine(time.Since(start), st))
			}
		}
	})
	err = g.Wait()
	if st, serr := c.Stats(context.Background()); serr == nil {
		fmt.Println("final: " + summaryLine(time.Since(start), st))
	}
	rep := traffic.Report()
	fmt.Printf("traffic: %d requests, %d errors, %d dropped, %d impressions, %d clicks (oracle CTR %.3f)\n",
		rep.Requests, rep.Errors, rep.Dropped, rep.Impressions, rep.Clicks, rep.OracleCTR)
	stopNode()
	return errors.Join(err, <-nodeDone)
}

func waitHealthy(ctx context.Context, c *client.Client) error {
	for {
		if err := c.Health(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// summaryLine is the demo's one-line status: QPS, p99, CTR per variant,
// fallback rate.
func summaryLine(elapsed time.Duration, st *client.Stats) string {
	var b strings.Builder
	fmt.Fprintf(&b, "t=%-5s qps=%-6.0f p99=%.2fms", elapsed.Round(time.Second), st.RequestsPerSecond, st.Latency.P99)
	names := make([]string, 0, len(st.CTRByVariant))
	for v := range st.CTRByVariant {
		names = append(names, v)
	}
	sort.Strings(names)
	for _, v := range names {
		fmt.Fprintf(&b, " ctr[%s]=%.4f", v, st.CTRByVariant[v].CTR)
	}
	fmt.Fprintf(&b, " fallback=%.2f%% events/s=%.0f model=%s", st.FallbackRate*100, st.EventsPerSecond, st.ModelVersion)
	return b.String()
}
