package stacktest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/client"
)

// victoriaLogsFromEnv returns the base URL of the VictoriaLogs named by
// SIGHTLINE_TEST_VICTORIALOGS, or skips t.
func victoriaLogsFromEnv(t *testing.T) string {
	t.Helper()
	vl := os.Getenv("SIGHTLINE_TEST_VICTORIALOGS")
	if vl == "" {
		t.Skip("SIGHTLINE_TEST_VICTORIALOGS unset (scripts/test starts VictoriaLogs and sets it to its base URL)")
	}
	return strings.TrimRight(vl, "/")
}

// logsQuery runs a LogsQL query and returns the matching records, each a
// map of field name to value, and the raw answer.
func logsQuery(ctx context.Context, base, query string) ([]map[string]string, []byte, error) {
	form := url.Values{"query": {query}, "limit": {"100000"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/select/logsql/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, raw, fmt.Errorf("query %q: %s: %s", query, resp.Status, raw)
	}
	var recs []map[string]string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var rec map[string]string
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, raw, fmt.Errorf("query %q: decode %q: %w", query, sc.Bytes(), err)
		}
		recs = append(recs, rec)
	}
	return recs, raw, sc.Err()
}

// quote returns s as a LogsQL quoted string.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestLogsInVictoriaLogs sends a node's logs over OTLP to a real log store,
// directly (OTLP/HTTP to VictoriaLogs' OpenTelemetry endpoint) and through
// the shipped collector config (OTLP gRPC to the collector, whose
// otlp_http/logs exporter forwards them). In both, a request with a known
// trace id falls back, and the test finds the fallback's log line by trace
// id and by fallback_reason, then reads every line of the node in the store
// and finds none of the raw identifiers it sent (an email and a phone
// number as user ids, a raw user id in a profile attribute and an event).
func TestLogsInVictoriaLogs(t *testing.T) {
	vl := victoriaLogsFromEnv(t)
	// The trace exporter must be otlp for the node to export logs; traces
	// go to Jaeger when there is one, else to a closed port (dropped).
	jOTLP := os.Getenv("SIGHTLINE_TEST_JAEGER_OTLP")

	t.Run("direct", func(t *testing.T) {
		service := "stacktest-logs-" + randomHex(4)
		traces := jOTLP
		if traces == "" {
			traces = freeAddr(t)
		}
		n := startNode(t, []string{
			"OTEL_SERVICE_NAME=" + service,
			"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=" + vl + "/insert/opentelemetry/v1/logs",
			"OTEL_EXPORTER_OTLP_LOGS_PROTOCOL=http/protobuf",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://" + traces,
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc",
			"OTEL_EXPORTER_OTLP_TRACES_INSECURE=true",
		}, "--trace-exporter", "otlp", "--decision-log-ratio", "1")
		checkLogStore(t, vl, service, n)
	})
	t.Run("collector", func(t *testing.T) {
		bin := otelcolFromEnv(t)
		col := startCollector(t, bin, jOTLP, vl+"/insert/opentelemetry")
		service := "stacktest-logs-" + randomHex(4)
		n := startNode(t, col.nodeEnv(service), "--trace-exporter", "otlp", "--decision-log-ratio", "1")
		checkLogStore(t, vl, service, n)
	})
}

