package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/sim"
)

func runLoadgen(ctx context.Context, args []string) error {
	fs := newFlagSet("loadgen", "Drive simulated users against a running node: recommend, send impressions, send clicks\ndrawn from the synthetic ground truth. Prints a JSON report at the end.")
	target := fs.String("target", "http://127.0.0.1:8080", "base URL of the node")
	rate := fs.Float64("rate", 200, "recommendation requests per second (open loop)")
	duration := fs.Duration("duration", 30*time.Second, "how long to run")
	users := fs.Int("users", 100_000, "simulated users")
	items := fs.Int("items", 10_000, "catalog items")
	seed := fs.Int64("seed", 1, "seed of the synthetic world and traffic")
	load := fs.Bool("load-world", false, "import the world's users and items first")
	inflight := fs.Int("max-inflight", 256, "most concurrent requests; later arrivals are dropped and counted")
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := client.New(*target)
	if err != nil {
		return err
	}
	world := sim.NewWorld(sim.WorldConfig{Seed: *seed, Users: *users, Items: *items})
	if *load {
		if err := world.Load(ctx, c); err != nil {
			return fmt.Errorf("load world: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	tr, err := sim.NewTraffic(world, c, sim.TrafficConfig{Rate: *rate, Seed: *seed, MaxInFlight: *inflight})
	if err != nil {
		return err
	}
	if err := tr.Run(ctx); err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(tr.Report())
}
