package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// jaegerEnv is the Jaeger the nodes export their traces to (OTLP gRPC),
// read back through its JSON query API.
type jaegerEnv struct {
	otlp, query string
	service     string // prefix of every node's service name in this run
}

// jaegerFromEnv returns the Jaeger named by SIGHTLINE_TEST_JAEGER_OTLP
// and SIGHTLINE_TEST_JAEGER_QUERY, or nil when they are unset.
func jaegerFromEnv(run string) *jaegerEnv {
	otlp, query := os.Getenv("SIGHTLINE_TEST_JAEGER_OTLP"), os.Getenv("SIGHTLINE_TEST_JAEGER_QUERY")
	if otlp == "" || query == "" {
		return nil
	}
	return &jaegerEnv{otlp: otlp, query: strings.TrimRight(query, "/"), service: "sightline-cluster-" + run}
}

// serviceOf is the service name of node name's spans.
func (j *jaegerEnv) serviceOf(name string) string { return j.service + "-" + name }

// env is the environment that makes node name export its traces to
// Jaeger. Only the traces variables: with OTEL_EXPORTER_OTLP_ENDPOINT a
// node would also export logs over OTLP/HTTP, which Jaeger's gRPC port
// does not speak.
func (j *jaegerEnv) env(name string) []string {
	return []string{
		"OTEL_SERVICE_NAME=" + j.serviceOf(name),
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://" + j.otlp,
		"OTEL_EXPORTER_OTLP_TRACES_INSECURE=true",
	}
}

// jaegerTrace is the part of a trace in Jaeger's JSON API the test reads.
type jaegerTrace struct {
	TraceID   string                   `json:"traceID"`
	Spans     []jaegerSpan             `json:"spans"`
	Processes map[string]jaegerProcess `json:"processes"`
}

type jaegerProcess struct {
	ServiceName string `json:"serviceName"`
}

type jaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	ProcessID     string `json:"processID"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

func (s *jaegerSpan) tag(key string) string {
	for _, t := range s.Tags {
		if t.Key == key {
			return fmt.Sprint(t.Value)
		}
	}
	return ""
}

// spanRef is a span of the test's trace with the service that made it.
type spanRef struct {
	op, service string
}

// jaegerID normalizes a Jaeger hex id (which may drop leading zeros).
func jaegerID(id string, width int) string {
	id = strings.ToLower(id)
	for len(id) < width {
		id = "0" + id
	}
	return id
}

// get fetches path from the query API and decodes its "data" list; a 404
// (not there yet) is an empty list.
func (j *jaegerEnv) get(c *cluster, path string) ([]jaegerTrace, error) {
	req, err := http.NewRequestWithContext(c.ctx, http.MethodGet, j.query+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return nil, fmt.Errorf("jaeger GET %s: %s: %s", path, resp.Status, b)
	}
	var body struct {
		Data []jaegerTrace `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("jaeger GET %s: decode: %w", path, err)
	}
	return body.Data, nil
}

// postTraced POSTs body as JSON to n's path with a traceparent header and
// decodes the 2xx answer into out.
func (c *cluster) postTraced(n *node, path, traceparent string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(c.ctx, http.MethodPost, n.base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", traceparent)
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: POST %s: %w", n.name, path, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: POST %s: %s: %.300s", n.name, path, resp.Status, rb)
	}
	return json.Unmarshal(rb, out)
}