// checkLogStore plants raw identifiers in requests to n, makes one
// request with a known trace id fall back, and checks what the log store
// at vl received from service.
func checkLogStore(t *testing.T, vl, service string, n *node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := loadWorld(t, n)
	tag := randomHex(4)
	email := "pii." + tag + "@example.com"
	phone := "+1555" + fmt.Sprintf("%07d", time.Now().UnixNano()%10_000_000)
	raw := "stacktest-raw-user-" + tag
	needles := []string{"pii." + tag, phone[1:], raw}

	// A known user without an age bucket falls back with missing_features;
	// its id is an email address.
	if err := n.c.PutUser(ctx, client.User{UserID: email, Segment: "returning", Region: "eu",
		Attributes: map[string]string{"note": "contact " + raw}}); err != nil {
		t.Fatalf("PutUser: %v", err)
	}
	// A complete user whose id is a phone number: ordinary decisions,
	// logged too (--decision-log-ratio 1).
	if err := n.c.PutUser(ctx, client.User{UserID: phone, AgeBucket: "25-34", Segment: "returning", Region: "eu", Device: "mobile"}); err != nil {
		t.Fatalf("PutUser: %v", err)
	}
	rec, err := n.c.Recommend(ctx, client.RecommendRequest{UserID: phone, Count: 3})
	if err != nil || len(rec.Items) == 0 || rec.Fallback != nil {
		t.Fatalf("Recommend(phone user) = %+v, %v; want items without a fallback", rec, err)
	}
	if res, err := n.c.SendEvents(ctx, []client.Event{{EventID: "stacktest-" + tag, Type: client.TypeClick, UserID: raw, ItemID: w.Item(0).ID, RequestID: rec.RequestID}}); err != nil || res.Accepted != 1 {
		t.Fatalf("SendEvents = %+v, %v; want 1 accepted", res, err)
	}

	// The fallback, in a trace of the test's choosing.
	traceID := randomHex(16)
	body, _ := json.Marshal(client.RecommendRequest{UserID: email, Count: 3})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.base+"/v1/recommendations", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-"+randomHex(8)+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var fb client.Recommendation
	err = json.NewDecoder(resp.Body).Decode(&fb)
	resp.Body.Close()
	if err != nil || fb.Fallback == nil || fb.Fallback.Reason != "missing_features" {
		t.Fatalf("recommendation for a user without age bucket: %+v, %v; want fallback missing_features", fb, err)
	}

	// Found by trace id: the fallback's line, with its reason and request.
	byTrace := "trace_id:=" + quote(traceID)
	var line map[string]string
	waitUntil(t, n.proc, 60*time.Second, func() (bool, string) {
		recs, _, err := logsQuery(ctx, vl, byTrace)
		if err != nil {
			return false, err.Error()
		}
		for _, r := range recs {
			if r["fallback_reason"] != "" {
				line = r
				return true, ""
			}
		}
		return false, fmt.Sprintf("%s: %d records, none with fallback_reason: %v", byTrace, len(recs), recs)
	})
	t.Logf("by trace id: %v", line)
	for field, want := range map[string]string{
		"fallback_reason": "missing_features",
		"request_id":      fb.RequestID,
		"service.name":    service,
		"_msg":            "decision fallback",
	} {
		if got := line[field]; got != want {
			t.Errorf("fallback line found by %s: %s = %q, want %q", byTrace, field, got, want)
		}
	}
	if line["user_hash"] == "" {
		t.Errorf("fallback line found by %s has no user_hash", byTrace)
	}

	// Found by fallback_reason: the same line among this node's fallbacks.
	byReason := "fallback_reason:=missing_features " + quote("service.name") + ":=" + quote(service)
	recs, _, err := logsQuery(ctx, vl, byReason)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range recs {
		found = found || r["trace_id"] == traceID
	}
	if !found {
		t.Errorf("%s: %d records, none with trace_id %s", byReason, len(recs), traceID)
	}

	// Every line of the node: none carries a planted identifier.
	all := quote("service.name") + ":=" + quote(service)
	recs, raw2, err := logsQuery(ctx, vl, all)
	if err != nil {
		t.Fatal(err)
	}
	decisions := 0
	for _, r := range recs {
		if r["_msg"] == "decision" {
			decisions++
		}
	}
	if decisions == 0 {
		t.Errorf("%s: %d records, no ordinary decision line (--decision-log-ratio 1): the check below would see nothing", all, len(recs))
	}
	for _, needle := range needles {
		if i := bytes.Index(raw2, []byte(needle)); i >= 0 {
			t.Errorf("the log store holds the raw identifier %q: …%s…", needle, raw2[max(0, i-200):min(len(raw2), i+100)])
		}
	}
	t.Logf("%d lines of %s in the store (%d decisions), none with a raw identifier", len(recs), service, decisions)
}
