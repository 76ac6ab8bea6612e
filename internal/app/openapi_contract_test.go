package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/api"
	"github.com/sightline/sightline/internal/api/apitest"
	"github.com/sightline/sightline/internal/model"
)

// undocumented are the node's routes that openapi.json leaves out: the
// console's HTML pages and assets (a UI, not an API) and Go's standard
// profiler (net/http/pprof, documented by Go).
func undocumented(pattern string) bool {
	return slices.Contains(consolePaths, pattern) || strings.HasPrefix(pattern, "GET /debug/pprof/")
}

// contractHTTP returns an HTTP client whose transport checks what checks
// says of every exchange against openapi.json, failing t on a mismatch.
func contractHTTP(t *testing.T, checks apitest.Check) *http.Client {
	t.Helper()
	v, err := apitest.Default()
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return &http.Client{Transport: v.Transport(t, nil, checks)}
}

// call sends one request and returns the status and body; the client's
// transport does the contract checks.
func call(t *testing.T, hc *http.Client, method, u, body string, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, u, err)
	}
	return resp.StatusCode, b
}

// TestOpenAPIContract runs a node and drives every operation openapi.json
// documents, its success and its problem answers, through clients that
// validate each request and response against the document: a route, a
// status or a response field (schemas are closed) that the document lacks
// fails here. It also checks that the node routes exactly the documented
// operations, besides its console and profiler.
func TestOpenAPIContract(t *testing.T) {
	const token = "contract-token"
	n := startNode(t, Config{AdminToken: token, TraceSampleRatio: 1, AlertInterval: -1})
	v, err := apitest.Default()
	if err != nil {
		t.Fatal(err)
	}
	srv, ok := n.Handler().(*api.Server)
	if !ok {
		t.Fatalf("Handler() is a %T, want the *api.Server", n.Handler())
	}
	var served []string
	for _, p := range srv.Patterns() {
		if !undocumented(p) {
			served = append(served, p)
		}
	}
	slices.Sort(served)
	if diff := cmp.Diff(v.Operations(), served); diff != "" {
		t.Errorf("openapi.json operations vs the node's routes (-documented +served):\n%s", diff)
	}

	full := contractHTTP(t, apitest.Requests|apitest.Responses)
	// bad sends requests that are off the document on purpose; only the
	// answers are checked.
	bad := contractHTTP(t, apitest.Responses)
	c, err := client.New(n.base, client.WithHTTPClient(full))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	base := n.base
	expect := func(method, path string, status int, got int, body []byte) {
		t.Helper()
		if got != status {
			t.Errorf("%s %s = %d %s, want %d", method, path, got, body, status)
		}
	}

	// The catalog and a profile, then traffic: every client call is
	// checked both ways.
	w := smallWorld()
	if err := w.Load(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := c.PutUser(ctx, client.User{UserID: "etl-victim", Segment: "new", Region: "eu", Device: "ios", Attributes: map[string]string{"plan": "gold"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.PutItem(ctx, client.Item{ItemID: "contract-item", Category: "c-contract", Tags: []string{"t"}, Available: true}); err != nil {
		t.Fatal(err)
	}
	n.Engine().Index().Refresh()
	evs := recommendAndEvents(t, c, w, 0, 20)
	if _, err := c.SendEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitApplied(ctx); err != nil {
		t.Fatal(err)
	}
	fb, err := c.Recommend(ctx, client.RecommendRequest{UserID: "etl-victim", Count: 3, Context: client.Context{Channel: "web"}})
	if err != nil || fb.Fallback == nil {
		t.Fatalf("Recommend(etl-victim) = %+v, %v; want a fallback", fb, err)
	}
	if _, err := c.Decision(ctx, fb.RequestID); err != nil {
		t.Errorf("Decision(%s): %v", fb.RequestID, err)
	}
	if _, err := c.Decision(ctx, evs[0].RequestID); err != nil {
		t.Errorf("Decision(%s): %v", evs[0].RequestID, err)
	}
	if _, err := c.Stats(ctx); err != nil {
		t.Errorf("Stats: %v", err)
	}
	if err := c.Health(ctx); err != nil {
		t.Errorf("Health: %v", err)
	}
	u := url.PathEscape(evs[0].UserID)
	for _, p := range []string{"/v1/users/" + u + "/recommendations?count=2&channel=web&exclude_item_ids=a,b",
		"/v1/users/" + u, "/v1/users/etl-victim", "/v1/items/contract-item", "/readyz", "/openapi.json"} {
		st, body := call(t, full, "GET", base+p, "")
		expect("GET", p, 200, st, body)
	}

	// A firing alert with its labels, as TestSampleRatioMismatchAlert
	// makes one.
	for i := range 20_000 {
		if i%10 != 0 {
			n.experiments.ObserveDecision("ftrl")
		}
		n.experiments.ObserveDecision("popularity")
	}
	now := time.Now()
	n.EvaluateAlerts(ctx, now)
	n.EvaluateAlerts(ctx, now.Add(11*time.Minute))

	// The operational routes.
	auth := []string{"Authorization", "Bearer " + token}
	st, body := call(t, full, "POST", base+"/admin/faults", `{"name":"etl-null-age","active":true}`, auth...)
	expect("POST", "/admin/faults", 200, st, body)
	st, body = call(t, full, "POST", base+"/admin/faults", `{"name":"etl-null-age","active":false}`, auth...)
	expect("POST", "/admin/faults", 200, st, body)
	st, body = call(t, full, "POST", base+"/admin/snapshot", "", auth...)
	expect("POST", "/admin/snapshot", 200, st, body)

	// A rollout of a copy of the model: started, seen, refused while under
	// way, aborted.
	snap := filepath.Join(t.TempDir(), "challenger.snap")
	if err := n.model().SaveFile(snap, model.SnapshotMeta{}); err != nil {
		t.Fatal(err)
	}
	st, body = call(t, full, "GET", base+"/v1/slos", "")
	expect("GET", "/v1/slos", 200, st, body)
	st, body = call(t, full, "GET", base+"/v1/rollouts", "")
	expect("GET", "/v1/rollouts", 200, st, body)
	st, body = call(t, full, "POST", base+"/admin/rollouts", `{"source":"`+snap+`","steps":[0.1,0.5],"step_hold":"1h"}`, auth...)
	expect("POST", "/admin/rollouts", 201, st, body)
	st, body = call(t, full, "POST", base+"/admin/rollouts", `{"source":"`+snap+`"}`, auth...)
	expect("POST", "/admin/rollouts (busy)", 409, st, body)
	st, body = call(t, full, "GET", base+"/v1/rollouts", "")
	expect("GET", "/v1/rollouts (canary)", 200, st, body)
	st, body = call(t, full, "POST", base+"/admin/rollouts/abort", "", auth...)
	expect("POST", "/admin/rollouts/abort", 200, st, body)
	var traces struct {
		Traces []struct {
			TraceID string `json:"trace_id"`
		} `json:"traces"`
	}
	st, body = call(t, full, "GET", base+"/v1/traces?limit=50", "")
	expect("GET", "/v1/traces", 200, st, body)
	if err := json.Unmarshal(body, &traces); err != nil || len(traces.Traces) == 0 {
		t.Fatalf("GET /v1/traces = %s, %v; want kept traces (every trace is sampled)", body, err)
	}
	for _, tr := range traces.Traces[:min(len(traces.Traces), 10)] {
		st, body = call(t, full, "GET", base+"/v1/traces/"+tr.TraceID, "")
		expect("GET", "/v1/traces/{id}", 200, st, body)
	}
	for _, p := range []string{"/v1/traces?fallback=true&route=POST+/v1/recommendations&min_duration=0s", "/v1/logs?level=DEBUG&limit=50",
		"/v1/alerts", "/v1/experiments", "/admin/faults"} {
		st, body = call(t, full, "GET", base+p, "")
		expect("GET", p, 200, st, body)
	}
	if !bytes.Contains(body, []byte(`"faults"`)) {
		t.Errorf("GET /admin/faults = %s, want the faults", body)
	}
	if st, body = call(t, full, "GET", base+"/v1/alerts", ""); !bytes.Contains(body, []byte(`"SampleRatioMismatch"`)) {
		t.Errorf("GET /v1/alerts = %d %s, want the firing SampleRatioMismatch alert", st, body)
	}
	st, body = call(t, full, "GET", base+"/metrics", "")
	expect("GET", "/metrics", 200, st, body)
	st, body = call(t, full, "GET", base+"/metrics", "", "Accept", "application/openmetrics-text; version=1.0.0")
	expect("GET", "/metrics (OpenMetrics)", 200, st, body)

	// The problem answers, each checked against its documented response.
	problems := []struct {
		method, path, body string
		hdr                []string
		status             int
	}{
		{"POST", "/v1/recommendations", `{"user_id":""}`, nil, 400},
		{"POST", "/v1/recommendations", `{"user_id":"u","count":1000}`, nil, 400},
		{"GET", "/v1/users/u1/recommendations?colour=red", "", nil, 400},
		{"POST", "/v1/events", `{"not":"an array"}`, nil, 400},
		{"POST", "/v1/events", "[" + strings.Repeat(`{},`, 1000) + `{}]`, nil, 413},
		{"PUT", "/v1/users/u1", `{"segmnet":"a"}`, nil, 400},
		{"PUT", "/v1/items/i1", `{"tags":["a"]}`, nil, 400},
		{"GET", "/v1/users/nobody-at-all", "", nil, 404},
		{"GET", "/v1/users/a%0Ab", "", nil, 400},
		{"GET", "/v1/items/no-such-item", "", nil, 404},
		{"GET", "/v1/decisions/no-such-decision", "", nil, 404},
		{"GET", "/v1/decisions/a%20b", "", nil, 400},
		{"GET", "/v1/traces?limit=-1", "", nil, 400},
		{"GET", "/v1/traces?slow=maybe", "", nil, 400},
		{"GET", "/v1/traces/0123456789abcdef0123456789abcdef", "", nil, 404},
		{"GET", "/v1/logs?level=loud", "", nil, 400},
		{"POST", "/admin/snapshot", "", nil, 401},
		{"POST", "/admin/faults", `{"name":"etl-null-age","active":true}`, nil, 401},
		{"POST", "/admin/faults", `{"name":"no-such-fault","active":true}`, auth, 400},
		{"POST", "/admin/faults", `{"nme":"x"}`, auth, 400},
		{"POST", "/admin/rollouts", `{"source":"x"}`, nil, 401},
		{"POST", "/admin/rollouts", `{"source":`, auth, 400},
		{"POST", "/admin/rollouts", `{"source":"/no/such.snap"}`, auth, 422},
		{"POST", "/admin/rollouts/abort", "", auth, 409},
		{"POST", "/admin/rollouts/abort", "", nil, 401},
		{"GET", "/v2/nothing", "", nil, 404},
		{"DELETE", "/v1/stats", "", nil, 405},
	}
	for _, p := range problems {
		st, body := call(t, bad, p.method, base+p.path, p.body, p.hdr...)
		expect(p.method, p.path, p.status, st, body)
	}
}

// TestReadBackRoutes reads profiles, activity and items back through
// GET /v1/users/{user_id} and GET /v1/items/{item_id} from both feature
// stores: a user with a profile and clicks, one known only from events, an
// item, and unknown ids (404). Every exchange is checked against
// openapi.json. The Redis case uses the server of SIGHTLINE_TEST_REDIS.
func TestReadBackRoutes(t *testing.T) {
	for _, store := range []string{StoreMemory, StoreRedis} {
		t.Run(store, func(t *testing.T) {
			cfg := Config{}
			if store == StoreRedis {
				addr, prefix := testRedis(t)
				cfg = Config{FeatureStore: StoreRedis, RedisAddr: addr, RedisPrefix: prefix}
			}
			n := startNode(t, cfg)
			hc := contractHTTP(t, apitest.Requests|apitest.Responses)
			c, err := client.New(n.base, client.WithHTTPClient(hc))
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			items := []client.Item{
				{ItemID: "shoe/1", Category: "shoes", Tags: []string{"red"}, Available: true},
				{ItemID: "hat 2", Category: "hats", Available: false},
				{ItemID: "sock-3", Category: "socks", Available: true},
			}
			for _, it := range items {
				if err := c.PutItem(ctx, it); err != nil {
					t.Fatal(err)
				}
			}
			updated := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
			body := `{"age_bucket":"25-34","segment":"s1","region":"eu","device":"ios","attributes":{"plan":"gold"},"updated_at":"` + updated.Format(time.RFC3339) + `"}`
			if st, b := call(t, hc, "PUT", n.base+"/v1/users/ann%40example", body); st != 204 {
				t.Fatalf("PUT user = %d %s", st, b)
			}
			ts := time.Now().UTC()
			evs := []client.Event{
				{EventID: store + "-1", Type: client.TypeClick, UserID: "ann@example", ItemID: "sock-3", Timestamp: ts},
				{EventID: store + "-2", Type: client.TypeClick, UserID: "ann@example", ItemID: "shoe/1", Timestamp: ts.Add(time.Second)},
				{EventID: store + "-3", Type: client.TypeClick, UserID: "bob", ItemID: "shoe/1", Timestamp: ts},
			}
			if _, err := c.SendEvents(ctx, evs); err != nil {
				t.Fatal(err)
			}
			if err := n.WaitApplied(ctx); err != nil {
				t.Fatal(err)
			}

			got := readProfile(t, hc, n.base+"/v1/users/ann%40example")
			want := api.UserProfile{}
			want.ID, want.AgeBucket, want.Segment, want.Region, want.Device = "ann@example", "25-34", "s1", "eu", "ios"
			want.Attrs, want.UpdatedAt = map[string]string{"plan": "gold"}, updated
			want.Activity = api.Activity{RecentItems: []string{"shoe/1", "sock-3"}, RecentCategories: []string{"shoes", "socks"},
				ClickedItems: []string{"shoe/1", "sock-3"}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("GET /v1/users/ann@example mismatch (-want +got):\n%s", diff)
			}
			// bob has clicked but has no profile.
			got = readProfile(t, hc, n.base+"/v1/users/bob")
			want = api.UserProfile{}
			want.ID = "bob"
			want.Activity = api.Activity{RecentItems: []string{"shoe/1"}, RecentCategories: []string{"shoes"}, ClickedItems: []string{"shoe/1"}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("GET /v1/users/bob mismatch (-want +got):\n%s", diff)
			}

			for _, it := range items {
				st, b := call(t, hc, "GET", n.base+"/v1/items/"+url.PathEscape(it.ItemID), "")
				var gotIt client.Item
				if st != 200 || json.Unmarshal(b, &gotIt) != nil {
					t.Errorf("GET item %q = %d %s, want 200", it.ItemID, st, b)
					continue
				}
				if diff := cmp.Diff(it, gotIt); diff != "" {
					t.Errorf("GET item %q mismatch (-want +got):\n%s", it.ItemID, diff)
				}
			}
			for _, p := range []string{"/v1/users/carol", "/v1/items/nothing"} {
				if st, b := call(t, hc, "GET", n.base+p, ""); st != 404 || !strings.Contains(string(b), "not-found") {
					t.Errorf("GET %s = %d %s, want a 404 problem", p, st, b)
				}
			}
		})
	}
}

func readProfile(t *testing.T, hc *http.Client, u string) api.UserProfile {
	t.Helper()
	st, b := call(t, hc, "GET", u, "")
	var p api.UserProfile
	if st != 200 || json.Unmarshal(b, &p) != nil {
		t.Fatalf("GET %s = %d %s, want 200 and a profile", u, st, b)
	}
	return p
}

// TestOpenAPIContractCluster checks the answers only the cluster shape
// gives against openapi.json: a trainer's and an API node's /v1/stats
// (role, active, cluster publication and quality), the API node's
// /v1/alerts with the cluster's quality state, and the read-back routes of
// an API node, whose feature store is the shared Redis.
func TestOpenAPIContractCluster(t *testing.T) {
	addr, prefix := testRedis(t)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(kc.Close)
	base := Config{
		Bus: BusKafka, KafkaBrokers: kc.ListenAddrs(), KafkaTopic: "events", KafkaDecisionsTopic: "decisions", KafkaPartitions: 2,
		FeatureStore: StoreRedis, RedisAddr: addr, RedisPrefix: prefix,
		// A race-instrumented run on a loaded machine can miss the 50 ms
		// default while importing the world, rejecting a line.
		RedisTimeout:    time.Second,
		PublishInterval: 100 * time.Millisecond, FollowInterval: 50 * time.Millisecond, TrainerLease: time.Second,
		AlertInterval: 100 * time.Millisecond,
	}
	tc, ac := base, base
	tc.Role, tc.NodeName = RoleTrainer, "trainer-1"
	ac.Role, ac.NodeName = RoleAPI, "api-1"
	trainer := startNode(t, tc)
	apiNode := startNode(t, ac)
	hc := contractHTTP(t, apitest.Requests|apitest.Responses)
	c, err := client.New(apiNode.base, client.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, func() (bool, string) {
		s := getStats(t, trainer.base)
		return s.Active != nil && *s.Active, fmt.Sprintf("trainer active=%v", s.Active)
	})
	w := smallWorld()
	if err := w.Load(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, func() (bool, string) {
		r, err := apiNode.c.Recommend(t.Context(), client.RecommendRequest{UserID: w.User(1).ID, Count: 5, Context: client.Context{Channel: "web"}})
		return err == nil && len(r.Items) > 0, fmt.Sprintf("recommendation: %v", err)
	})
	evs := recommendAndEvents(t, c, w, 0, 20)
	if _, err := c.SendEvents(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	// Wait for the trainer's quality state to reach the API node.
	poll(t, 15*time.Second, func() (bool, string) {
		var body struct {
			Cluster *clusterQuality `json:"cluster"`
		}
		resp, err := http.Get(apiNode.base + "/v1/alerts")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return false, err.Error()
		}
		return body.Cluster != nil && len(body.Cluster.Served) > 0 && len(body.Cluster.CTR) > 0,
			fmt.Sprintf("cluster quality %+v", body.Cluster)
	})
	for _, u := range []string{trainer.base + "/v1/stats", apiNode.base + "/v1/stats", apiNode.base + "/v1/alerts",
		trainer.base + "/v1/alerts", apiNode.base + "/v1/users/" + url.PathEscape(evs[0].UserID), apiNode.base + "/v1/items/" + url.PathEscape(evs[0].ItemID)} {
		st, body := call(t, hc, "GET", u, "")
		if st != 200 {
			t.Errorf("GET %s = %d %s, want 200", u, st, body)
		}
		if strings.HasSuffix(u, "/v1/stats") && !bytes.Contains(body, []byte(`"cluster":{`)) {
			t.Errorf("GET %s = %s, want the cluster state", u, body)
		}
	}
}

// TestOpenAPIContractRolloutsOnAPINode checks the rollout routes' answers
// on an API node against openapi.json: GET /v1/rollouts shows the
// cluster's rollout from the registry (200) and answers 503
// registry-unavailable when the registry does not answer; starting or
// aborting a rollout there is a 409 rollouts-on-trainer.
func TestOpenAPIContractRolloutsOnAPINode(t *testing.T) {
	addr, prefix := testRedis(t)
	link := newRedisLink(t, addr)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(kc.Close)
	const token = "contract-token"
	n := startNode(t, Config{
		Role: RoleAPI, NodeName: "api-1", AdminToken: token,
		Bus: BusKafka, KafkaBrokers: kc.ListenAddrs(), KafkaTopic: "events", KafkaDecisionsTopic: "decisions", KafkaPartitions: 2,
		FeatureStore: StoreRedis, RedisAddr: link.addr(), RedisPrefix: prefix, RedisTimeout: time.Second,
		PublishInterval: 100 * time.Millisecond, FollowInterval: 50 * time.Millisecond, TrainerLease: time.Second,
	})
	hc := contractHTTP(t, apitest.Requests|apitest.Responses)
	auth := []string{"Authorization", "Bearer " + token}
	if st, body := call(t, hc, "GET", n.base+"/v1/rollouts", ""); st != 200 || !bytes.Contains(body, []byte(`"stage":"idle"`)) {
		t.Errorf("GET /v1/rollouts = %d %s, want 200 idle", st, body)
	}
	link.down()
	st, body := call(t, hc, "GET", n.base+"/v1/rollouts", "")
	if st != 503 || !bytes.Contains(body, []byte("/problems/registry-unavailable")) {
		t.Errorf("GET /v1/rollouts, registry down = %d %s, want 503 registry-unavailable", st, body)
	}
	for _, p := range []struct{ path, body string }{{"/admin/rollouts", `{"source":"x.snap"}`}, {"/admin/rollouts/abort", ""}} {
		st, body := call(t, hc, "POST", n.base+p.path, p.body, auth...)
		if st != 409 || !bytes.Contains(body, []byte("/problems/rollouts-on-trainer")) {
			t.Errorf("POST %s on an API node = %d %s, want 409 rollouts-on-trainer", p.path, st, body)
		}
	}
}
