package main

import (
	"context"

	"go.opentelemetry.io/otel"

	"github.com/sightline/sightline/internal/app"
)

func runServe(ctx context.Context, args []string) error {
	fs := newFlagSet("serve", "Run a Sightline node until SIGINT or SIGTERM, then drain, snapshot and exit.")
	cfg, level := nodeFlags(fs)
	rt := runtimeFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	rt.apply()
	if err := finish(cfg, *level); err != nil {
		return err
	}
	n, err := app.New(ctx, *cfg)
	if err != nil {
		return err
	}
	otel.SetErrorHandler(n.Telemetry().ErrorHandler())
	return n.Run(ctx)
}
