package console_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sightline/sightline/internal/console"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newServer(t *testing.T, cfg console.Config) *httptest.Server {
	t.Helper()
	c, err := console.New(cfg)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, srv *httptest.Server, path string) (int, http.Header, string) {
	t.Helper()
	res, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return res.StatusCode, res.Header, string(b)
}

func TestPages(t *testing.T) {
	w := newWorld(200, 2000)
	srv := newServer(t, w.config())
	tests := []struct {
		path   string
		status int
		want   []string
	}{
		{"/", 200, []string{"<h1>Overview</h1>", "ftrl-42", "missing_features", `data-chart="ctr"`, "Alerts: 1 firing, 0 pending", `class="bad"`, `<h2 id="cluster-h">Cluster</h2>`, "trainer-a", "not the published version"}},
		{"/evaluate", 200, []string{"<h1>Evaluate</h1>", `href="/evaluate" aria-current="page"`, "not trustworthy", "Per position"}},
		{"/experiments", 200, []string{"<h1>Experiments</h1>", `href="/experiments" aria-current="page"`, "ftrl beats popularity", "Sample ratio check"}},
		{"/rollouts", 200, []string{"<h1>Rollouts</h1>", `href="/rollouts" aria-current="page"`, "ftrl-next-7", `data-guardrail="ctr"`, "canary step 2 of 3"}},
		{"/traces", 200, []string{"<h1>Traces</h1>", `href="/traces/` + w.recTrace + `"`, "/v1/recommendations", "fallback: missing_features", `<label for="f-route">`}},
		{"/traces?fallback=true&limit=5", 200, []string{"5 kept recommendation traces", "fallback: missing_features"}},
		{"/traces?route=nope", 200, []string{"No kept trace matches."}},
		{"/traces?min_duration=bogus", 400, []string{"Bad filter"}},
		{"/traces/" + w.fallbackTrace, 200, []string{
			"Waterfall", "GenerateRecommendations", "FeatureFetch", "BusinessRules",
			`href="/logs?trace_id=` + w.fallbackTrace + `"`, `href="/decisions/` + w.fallbackRequest + `"`,
			"sightline.fallback.reason", "missing_features", "<strong>fallback</strong>",
		}},
		{"/traces/" + strings.ToUpper(w.fallbackTrace), 200, []string{"GenerateRecommendations"}},
		{"/traces/" + w.clickTrace, 200, []string{"events process", `href="/traces/` + w.recTrace + `"`, "Links"}},
		{"/logs", 200, []string{"<h1>Logs</h1>", "100 lines", "decision fallback", `class="null" data-field="features.user_age_bucket"`}},
		{"/logs?trace_id=" + w.fallbackTrace, 200, []string{`href="/traces/` + w.fallbackTrace + `"`, "decision fallback", `class="null" data-field="features.user_age_bucket"`}},
		{"/logs?request_id=" + w.fallbackRequest + "&level=WARN", 200, []string{"decision fallback"}},
		{"/logs?q=nothing-matches-this", 200, []string{"No log line matches."}},
		{"/logs?level=LOUD", 400, []string{"Bad search"}},
		{"/decisions", 200, []string{`<label for="d-req">`, "Recent logged decisions", `href="/decisions/req-`}},
		{"/decisions/" + w.fallbackRequest, 200, []string{
			"missing_features", "user_age_bucket missing", `<tr class="null"><th scope="row">user_age_bucket</th><td>null</td>`,
			"i00042", "explore", "0.0500", "feature_fetch", "ftrl-42", `href="/traces/` + w.fallbackTrace + `"`,
			`href="/logs?request_id=` + w.fallbackRequest + `"`,
		}},
		{"/model", 200, []string{"user_age_bucket", "31.00%", "3.400", "new", "<svg", "Calibration", "2.00", "51.00%"}},
		{"/alerts", 200, []string{"FeatureNullRateHigh", "Firing", "Resolved", "HighP99Latency", "0.02 → 0.97", `href="/traces/` + w.fallbackTrace + `"`, "docs/runbooks/FeatureNullRateHigh.md"}},
		{"/drills", 200, []string{`<label for="drill-token">`, `data-faults-url="/admin/faults"`, "etl-null-age", "Stop etl-null-age", "Start slow-feature-store"}},
		{"/static/console.css", 200, []string{"--null"}},
		{"/static/console.js", 200, []string{"Authorization"}},
		{"/console/api/series", 200, []string{`"requests_per_second"`, `"ctr"`}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			status, hdr, body := get(t, srv, tt.path)
			if status != tt.status {
				t.Errorf("GET %s status = %d, want %d", tt.path, status, tt.status)
			}
			for _, s := range tt.want {
				if !strings.Contains(body, s) {
					t.Errorf("GET %s body lacks %q", tt.path, s)
				}
			}
			if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
				t.Errorf("GET %s Content-Security-Policy = %q, want script-src 'self'", tt.path, csp)
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	w := newWorld(20, 100)
	srv := newServer(t, w.config())
	tests := []struct {
		path string
		want string
	}{
		{"/traces/00000000000000000000000000000bad", "No trace"},
		{"/decisions/req-unknown", "No decision"},
		{"/nowhere", "There is no console page"},
	}
	for _, tt := range tests {
		status, _, body := get(t, srv, tt.path)
		if status != http.StatusNotFound {
			t.Errorf("GET %s status = %d, want %d", tt.path, status, http.StatusNotFound)
		}
		if !strings.Contains(body, tt.want) {
			t.Errorf("GET %s body lacks %q", tt.path, tt.want)
		}
	}
}

func TestEmptyConfig(t *testing.T) {
	srv := newServer(t, console.Config{})
	for _, path := range []string{"/", "/traces", "/logs", "/decisions", "/model", "/experiments", "/rollouts", "/evaluate", "/alerts", "/drills", "/console/api/series"} {
		status, _, body := get(t, srv, path)
		if status != http.StatusOK {
			t.Errorf("GET %s with no sources status = %d, want 200", path, status)
		}
		if strings.Contains(body, "render error") {
			t.Errorf("GET %s with no sources body = %q", path, body)
		}
	}
	if status, _, _ := get(t, srv, "/traces/abc"); status != http.StatusNotFound {
		t.Errorf("GET /traces/abc with no sources status = %d, want 404", status)
	}
}

func TestNewBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  console.Config
	}{
		{"negative interval", console.Config{SampleInterval: -time.Second}},
		{"negative history", console.Config{History: -time.Second}},
		{"history shorter than interval", console.Config{SampleInterval: time.Minute, History: time.Second}},
	}
	for _, tt := range tests {
		if _, err := console.New(tt.cfg); !errors.Is(err, console.ErrBadConfig) {
			t.Errorf("New(%s) error = %v, want %v", tt.name, err, console.ErrBadConfig)
		}
	}
}

