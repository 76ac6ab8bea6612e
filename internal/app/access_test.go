package app

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/api"
	"github.com/sightline/sightline/internal/api/apitest"
)

// wantScopes is the scope every route of a --role all node must have; the
// table in docs/security.md says the same. A route added without a line
// here fails TestRouteScopes.
var wantScopes = map[string]api.Scope{
	"POST /v1/recommendations":                api.ScopeRecommend,
	"GET /v1/users/{user_id}/recommendations": api.ScopeRecommend,
	"POST /v1/events":                         api.ScopeIngest,
	"PUT /v1/users/{user_id}":                 api.ScopeIngest,
	"PUT /v1/items/{item_id}":                 api.ScopeIngest,
	"POST /v1/users:import":                   api.ScopeIngest,
	"POST /v1/items:import":                   api.ScopeIngest,
	"GET /v1/users/{user_id}":                 api.ScopeIngest,
	"DELETE /v1/users/{user_id}":              api.ScopeIngest,
	"GET /v1/items/{item_id}":                 api.ScopeIngest,
	"GET /v1/decisions/{request_id}":          api.ScopeRead,
	"GET /v1/stats":                           api.ScopeRead,
	"GET /v1/traces":                          api.ScopeRead,
	"GET /v1/traces/{trace_id}":               api.ScopeRead,
	"GET /v1/logs":                            api.ScopeRead,
	"GET /v1/alerts":                          api.ScopeRead,
	"GET /v1/slos":                            api.ScopeRead,
	"GET /v1/experiments":                     api.ScopeRead,
	"GET /v1/rollouts":                        api.ScopeRead,
	"GET /metrics":                            api.ScopeRead,
	"GET /admin/faults":                       api.ScopeRead,
	"POST /admin/snapshot":                    api.ScopeAdmin,
	"POST /admin/faults":                      api.ScopeAdmin,
	"POST /admin/rollouts":                    api.ScopeAdmin,
	"POST /admin/rollouts/abort":              api.ScopeAdmin,
	"GET /debug/pprof/":                       api.ScopeAdmin,
	"GET /debug/pprof/profile":                api.ScopeAdmin,
	"GET /debug/pprof/trace":                  api.ScopeAdmin,
	"GET /healthz":                            api.ScopePublic,
	"GET /readyz":                             api.ScopePublic,
	"GET /openapi.json":                       api.ScopePublic,
	"GET /static/":                            api.ScopePublic,
	"GET /{$}":                                api.ScopeRead,
	"GET /traces":                             api.ScopeRead,
	"GET /traces/{trace_id}":                  api.ScopeRead,
	"GET /logs":                               api.ScopeRead,
	"GET /decisions":                          api.ScopeRead,
	"GET /decisions/{request_id}":             api.ScopeRead,
	"GET /model":                              api.ScopeRead,
	"GET /experiments":                        api.ScopeRead,
	"GET /rollouts":                           api.ScopeRead,
	"GET /evaluate":                           api.ScopeRead,
	"GET /alerts":                             api.ScopeRead,
	"GET /drills":                             api.ScopeRead,
	"GET /console/api/series":                 api.ScopeRead,
}

