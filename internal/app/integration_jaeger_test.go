package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// The engine spans every recommendation must have under its server span.
var engineSpans = []string{"GenerateRecommendations", "FeatureFetch", "CandidateGeneration", "ModelInference", "BusinessRules"}

// jaegerTrace is the part of a trace in Jaeger's JSON query API that the
// test reads.
type jaegerTrace struct {
	TraceID string       `json:"traceID"`
	Spans   []jaegerSpan `json:"spans"`
}

type jaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
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

// jaegerID normalizes a Jaeger hex id (which may drop leading zeros) to
// width hex digits.
func jaegerID(id string, width int) string {
	id = strings.ToLower(id)
	for len(id) < width {
		id = "0" + id
	}
	return id
}

// jaegerGet fetches path from the query API and decodes its "data" list.
// A 404 (trace not there yet) is an empty list.
func jaegerGet(ctx context.Context, base, path string) ([]jaegerTrace, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	var body struct {
		Data []jaegerTrace `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("GET %s: decode: %w", path, err)
	}
	return body.Data, nil
}

// randomHex returns n random bytes as hex, the first one non-zero.
func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	b[0] |= 0x10
	return hex.EncodeToString(b)
}

// postTraced POSTs body to base+path with the given traceparent and
// decodes the JSON answer into out.
func postTraced(t testing.TB, base, path, traceparent string, body, out any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", traceparent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s: %s", path, resp.Status, rb)
	}
	if err := json.Unmarshal(rb, out); err != nil {
		t.Fatalf("POST %s: decode %s: %v", path, rb, err)
	}
}

// pollUntil calls f every 200ms until it reports done, failing the test
// with f's last complaint when timeout passes.
func pollUntil(t testing.TB, timeout time.Duration, f func() (done bool, why string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, why := f()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, why)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestIntegrationJaeger sends a recommendation with a traceparent header to
// a node exporting OTLP to a real Jaeger, finds the trace through Jaeger's
// query API with the engine spans under the server span, and follows the
// links of the events path back to it.
func TestIntegrationJaeger(t *testing.T) {
	otlp, query := os.Getenv("SIGHTLINE_TEST_JAEGER_OTLP"), os.Getenv("SIGHTLINE_TEST_JAEGER_QUERY")
	if otlp == "" || query == "" {
		t.Skip("SIGHTLINE_TEST_JAEGER_OTLP and SIGHTLINE_TEST_JAEGER_QUERY unset (scripts/test starts Jaeger and sets them)")
	}
	query = strings.TrimRight(query, "/")
	// A service name of this run only, so searches see no other run's spans.
	service := "sightline-it-" + randomHex(t, 4)
	t.Setenv("OTEL_SERVICE_NAME", service)
	// The traces-only variables: with OTEL_EXPORTER_OTLP_ENDPOINT the node
	// would also export logs, over OTLP/HTTP only, which Jaeger's gRPC
	// port does not speak (and Jaeger stores no logs).
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://"+otlp)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "true")

	tn := startNode(t, Config{TraceExporter: "otlp", TraceSampleRatio: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	world := smallWorld()
	if err := world.Load(ctx, tn.c); err != nil {
		t.Fatalf("Load: %v", err)
	}

	// The candidate index publishes the loaded catalog within its refresh
	// interval (200ms): ask until items come back, each time in a new trace.
	var traceID string
	var rec struct {
		RequestID string `json:"request_id"`
		Items     []struct {
			ItemID string `json:"item_id"`
		} `json:"items"`
	}
	pollUntil(t, 10*time.Second, func() (bool, string) {
		traceID = randomHex(t, 16)
		postTraced(t, tn.base, "/v1/recommendations", "00-"+traceID+"-"+randomHex(t, 8)+"-01",
			map[string]any{"user_id": world.User(1).ID, "count": 5, "context": map[string]string{"channel": "web"}}, &rec)
		return rec.RequestID != "" && len(rec.Items) > 0, fmt.Sprintf("recommendation = %+v, want a request id and items", rec)
	})
	// The user's journey goes on in the same trace: an impression and a
	// click answering the recommendation.
	evs := []map[string]any{
		{"event_id": "it-imp-" + traceID, "type": "impression", "user_id": world.User(1).ID, "item_id": rec.Items[0].ItemID, "request_id": rec.RequestID, "channel": "web"},
		{"event_id": "it-clk-" + traceID, "type": "click", "user_id": world.User(1).ID, "item_id": rec.Items[0].ItemID, "request_id": rec.RequestID, "channel": "web"},
	}
	var accepted struct {
		Accepted int `json:"accepted"`
	}
	postTraced(t, tn.base, "/v1/events", "00-"+traceID+"-"+randomHex(t, 8)+"-01", evs, &accepted)
	if accepted.Accepted != len(evs) {
		t.Fatalf("POST /v1/events accepted %d, want %d", accepted.Accepted, len(evs))
	}

	// The recommendation's trace: the server span and the five engine
	// spans below it. Spans arrive in batches, so poll until all are there.
	var producer map[string]jaegerSpan // span id -> span, of the trace
	pollUntil(t, 40*time.Second, func() (bool, string) {
		traces, err := jaegerGet(ctx, query, "/api/traces/"+traceID)
		if err != nil {
			return false, err.Error()
		}
		if len(traces) == 0 {
			return false, "trace " + traceID + " not found in Jaeger"
		}
		producer = map[string]jaegerSpan{}
		for _, tr := range traces {
			for _, s := range tr.Spans {
				producer[jaegerID(s.SpanID, 16)] = s
			}
		}
		var server string
		for id, s := range producer {
			if s.OperationName == "POST /v1/recommendations" {
				server = id
			}
		}
		if server == "" {
			return false, fmt.Sprintf("trace has no span POST /v1/recommendations; spans: %v", opNames(producer))
		}
		for _, name := range engineSpans {
			found := false
			for id, s := range producer {
				if s.OperationName == name && descendsFrom(producer, id, server) {
					found = true
				}
			}
			if !found {
				return false, fmt.Sprintf("no span %s under POST /v1/recommendations; spans: %v", name, opNames(producer))
			}
		}
		return true, ""
	})

	// The consumers' spans are roots of their own traces, linked to the
	// span that published the events, in the recommendation's trace.
	for _, op := range []string{"events process", "ModelUpdate"} {
		path := "/api/traces?" + url.Values{"service": {service}, "operation": {op}, "limit": {"100"}, "lookback": {"1h"}}.Encode()
		pollUntil(t, 30*time.Second, func() (bool, string) {
			traces, err := jaegerGet(ctx, query, path)
			if err != nil {
				return false, err.Error()
			}
			linked := 0
			for _, tr := range traces {
				for _, s := range tr.Spans {
					if s.OperationName != op || s.tag("sightline.request.id") != rec.RequestID {
						continue
					}
					for _, r := range s.References {
						if jaegerID(r.TraceID, 32) != traceID {
							continue
						}
						if _, ok := producer[jaegerID(r.SpanID, 16)]; !ok {
							// The producer's trace was read before; the
							// linked span must be in it.
							traces, _ := jaegerGet(ctx, query, "/api/traces/"+traceID)
							for _, tr := range traces {
								for _, ps := range tr.Spans {
									producer[jaegerID(ps.SpanID, 16)] = ps
								}
							}
						}
						if p, ok := producer[jaegerID(r.SpanID, 16)]; ok {
							t.Logf("%s span %s links to %s in trace %s", op, s.SpanID, p.OperationName, traceID)
							linked++
							break
						}
					}
				}
			}
			if linked < len(evs) {
				return false, fmt.Sprintf("%d %q spans for request %s link to a span of trace %s, want %d (%d traces found)", linked, op, rec.RequestID, traceID, len(evs), len(traces))
			}
			return true, ""
		})
	}
}

// descendsFrom reports whether span id has ancestor among its CHILD_OF
// references within spans.
func descendsFrom(spans map[string]jaegerSpan, id, ancestor string) bool {
	for range len(spans) { // bounded: a reference cycle cannot loop forever
		s, ok := spans[id]
		if !ok {
			return false
		}
		parent := ""
		for _, r := range s.References {
			if r.RefType == "CHILD_OF" {
				parent = jaegerID(r.SpanID, 16)
			}
		}
		if parent == "" {
			return false
		}
		if parent == ancestor {
			return true
		}
		id = parent
	}
	return false
}

func opNames(spans map[string]jaegerSpan) []string {
	var names []string
	for _, s := range spans {
		names = append(names, s.OperationName)
	}
	return names
}