var hrefRE = regexp.MustCompile(`<a[^>]*\bhref="([^"]+)"[^>]*>`)

// link returns the href of the first link in body whose tag matches sel.
func link(t *testing.T, body, sel string) string {
	t.Helper()
	for _, m := range hrefRE.FindAllStringSubmatch(body, -1) {
		if strings.Contains(m[0], sel) {
			return strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	t.Fatalf("no link matching %q", sel)
	return ""
}

// TestDebuggingStory follows the talk: from the firing alert, one click to
// an example trace, one to that trace's logs, where the line with
// user_age_bucket null is shown highlighted.
func TestDebuggingStory(t *testing.T) {
	w := newWorld(300, 3000)
	srv := newServer(t, w.config())
	_, _, alerts := get(t, srv, "/alerts")
	traceURL := link(t, alerts, "example-trace")
	status, _, tr := get(t, srv, traceURL)
	if status != http.StatusOK {
		t.Fatalf("click 1: GET %s status = %d, want 200", traceURL, status)
	}
	logsURL := link(t, tr, `id="trace-logs"`)
	status, _, logs := get(t, srv, logsURL)
	if status != http.StatusOK {
		t.Fatalf("click 2: GET %s status = %d, want 200", logsURL, status)
	}
	want := `<div class="null" data-field="features.user_age_bucket"><dt>features.user_age_bucket</dt><dd>null</dd></div>`
	if !strings.Contains(logs, want) {
		t.Errorf("logs of the alert's example trace lack %q", want)
	}
	if !strings.Contains(logs, w.fallbackTrace) {
		t.Errorf("logs page does not show trace %s", w.fallbackTrace)
	}
}

func TestWaterfall(t *testing.T) {
	w := newWorld(20, 0)
	srv := newServer(t, w.config())
	_, _, body := get(t, srv, "/traces/"+w.fallbackTrace)
	// Tree order: root, then GenerateRecommendations, then its stages.
	order := []string{">POST /v1/recommendations<", ">GenerateRecommendations<", ">FeatureFetch<", ">CandidateGeneration<", ">ModelInference<", ">BusinessRules<"}
	wf := body[strings.Index(body, "Waterfall"):strings.Index(body, "<h2>Spans</h2>")]
	last := -1
	for _, name := range order {
		i := strings.Index(wf, name)
		if i < last {
			t.Errorf("waterfall: %s at %d, before the previous span at %d", name, i, last)
		}
		last = i
	}
	for _, want := range []string{`class="d0"`, `class="d1"`, `class="d2"`, `<rect x="0.0" y="1" width="1000.0"`} {
		if !strings.Contains(wf, want) {
			t.Errorf("waterfall lacks %q", want)
		}
	}
}
