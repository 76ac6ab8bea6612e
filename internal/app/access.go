package app

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/sightline/sightline/internal/api"
)

// AccessConfig is who may call a node and how: API keys, the open mode's
// loopback rule and TLS. The zero value is an open node that listens only
// on loopback, without TLS. docs/security.md has the threat model.
type AccessConfig struct {
	// KeysFile is the API keys file (--api-keys-file): one key a line,
	// "name scopes sha256:<hex>" (api.ParseKeys). With keys, every route
	// but the public ones needs a key holding its scope.
	KeysFile string
	// Keys are accepted besides the file's (tests and drills make them
	// with api.NewKey).
	Keys []api.Key
	// InsecureOpen lets a node without keys listen on an address other
	// than loopback (--insecure-open), for a node behind something that
	// controls who reaches it.
	InsecureOpen bool
	// TLSCert and TLSKey are PEM files of the certificate (chain) and its
	// private key (--tls-cert, --tls-key); with both, the node serves
	// HTTPS only.
	TLSCert, TLSKey string

	keys []api.Key   // KeysFile's and Keys, once prepared
	tls  *tls.Config // from TLSCert and TLSKey, once prepared
}

// prepare loads the keys and the certificate, and refuses an open node on
// an address other than loopback. New calls it before opening anything.
func (c *AccessConfig) prepare(addr string) error {
	c.keys = append([]api.Key(nil), c.Keys...)
	if c.KeysFile != "" {
		keys, err := api.LoadKeys(c.KeysFile)
		if err != nil {
			return err
		}
		c.keys = append(c.keys, keys...)
	}
	if len(c.keys) == 0 && !c.InsecureOpen && !loopback(addr) {
		return fmt.Errorf("refusing to listen on %s without API keys: anyone who can reach it could ask for recommendations, "+
			"write events and profiles, and read decisions, logs and traces; set --api-keys-file (docs/security.md), "+
			"listen on loopback (--addr 127.0.0.1:8080), or pass --insecure-open if what stands in front of the node "+
			"(an authenticating proxy, a private network) decides who reaches it", addr)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls: --tls-cert and --tls-key go together: give both, or neither to serve plain HTTP")
	}
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return fmt.Errorf("tls: load --tls-cert and --tls-key: %w", err)
		}
		c.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	}
	return nil
}

// loopback reports whether addr (host:port) listens on loopback only: an
// IP loopback address or "localhost". An empty host listens everywhere.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// secureListener wraps ln in TLS when the node has a certificate, and
// says how the node is reachable: open on loopback, open on purpose, or
// with keys sent in the clear.
func (n *Node) secureListener(ln net.Listener) net.Listener {
	c := &n.cfg.Access
	addr := ln.Addr().String()
	switch {
	case len(c.keys) == 0 && !loopback(addr):
		n.logger.Warn("serving without API keys on an address other than loopback (--insecure-open): whoever reaches it can call every route but the admin ones",
			slog.String("addr", addr))
	case len(c.keys) > 0 && c.tls == nil && !loopback(addr):
		n.logger.Warn("API keys are sent in clear text: serve TLS (--tls-cert, --tls-key) or terminate it in front of the node",
			slog.String("addr", addr))
	}
	if c.tls == nil {
		return ln
	}
	return tls.NewListener(ln, c.tls)
}

// api is the API's access configuration: the keys, the admin token and
// the scope of every route the node mounts.
func (c *AccessConfig) api(adminToken string) api.AccessConfig {
	return api.AccessConfig{Keys: c.keys, AdminToken: adminToken, MountScopes: mountScopes}
}

// mountScopes is the scope of every route a node mounts beside the API
// (the API's own routes carry theirs, internal/api). A route mounted
// without a scope here fails api.New, so a node cannot be built with a
// route that access control does not know; docs/security.md lists them.
var mountScopes = map[string]api.Scope{
	"GET /metrics":               api.ScopeRead,
	"GET /v1/traces":             api.ScopeRead,
	"GET /v1/traces/{trace_id}":  api.ScopeRead,
	"GET /v1/logs":               api.ScopeRead,
	"GET /v1/alerts":             api.ScopeRead,
	"GET /v1/slos":               api.ScopeRead,
	"GET /v1/experiments":        api.ScopeRead,
	"GET /v1/rollouts":           api.ScopeRead,
	"GET /admin/faults":          api.ScopeRead,
	"POST /admin/snapshot":       api.ScopeAdmin,
	"POST /admin/faults":         api.ScopeAdmin,
	"POST /admin/rollouts":       api.ScopeAdmin,
	"POST /admin/rollouts/abort": api.ScopeAdmin,
	"GET /debug/pprof/":          api.ScopeAdmin,
	"GET /debug/pprof/profile":   api.ScopeAdmin,
	"GET /debug/pprof/trace":     api.ScopeAdmin,
	// The console: its pages and the series its charts read; its static
	// assets (style and script, no data) are public.
	"GET /{$}":                    api.ScopeRead,
	"GET /traces":                 api.ScopeRead,
	"GET /traces/{trace_id}":      api.ScopeRead,
	"GET /logs":                   api.ScopeRead,
	"GET /decisions":              api.ScopeRead,
	"GET /decisions/{request_id}": api.ScopeRead,
	"GET /model":                  api.ScopeRead,
	"GET /experiments":            api.ScopeRead,
	"GET /rollouts":               api.ScopeRead,
	"GET /evaluate":               api.ScopeRead,
	"GET /alerts":                 api.ScopeRead,
	"GET /drills":                 api.ScopeRead,
	"GET /console/api/series":     api.ScopeRead,
	"GET /static/":                api.ScopePublic,
}
