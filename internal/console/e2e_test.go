package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sightline/sightline/internal/console"
)

// The browser test is driven by the environment:
//
//	SIGHTLINE_TEST_CHROMIUM      path of the Chromium binary; the test skips when unset
//	SIGHTLINE_TEST_CONSOLE_URL   base URL of a live console (a demo running the
//	                             etl-null-age fault); when unset the test serves
//	                             the fixture world of these tests
//	SIGHTLINE_TEST_ARTIFACTS     where screenshots go (default <repo>/artifacts/console)
const (
	envChromium  = "SIGHTLINE_TEST_CHROMIUM"
	envURL       = "SIGHTLINE_TEST_CONSOLE_URL"
	envArtifacts = "SIGHTLINE_TEST_ARTIFACTS"
)

// viewports are the sizes every page is checked and captured at.
var viewports = []struct {
	name          string
	width, height int64
}{{"desktop", 1280, 800}, {"phone", 390, 844}}

// browser starts headless Chromium with the flags of INFRA.md and returns
// a tab context; the browser stops when the test ends.
func browser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		_ = chromedp.Cancel(ctx)
		cancelTab()
		cancelAlloc()
	})
	return ctx
}

func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(envArtifacts)
	if dir == "" {
		dir = filepath.Join("..", "..", "artifacts", "console")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts dir: %v", err)
	}
	return dir
}