// testTraceAcrossProcesses asks API node A for a recommendation with a
// sampled traceparent and sends its click through node B in the same
// trace: Jaeger holds A's recommendation span and B's events span in that
// trace, and the trainer's ModelUpdate span for the click links to both.
func (c *cluster) testTraceAcrossProcesses(t *testing.T) {
	if c.jaeger == nil {
		t.Skip("SIGHTLINE_TEST_JAEGER_OTLP and SIGHTLINE_TEST_JAEGER_QUERY unset (scripts/test starts Jaeger and sets them)")
	}
	j := c.jaeger
	learners := c.trainers
	if !c.roles {
		learners = c.api // --role all: every node learns
	}
	a, b := c.api[0], c.api[1]
	traceID := randomHex(t, 16)
	var rec struct {
		RequestID string `json:"request_id"`
		Items     []struct {
			ItemID string `json:"item_id"`
		} `json:"items"`
	}
	user := "u000042"
	if err := c.postTraced(a, "/v1/recommendations", "00-"+traceID+"-"+randomHex(t, 8)+"-01",
		map[string]any{"user_id": user, "count": 5, "context": map[string]string{"channel": "web"}}, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.RequestID == "" || len(rec.Items) == 0 {
		t.Fatalf("recommendation on %s = %+v, want a request id and items", a.name, rec)
	}
	evs := []map[string]any{
		{"event_id": c.run + "-trace-imp", "type": "impression", "user_id": user, "item_id": rec.Items[0].ItemID, "request_id": rec.RequestID, "channel": "web"},
		{"event_id": c.run + "-trace-clk", "type": "click", "user_id": user, "item_id": rec.Items[0].ItemID, "request_id": rec.RequestID, "channel": "web"},
	}
	var accepted struct {
		Accepted int `json:"accepted"`
	}
	if err := c.postTraced(b, "/v1/events", "00-"+traceID+"-"+randomHex(t, 8)+"-01", evs, &accepted); err != nil {
		t.Fatal(err)
	}
	if accepted.Accepted != len(evs) {
		t.Fatalf("POST /v1/events on %s accepted %d, want %d", b.name, accepted.Accepted, len(evs))
	}
	t.Logf("trace %s: recommendation %s on %s, its impression and click through %s", traceID, rec.RequestID, a.name, b.name)

	// The trace holds A's server span and B's.
	spans := map[string]spanRef{} // span id → span of the trace
	read := func() error {
		traces, err := j.get(c, "/api/traces/"+traceID)
		if err != nil {
			return err
		}
		for _, tr := range traces {
			for _, s := range tr.Spans {
				spans[jaegerID(s.SpanID, 16)] = spanRef{s.OperationName, tr.Processes[s.ProcessID].ServiceName}
			}
		}
		return nil
	}
	has := func(op, service string) bool {
		for _, s := range spans {
			if s.op == op && s.service == service {
				return true
			}
		}
		return false
	}
	why, ok := pollUntil(c.ctx, 40*time.Second, 250*time.Millisecond, func() (bool, string) {
		if err := read(); err != nil {
			return false, err.Error()
		}
		if !has("POST /v1/recommendations", j.serviceOf(a.name)) || !has("POST /v1/events", j.serviceOf(b.name)) {
			return false, fmt.Sprintf("want POST /v1/recommendations from %s and POST /v1/events from %s; trace has %v", j.serviceOf(a.name), j.serviceOf(b.name), describe(spans))
		}
		return true, ""
	})
	if !ok {
		t.Fatalf("trace %s in Jaeger: %s", traceID, why)
	}

	// A trainer's ModelUpdate span for the request links into the trace:
	// to B's span that published the click and to A's recommendation.
	tags, _ := json.Marshal(map[string]string{"sightline.request.id": rec.RequestID})
	var found []string
	why, ok = pollUntil(c.ctx, 40*time.Second, 250*time.Millisecond, func() (bool, string) {
		found = found[:0]
		for _, tn := range learners {
			path := "/api/traces?" + url.Values{"service": {j.serviceOf(tn.name)}, "operation": {"ModelUpdate"}, "tags": {string(tags)}, "limit": {"20"}, "lookback": {"1h"}}.Encode()
			traces, err := j.get(c, path)
			if err != nil {
				return false, err.Error()
			}
			for _, tr := range traces {
				for _, s := range tr.Spans {
					if s.OperationName != "ModelUpdate" || s.tag("sightline.request.id") != rec.RequestID {
						continue
					}
					var linkA, linkB bool
					var into []string
					for _, r := range s.References {
						if jaegerID(r.TraceID, 32) != traceID {
							continue
						}
						ref, ok := spans[jaegerID(r.SpanID, 16)]
						if !ok {
							_ = read() // the linked span may have arrived since
							ref, ok = spans[jaegerID(r.SpanID, 16)]
						}
						into = append(into, fmt.Sprintf("%s/%s", ref.service, ref.op))
						linkA = linkA || ok && ref.service == j.serviceOf(a.name)
						linkB = linkB || ok && ref.service == j.serviceOf(b.name)
					}
					found = append(found, fmt.Sprintf("%s span %s links into the trace: %v", tn.name, s.SpanID, into))
					if linkA && linkB {
						t.Logf("%s ModelUpdate span %s links to %v in trace %s", tn.name, s.SpanID, into, traceID)
						return true, ""
					}
				}
			}
		}
		return false, fmt.Sprintf("want a trainer's ModelUpdate span for request %s linking to a span of %s and one of %s in trace %s; found %q",
			rec.RequestID, j.serviceOf(a.name), j.serviceOf(b.name), traceID, found)
	})
	if !ok {
		t.Errorf("%s", why)
	}
}

func describe(spans map[string]spanRef) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.service+"/"+s.op)
	}
	slices.Sort(out)
	return out
}
