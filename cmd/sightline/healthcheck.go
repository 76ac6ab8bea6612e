package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// runHealthcheck asks a node's /healthz and succeeds only on a 200. It
// needs no shell, curl or wget, so it works in an image built FROM
// scratch. The node is found by --url, else by --addr, which reads
// SIGHTLINE_ADDR like serve does: inside the container the same variable
// configures both.
func runHealthcheck(ctx context.Context, args []string) error {
	fs := newFlagSet("healthcheck", "Probe a running node's /healthz: exit 0 when it answers 200 within --timeout, 1 otherwise.")
	addr := fs.String("addr", "127.0.0.1:8080", "the node's listen address (serve's --addr); an unspecified host (\":8080\", \"0.0.0.0:8080\") is probed on 127.0.0.1")
	probeURL := fs.String("url", "", "full URL to probe instead of http://<addr>/healthz")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := parse(fs, args); err != nil {
		return err
	}
	target := *probeURL
	if target == "" {
		u, err := healthzURL(*addr)
		if err != nil {
			return err
		}
		target = u
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("probe %s: %w", target, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe %s: %s: %s", target, resp.Status, body)
	}
	return nil
}

// healthzURL returns the /healthz URL of a node listening on addr; an
// unspecified host is replaced by the loopback address.
func healthzURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}
