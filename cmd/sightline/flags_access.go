package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/sightline/sightline/internal/api"
	"github.com/sightline/sightline/internal/app"
)

// accessFlags registers the flags of API keys, TLS and admission control
// on fs.
func accessFlags(fs *flag.FlagSet, c *app.Config) {
	a, ad := &c.Access, &c.Admission
	fs.StringVar(&a.KeysFile, "api-keys-file", "", "file of API keys, one a line: name scopes sha256:<hex> (scopes of recommend, ingest, read, admin; 'sightline keys' makes one); without it the node is open and listens only on loopback")
	fs.BoolVar(&a.InsecureOpen, "insecure-open", false, "serve without API keys on an address other than loopback (for a node behind an authenticating proxy or on a private network)")
	fs.StringVar(&a.TLSCert, "tls-cert", "", "PEM certificate (chain) to serve HTTPS with, with --tls-key")
	fs.StringVar(&a.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.IntVar(&ad.MaxInFlight, "max-inflight", app.DefaultMaxInFlight(), "recommendation requests handled at once; up to four times as many more wait (--admission-interval, --admission-wait), then get 429 with Retry-After (default 8 per core: Go's default GOMAXPROCS; negative: no limit)")
	fs.DurationVar(&ad.Wait, "admission-wait", api.DefaultAdmissionWait, "how long a recommendation request past --max-inflight waits for a slot before its 429 when the queue has not been empty for --admission-interval (the node past its capacity)")
	fs.DurationVar(&ad.Interval, "admission-interval", api.DefaultAdmissionInterval, "how long a burst may queue: a recommendation request past --max-inflight waits up to this long for a slot while the queue has been empty within it (a burst or a short stall drains instead of getting 429s)")
	fs.DurationVar(&ad.Target, "admission-target", 0, "if set, the recommendation limit adapts: it shrinks while requests take longer than this and grows back to --max-inflight while they do not (0: fixed)")
	fs.IntVar(&ad.MaxInFlightEvents, "max-inflight-events", app.DefaultMaxInFlightEvents(), "POST /v1/events batches handled at once; more wait up to --admission-wait-events, then get 429 with Retry-After (default 4 per core: Go's default GOMAXPROCS; negative: no limit)")
	fs.DurationVar(&ad.EventsWait, "admission-wait-events", app.DefaultEventsWait, "how long an event batch past --max-inflight-events waits for a slot before its 429")
}

const keysSummary = `Make an API key: print the secret (give it to the client, keep it nowhere else) and the
line of the --api-keys-file that accepts it (the file holds only its SHA-256).`

// runKeys makes an API key.
func runKeys(_ context.Context, args []string) error { return makeKey(args, os.Stdout, os.Stderr) }

// makeKey parses the keys command's flags, writes the key and its line to
// out and the words around them to msg.
func makeKey(args []string, out, msg io.Writer) error {
	fs := newFlagSet("keys", keysSummary)
	name := fs.String("name", "", "name of the key (1 to 64 of [A-Za-z0-9._-]), shown in 403 details and logs")
	scopes := fs.String("scopes", "", "comma-separated scopes: recommend, ingest, read, admin")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *scopes == "" {
		return fmt.Errorf("--scopes: give at least one of recommend, ingest, read, admin")
	}
	sc, err := api.ParseKeyScopes(*scopes)
	if err != nil {
		return fmt.Errorf("--scopes: %w", err)
	}
	secret, k, err := api.NewKey(*name, sc...)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(msg, "the key (send it as Authorization: Bearer <key>; it is shown once):\n")
	if err == nil {
		_, err = fmt.Fprintln(out, secret)
	}
	if err == nil {
		_, err = fmt.Fprintf(msg, "the line for --api-keys-file:\n")
	}
	if err == nil {
		_, err = fmt.Fprintln(out, k.Line())
	}
	return err
}