// TestRouteScopes checks that every route a node serves has the scope of
// the table above, that openapi.json's x-scope of each documented
// operation agrees, and that docs/security.md lists each route with it.
func TestRouteScopes(t *testing.T) {
	n := startNode(t, Config{AlertInterval: -1})
	srv := n.Handler().(*api.Server)
	var doc struct {
		Paths map[string]map[string]struct {
			Scope string `json:"x-scope"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	sec, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, p := range srv.Patterns() {
		served[p] = true
		want, ok := wantScopes[p]
		if !ok {
			t.Errorf("route %s has no scope in wantScopes: decide who may call it, and add it there, to mountScopes (internal/app/access.go) or the API's routes, and to docs/security.md", p)
			continue
		}
		if got, _ := srv.Scope(p); got != want {
			t.Errorf("Scope(%s) = %q, want %q", p, got, want)
		}
		method, path, _ := strings.Cut(p, " ")
		if op, documented := doc.Paths[path][strings.ToLower(method)]; documented && op.Scope != string(want) {
			t.Errorf("openapi.json: %s has x-scope %q, want %q", p, op.Scope, want)
		}
		if row := "| `" + p + "` | " + string(want) + " |"; !bytes.Contains(sec, []byte(row)) {
			t.Errorf("docs/security.md lacks the row %q", row)
		}
	}
	for p := range wantScopes {
		if !served[p] {
			t.Errorf("wantScopes names %s, which the node does not route", p)
		}
	}
}

// keyring makes a key per scope (and one with every scope) for a test.
type keyring struct {
	secrets map[string]string
	keys    []api.Key
}

func newKeyring(t testing.TB) *keyring {
	t.Helper()
	k := &keyring{secrets: map[string]string{}}
	for name, scopes := range map[string][]api.Scope{
		"recommend": {api.ScopeRecommend}, "ingest": {api.ScopeIngest}, "read": {api.ScopeRead}, "admin": {api.ScopeAdmin},
		"all": {api.ScopeRecommend, api.ScopeIngest, api.ScopeRead, api.ScopeAdmin},
	} {
		s, key, err := api.NewKey(name, scopes...)
		if err != nil {
			t.Fatal(err)
		}
		k.secrets[name] = s
		k.keys = append(k.keys, key)
	}
	return k
}

// writeFile writes the keys file of k.
func (k *keyring) writeFile(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# test keys\n")
	for _, key := range k.keys {
		b.WriteString(key.Line() + "\n")
	}
	p := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAccessOnNode runs a node with a keys file and the admin token and
// checks, per route kind, the answer to each key: its scope's routes
// answer, others are 403, no key or a wrong one 401; the console opens with
// the read key as a Basic password; the admin token and admin key both
// reach the admin routes; no credential reaches the logs.
func TestAccessOnNode(t *testing.T) {
	kr := newKeyring(t)
	const token = "node-admin-token"
	var logs syncBuffer
	n := startNode(t, Config{AdminToken: token, AlertInterval: -1, LogWriter: &logs, LogLevel: slog.LevelDebug,
		Access: AccessConfig{KeysFile: kr.writeFile(t)}})
	hc := http.DefaultClient // the console and profiler are not in openapi.json; the client below checks the API
	bearer := func(name string) string { return "Bearer " + kr.secrets[name] }
	basic := func(name string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte("console:"+kr.secrets[name]))
	}
	tests := []struct {
		method, path, body, auth string
		status                   int
	}{
		{"POST", "/v1/recommendations", `{"user_id":"u1"}`, "", 401},
		{"POST", "/v1/recommendations", `{"user_id":"u1"}`, bearer("recommend"), 200},
		{"POST", "/v1/recommendations", `{"user_id":"u1"}`, bearer("ingest"), 403},
		{"POST", "/v1/recommendations", `{"user_id":"u1"}`, "Bearer " + token, 403},
		{"PUT", "/v1/users/u1", `{"segment":"new"}`, bearer("ingest"), 204},
		{"PUT", "/v1/users/u1", `{"segment":"new"}`, bearer("read"), 403},
		{"GET", "/v1/users/u1", "", bearer("ingest"), 200},
		{"GET", "/v1/stats", "", bearer("read"), 200},
		{"GET", "/v1/stats", "", bearer("recommend"), 403},
		{"GET", "/v1/traces", "", basic("read"), 200},
		{"GET", "/metrics", "", "", 401},
		{"GET", "/metrics", "", bearer("read"), 200},
		{"GET", "/admin/faults", "", bearer("read"), 200},
		{"GET", "/", "", "", 401},
		{"GET", "/", "", basic("read"), 200},
		{"GET", "/", "", basic("ingest"), 403},
		{"GET", "/console/api/series", "", basic("read"), 200},
		{"GET", "/static/console.css", "", "", 200},
		{"GET", "/healthz", "", "", 200},
		{"GET", "/readyz", "", "", 200},
		{"POST", "/admin/snapshot", "", "", 401},
		{"POST", "/admin/snapshot", "", "Bearer " + token, 200},
		{"POST", "/admin/snapshot", "", bearer("admin"), 200},
		{"POST", "/admin/snapshot", "", bearer("all"), 200},
		{"POST", "/admin/snapshot", "", bearer("read"), 403},
		{"POST", "/admin/snapshot", "", basic("admin"), 401},
		{"GET", "/debug/pprof/", "", bearer("admin"), 200},
		{"GET", "/debug/pprof/", "", bearer("read"), 403},
		{"POST", "/admin/faults", `{"name":"etl-null-age","active":false}`, bearer("admin"), 200},
	}
	for i, tt := range tests {
		st, body := call(t, hc, tt.method, n.base+tt.path, tt.body, "Authorization", tt.auth)
		if st != tt.status {
			scheme, _, _ := strings.Cut(tt.auth, " ")
			t.Errorf("%s %s with %s credential #%d = %d %s, want %d", tt.method, tt.path, scheme, i, st, body, tt.status)
		}
	}
	// The Go client with a key; its requests and the answers are checked
	// against openapi.json, 401 and 403 included.
	c, err := client.New(n.base, client.WithHTTPClient(contractHTTP(t, apitest.Requests|apitest.Responses)), client.WithAPIKey(kr.secrets["recommend"]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Recommend(t.Context(), client.RecommendRequest{UserID: "u2", Count: 2}); err != nil {
		t.Errorf("Recommend with the recommend key: %v", err)
	}
	if _, err := c.Stats(t.Context()); !isStatus(err, 403) {
		t.Errorf("Stats with the recommend key = %v, want a 403", err)
	}
	anon, _ := client.New(n.base, client.WithHTTPClient(contractHTTP(t, apitest.Requests|apitest.Responses)))
	if _, err := anon.SendEvents(t.Context(), []client.Event{{EventID: "e", Type: client.TypeClick, UserID: "u", ItemID: "i"}}); !isStatus(err, 401) {
		t.Errorf("SendEvents without a key = %v, want a 401", err)
	}
	if got := counter(t, n.Node, "sightline_http_auth_failures_total", map[string]string{"route": "POST /admin/snapshot", "reason": "malformed"}); got != 1 {
		t.Errorf("auth failures {POST /admin/snapshot, malformed} = %v, want 1 (Basic on a POST)", got)
	}
	// Keys and the token reach no log: not the stdout JSON, not /v1/logs.
	_, apiLogs := call(t, hc, "GET", n.base+"/v1/logs?level=DEBUG&limit=1000", "", "Authorization", bearer("read"))
	out := logs.String() + string(apiLogs)
	if !strings.Contains(out, "request refused by access control") {
		t.Errorf("logs hold no refusal; want them logged at debug (the level of this node)")
	}
	for name, s := range kr.secrets {
		if strings.Contains(out, s) || strings.Contains(out, s[len(api.KeyPrefix):]) {
			t.Errorf("the %s key is in the logs", name)
		}
	}
	if strings.Contains(out, token) {
		t.Errorf("the admin token is in the logs")
	}
}

func isStatus(err error, status int) bool {
	e, ok := errors.AsType[*client.Error](err)
	return ok && e.Status == status
}

// TestOpenNodeOnlyOnLoopback: a node without keys refuses an address other
// than loopback unless told otherwise, and says why.
func TestOpenNodeOnlyOnLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		_, err := New(t.Context(), Config{Addr: addr, DataDir: t.TempDir(), LogWriter: io.Discard})
		if err == nil || !strings.Contains(err.Error(), "refusing to listen on "+addr+" without API keys") || !strings.Contains(err.Error(), "--insecure-open") {
			t.Errorf("New(Addr %s, no keys) = %v, want a refusal naming --api-keys-file and --insecure-open", addr, err)
		}
	}
	kr := newKeyring(t)
	for _, c := range []AccessConfig{{InsecureOpen: true}, {Keys: kr.keys}} {
		var logs syncBuffer
		n := startNode(t, Config{Addr: "0.0.0.0:0", Access: c, LogWriter: &logs})
		if err := n.stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
		if want := "serving without API keys on an address other than loopback"; c.InsecureOpen && !strings.Contains(logs.String(), want) {
			t.Errorf("an open node on 0.0.0.0 logged no warning %q", want)
		}
		if want := "API keys are sent in clear text"; !c.InsecureOpen && !strings.Contains(logs.String(), want) {
			t.Errorf("a node with keys and no TLS on 0.0.0.0 logged no warning %q", want)
		}
	}
	for addr, want := range map[string]bool{"127.0.0.1:80": true, "127.9.9.9:80": true, "[::1]:80": true, "localhost:80": true,
		":80": false, "0.0.0.0:80": false, "[::]:80": false, "10.1.2.3:80": false, "example.com:80": false, "bad": false} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestTLS serves a node over TLS with a certificate made for the test: the
// Go client trusting it gets answers with its key; plain HTTP gets none;
// a certificate without its key, or a wrong pair, fails New.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, dir)
	kr := newKeyring(t)
	n, err := New(t.Context(), Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), LogWriter: io.Discard, SnapshotInterval: -1, AlertInterval: -1,
		Access: AccessConfig{Keys: kr.keys, TLSCert: certFile, TLSKey: keyFile}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := n.Listen()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(t.Context())
	go func() { done <- n.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	base := "https://" + n.Addr()
	c, err := client.New(base, client.WithHTTPClient(&http.Client{Transport: tr}), client.WithAPIKey(kr.secrets["all"]))
	if err != nil {
		t.Fatal(err)
	}
	var ready error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ready = c.Health(t.Context()); ready == nil {
			break
		}
	}
	if ready != nil {
		t.Fatalf("Health over TLS: %v", ready)
	}
	if _, err := c.Recommend(t.Context(), client.RecommendRequest{UserID: "u1", Count: 3}); err != nil {
		t.Errorf("Recommend over TLS: %v", err)
	}
	resp, err := (&http.Client{Transport: tr}).Get(base + "/healthz")
	if err != nil || resp.ProtoMajor != 2 {
		t.Errorf("GET /healthz over TLS = %v, %v; want HTTP/2", resp, err)
	} else {
		resp.Body.Close()
	}
	if resp, err := http.Get("http://" + n.Addr() + "/healthz"); err == nil {
		if resp.StatusCode == 200 {
			t.Errorf("plain HTTP to the TLS port = 200, want no answer")
		}
		resp.Body.Close()
	}

	for name, ac := range map[string]AccessConfig{
		"cert without key": {InsecureOpen: true, TLSCert: certFile},
		"key as cert":      {InsecureOpen: true, TLSCert: keyFile, TLSKey: keyFile},
		"missing files":    {InsecureOpen: true, TLSCert: filepath.Join(dir, "nope.pem"), TLSKey: filepath.Join(dir, "nope.key")},
	} {
		if _, err := New(t.Context(), Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), LogWriter: io.Discard, Access: ac}); err == nil || !strings.Contains(err.Error(), "tls") {
			t.Errorf("New with %s = %v, want a tls error", name, err)
		}
	}
}

// writeCert writes a self-signed ECDSA certificate for 127.0.0.1 and its
// key as PEM files under dir.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sightline test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestAccessCluster checks the cluster shape: a trainer and an API node
// started with the same keys file check keys the same way, on the API, the
// operational routes and the console.
func TestAccessCluster(t *testing.T) {
	addr, prefix := testRedis(t)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(kc.Close)
	kr := newKeyring(t)
	base := Config{
		Bus: BusKafka, KafkaBrokers: kc.ListenAddrs(), KafkaTopic: "events", KafkaDecisionsTopic: "decisions", KafkaPartitions: 2,
		FeatureStore: StoreRedis, RedisAddr: addr, RedisPrefix: prefix, RedisTimeout: time.Second,
		PublishInterval: 100 * time.Millisecond, FollowInterval: 50 * time.Millisecond, TrainerLease: time.Second, AlertInterval: -1,
		Access: AccessConfig{KeysFile: kr.writeFile(t)},
	}
	tc, ac := base, base
	tc.Role, tc.NodeName = RoleTrainer, "trainer-1"
	ac.Role, ac.NodeName = RoleAPI, "api-1"
	trainer := startNode(t, tc)
	apiNode := startNode(t, ac)
	hc := contractHTTP(t, apitest.Requests|apitest.Responses)
	keyed := func(name string) *client.Client {
		c, err := client.New(apiNode.base, client.WithHTTPClient(hc), client.WithAPIKey(kr.secrets[name]))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := smallWorld().Load(t.Context(), keyed("ingest")); err != nil {
		t.Fatalf("load the world with the ingest key: %v", err)
	}
	rec := keyed("recommend")
	poll(t, 10*time.Second, func() (bool, string) {
		r, err := rec.Recommend(t.Context(), client.RecommendRequest{UserID: smallWorld().User(1).ID, Count: 5, Context: client.Context{Channel: "web"}})
		return err == nil && len(r.Items) > 0, fmt.Sprintf("recommendation: %v", err)
	})
	if _, err := apiNode.c.Recommend(t.Context(), client.RecommendRequest{UserID: "u1"}); !isStatus(err, 401) {
		t.Errorf("API node: Recommend without a key = %v, want a 401", err)
	}
	if err := smallWorld().Load(t.Context(), rec); !isStatus(err, 403) {
		t.Errorf("API node: import with the recommend key = %v, want a 403", err)
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("x:"+kr.secrets["read"]))
	for _, node := range []*testNode{trainer, apiNode} {
		for _, tt := range []struct {
			method, path, auth string
			status             int
		}{
			{"GET", "/v1/stats", "", 401},
			{"GET", "/v1/stats", "Bearer " + kr.secrets["read"], 200},
			{"GET", "/v1/stats", "Bearer " + kr.secrets["ingest"], 403},
			{"GET", "/", basic, 200},
			{"GET", "/metrics", "Bearer " + kr.secrets["read"], 200},
			{"POST", "/admin/snapshot", "Bearer " + kr.secrets["read"], 403},
			{"GET", "/readyz", "", 200},
		} {
			if st, body := call(t, http.DefaultClient, tt.method, node.base+tt.path, "", "Authorization", tt.auth); st != tt.status {
				t.Errorf("%s: %s %s = %d %.200s, want %d", node.cfg.Role, tt.method, tt.path, st, body, tt.status)
			}
		}
	}
}

// TestConsoleWithKeysInBrowser opens the console of a node with keys in
// headless Chromium (SIGHTLINE_TEST_CHROMIUM; skipped when unset). Without a
// key the page is refused. Answering the browser's Basic challenge with the
// read key, as a person answers its prompt, opens the overview, and its
// script's fetches of the chart series succeed with the credentials the
// browser keeps: the key is asked for once.
func TestConsoleWithKeysInBrowser(t *testing.T) {
	path := os.Getenv("SIGHTLINE_TEST_CHROMIUM")
	if path == "" {
		t.Skip("SIGHTLINE_TEST_CHROMIUM not set (path of a Chromium binary)")
	}
	kr := newKeyring(t)
	n := startNode(t, Config{AlertInterval: -1, Access: AccessConfig{Keys: kr.keys}})
	tab := func() context.Context {
		opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
			chromedp.UserDataDir(t.TempDir()), chromedp.Flag("disable-quic", true), chromedp.Flag("no-first-run", true),
			chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true))
		actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancelTab := chromedp.NewContext(actx)
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		t.Cleanup(func() { cancel(); _ = chromedp.Cancel(ctx); cancelTab(); cancelAlloc() })
		return ctx
	}

	// No key: headless Chromium has no prompt, so the navigation fails on
	// the challenge (a person would see the prompt, then the 401 problem).
	if err := chromedp.Do(tab(), chromedp.Navigate(n.base+"/")); err == nil || !strings.Contains(err.Error(), "AUTH") {
		t.Errorf("opening the console without a key = %v, want the browser's auth failure", err)
	}

	ctx := tab()
	if err := chromedp.Do(ctx); err != nil { // start the browser
		t.Fatal(err)
	}
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	challenged := chromedp.Events(ctx, fetch.AuthRequired)
	var prompts atomic.Int32
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()
	go func() {
		for ev, err := range challenged {
			if err != nil {
				return
			}
			prompts.Add(1)
			_, _ = chromedp.Call(ctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID,
				AuthChallengeResponse: &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseProvideCredentials,
					Username: "console", Password: kr.secrets["read"]}})
		}
	}()
	yes := true
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{HandleAuthRequests: &yes}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(n.base+"/"), chromedp.WaitVisible("[data-series-url][data-points]")); err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Text("body"))
		t.Fatalf("the console with the read key: %v (page: %.300s)", err, text)
	}
	text, err := chromedp.Run(ctx, chromedp.Text("main"))
	if err != nil || !strings.Contains(text, "Overview") {
		t.Errorf("the console's main = %.200q, %v; want the overview", text, err)
	}
	if got := prompts.Load(); got != 1 {
		t.Errorf("the browser was challenged %d times, want once (the key kept for the page's own requests)", got)
	}
}