// TestConsoleBrowser follows the debugging story in a real browser (the
// firing alert, one of its example traces, that trace's logs, where
// user_age_bucket is null: at most three clicks), then visits every page
// at desktop and phone size, checks it has no page-wide horizontal scroll
// and that the overview charts load under the CSP, and saves a screenshot
// of each.
func TestConsoleBrowser(t *testing.T) {
	chromium := os.Getenv(envChromium)
	if chromium == "" {
		t.Skipf("%s is not set", envChromium)
	}
	base := strings.TrimSuffix(os.Getenv(envURL), "/")
	var faults chan faultRequest
	if base == "" {
		w := newWorld(2000, 20_000)
		cfg := w.config()
		cfg.SampleInterval = time.Second // live sections refresh every second
		cl := fixtureCluster()
		cl.Evaluated = time.Now().Add(-20 * time.Second)
		cfg.Cluster = fakeCluster(cl)
		c, err := console.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		faults = make(chan faultRequest, 1)
		mux := http.NewServeMux()
		mux.Handle("/", c)
		mux.HandleFunc("POST /admin/faults", func(rw http.ResponseWriter, r *http.Request) {
			var fr faultRequest
			err := json.NewDecoder(r.Body).Decode(&fr)
			fr.Auth = r.Header.Get("Authorization")
			if err != nil || fr.Auth != "Bearer s3cret" {
				rw.WriteHeader(http.StatusUnauthorized)
			}
			faults <- fr
		})
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		base = srv.URL
	}
	ctx := browser(t, chromium)
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	do("viewport", chromedp.EmulateViewport(1280, 800))

	// The story: alert → example trace → logs of this trace.
	do("open alerts", chromedp.Navigate(base+"/alerts"), chromedp.WaitVisible("main h1"))
	sel := `article.alert.firing[data-alert="FeatureNullRateHigh"] a.example-trace`
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel))); err != nil || n == 0 {
		sel = `article.alert.firing a.example-trace`
	}
	clicks := 0
	do("click 1: example trace", chromedp.Click(sel, chromedp.NodeVisible), chromedp.WaitVisible("#trace-logs"))
	clicks++
	do("click 2: logs of this trace", chromedp.Click("#trace-logs", chromedp.NodeVisible))
	clicks++
	nullAge := `li.logline div.null[data-field="features.user_age_bucket"]`
	do("null user_age_bucket on screen", chromedp.WaitVisible(nullAge))
	text, err := chromedp.Run(ctx, chromedp.Text(nullAge))
	if err != nil || !strings.Contains(text, "null") {
		t.Errorf("log field %s text = %q (%v), want it to show null", nullAge, text, err)
	}
	if clicks > 3 {
		t.Errorf("story took %d clicks, want ≤ 3", clicks)
	}
	traceURL, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector("li.logline a[href^='/traces/']")||{}).getAttribute?.("href")||""`))
	decisionURL, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector("li.logline a[href^='/decisions/']")||{}).getAttribute?.("href")||""`))

	if faults != nil {
		// The Drills page sends the typed token and the fault to the API.
		do("stop a fault", chromedp.Navigate(base+"/drills"), chromedp.WaitVisible("#drill-token"),
			chromedp.SendKeys("#drill-token", "s3cret"),
			chromedp.Click(`button.fault[data-name="etl-null-age"]`, chromedp.NodeVisible))
		select {
		case got := <-faults:
			want := faultRequest{Name: "etl-null-age", Active: false, Auth: "Bearer s3cret"}
			if got != want {
				t.Errorf("POST /admin/faults from the Drills page = %+v, want %+v", got, want)
			}
		case <-ctx.Done():
			t.Fatal("the Drills page sent no request to /admin/faults")
		}
	}

	if faults != nil {
		// The Experiments view shows the fixture's verdict and refreshes in
		// place; the Overview's cluster panel names the active trainer and
		// refreshes too.
		do("open experiments", chromedp.Navigate(base+"/experiments"), chromedp.WaitVisible(`p.banner.verdict.better[data-variant="ftrl"]`),
			chromedp.WaitReady("#experiment[data-refreshed]"))
		if v, err := chromedp.Run(ctx, chromedp.Text(`p.banner.verdict.better[data-variant="ftrl"]`)); err != nil || !strings.Contains(v, "ftrl beats popularity") {
			t.Errorf("Experiments verdict = %q (%v), want it to say ftrl beats popularity", v, err)
		}
		if v, err := chromedp.Run(ctx, chromedp.Text(`tr[data-variant="ftrl"] td.pvalue`)); err != nil || v != "0.0012" {
			t.Errorf("Experiments p-value of ftrl after a refresh = %q (%v), want 0.0012", v, err)
		}
		// The Evaluate view puts the verdict first and keeps an
		// untrustworthy target's estimates folded away.
		do("open evaluate", chromedp.Navigate(base+"/evaluate"), chromedp.WaitVisible(`section.policy div.banner.untrusted`))
		if v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("section.policy[data-policy^=\"snapshot:\"] table.estimates").checkVisibility()`)); err != nil || v {
			t.Errorf("the untrustworthy target's estimates are visible before unfolding (err %v)", err)
		}
		do("open overview", chromedp.Navigate(base+"/"), chromedp.WaitVisible("#active-trainer"), chromedp.WaitReady("#cluster[data-refreshed]"))
		if v, err := chromedp.Run(ctx, chromedp.Text("#active-trainer")); err != nil || v != "trainer-a" {
			t.Errorf("Overview active trainer = %q (%v), want trainer-a", v, err)
		}
	}

	pages := []struct{ name, path, ready string }{
		{"overview", "/", "#charts[data-points]"},
		{"alerts", "/alerts", "main h1"},
		{"traces", "/traces", "main h1"},
		{"trace", traceURL, "table.waterfall"},
		{"logs", "/logs", "main h1"},
		{"decisions", "/decisions", "main h1"},
		{"decision", decisionURL, "main h1"},
		{"model", "/model", "main h1"},
		{"experiments", "/experiments", "#experiment[data-refreshed]"},
		{"rollouts", "/rollouts", "#rollout-timeline"},
		{"evaluate", "/evaluate", "#how"},
		{"drills", "/drills", "#drill-token"},
	}
	dir := artifactsDir(t)
	for _, vp := range viewports {
		do("viewport "+vp.name, chromedp.EmulateViewport(vp.width, vp.height))
		for _, p := range pages {
			if p.path == "" {
				t.Errorf("%s: no link found to visit", p.name)
				continue
			}
			do(p.name+" "+vp.name, chromedp.Navigate(base+p.path), chromedp.WaitVisible(p.ready))
			overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
			if err != nil || overflow {
				t.Errorf("%s at %dx%d scrolls horizontally (err %v)", p.name, vp.width, vp.height, err)
			}
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatalf("screenshot %s: %v", p.name, err)
			}
			if err := os.WriteFile(filepath.Join(dir, vp.name+"-"+p.name+".png"), png, 0o644); err != nil {
				t.Fatalf("save screenshot: %v", err)
			}
		}
	}
}

// faultRequest is what the Drills page sends to the faults endpoint.
type faultRequest struct {
	Name   string `json:"name"`
	Active bool   `json:"active"`
	Auth   string `json:"-"`
}
