package stacktest

import (
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
)

// jaegerFromEnv returns the OTLP address and query URL of the Jaeger named
// by SIGHTLINE_TEST_JAEGER_OTLP and SIGHTLINE_TEST_JAEGER_QUERY, or skips t.
func jaegerFromEnv(t *testing.T) (otlp, query string) {
	t.Helper()
	otlp, query = os.Getenv("SIGHTLINE_TEST_JAEGER_OTLP"), os.Getenv("SIGHTLINE_TEST_JAEGER_QUERY")
	if otlp == "" || query == "" {
		t.Skip("SIGHTLINE_TEST_JAEGER_OTLP and SIGHTLINE_TEST_JAEGER_QUERY unset (scripts/test starts Jaeger and sets them)")
	}
	return otlp, strings.TrimRight(query, "/")
}

// jTrace is a trace of Jaeger's JSON query API.
type jTrace struct {
	TraceID   string              `json:"traceID"`
	Spans     []jSpan             `json:"spans"`
	Processes map[string]jProcess `json:"processes"`
}

type jProcess struct {
	ServiceName string `json:"serviceName"`
}

type jSpan struct {
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	ProcessID     string `json:"processID"`
	StartTime     int64  `json:"startTime"` // µs since the epoch
	Duration      int64  `json:"duration"`  // µs
	Tags          []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

// tag returns the span's tag key as a string, "" when absent.
func (s jSpan) tag(key string) string {
	for _, kv := range s.Tags {
		if kv.Key == key {
			return fmt.Sprint(kv.Value)
		}
	}
	return ""
}

// service returns the service name of span s of tr.
func (tr jTrace) service(s jSpan) string { return tr.Processes[s.ProcessID].ServiceName }

// duration is the time from the first span's start to the last span's
// end: what the collector's latency policy measures.
func (tr jTrace) duration() time.Duration {
	var first, last int64
	for i, s := range tr.Spans {
		if i == 0 || s.StartTime < first {
			first = s.StartTime
		}
		last = max(last, s.StartTime+s.Duration)
	}
	return time.Duration(last-first) * time.Microsecond
}

// find returns the first span of service named op, if any.
func (tr jTrace) find(service, op string) (jSpan, bool) {
	for _, s := range tr.Spans {
		if s.OperationName == op && tr.service(s) == service {
			return s, true
		}
	}
	return jSpan{}, false
}

// hasTag reports whether a span of tr has tag key equal to value ("" means
// any value).
func (tr jTrace) hasTag(key, value string) bool {
	for _, s := range tr.Spans {
		if v := s.tag(key); v != "" && (value == "" || v == value) {
			return true
		}
	}
	return false
}

// ops lists "service: operation" of every span, for failure messages.
func (tr jTrace) ops() []string {
	var out []string
	for _, s := range tr.Spans {
		out = append(out, tr.service(s)+": "+s.OperationName)
	}
	return out
}

// jaegerTraces GETs path from the query API and returns its traces; a 404
// (no such trace yet) is none.
func jaegerTraces(ctx context.Context, base, path string) ([]jTrace, error) {
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
		Data []jTrace `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("GET %s: decode: %w", path, err)
	}
	return body.Data, nil
}

// jaegerTrace returns trace id (32 hex digits), or false when Jaeger does
// not have it.
func jaegerTrace(ctx context.Context, base, id string) (jTrace, bool, error) {
	trs, err := jaegerTraces(ctx, base, "/api/traces/"+id)
	if err != nil || len(trs) == 0 {
		return jTrace{}, false, err
	}
	return trs[0], true, nil
}

// jaegerSearch returns the traces of service with a span named op, of the
// last hour.
func jaegerSearch(ctx context.Context, base, service, op string) ([]jTrace, error) {
	q := url.Values{"service": {service}, "operation": {op}, "limit": {"5000"}, "lookback": {"1h"}}
	return jaegerTraces(ctx, base, "/api/traces?"+q.Encode())
}

// normID pads a Jaeger hex trace id (which may drop leading zeros) to 32
// lower-case digits.
func normID(id string) string {
	id = strings.ToLower(id)
	return strings.Repeat("0", max(0, 32-len(id))) + id
}
