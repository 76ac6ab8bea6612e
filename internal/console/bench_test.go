package console_test

import (
	"net/http/httptest"
	"testing"

	"github.com/sightline/sightline/internal/console"
)

// BenchmarkPages renders each page server-side with 10,000 traces in a
// real flight recorder and 100,000 lines in a real log store. The target
// is under 300 ms a page; the benchmark reports, it does not assert.
func BenchmarkPages(b *testing.B) {
	w := newWorld(10_000, 100_000)
	c, err := console.New(w.config())
	if err != nil {
		b.Fatal(err)
	}
	pages := []struct{ name, path string }{
		{"overview", "/"},
		{"traces", "/traces"},
		{"traces_filtered", "/traces?fallback=true&min_duration=1ms&limit=1000"},
		{"traces_nomatch", "/traces?route=nope"},
		{"trace", "/traces/" + w.fallbackTrace},
		{"trace_click", "/traces/" + w.clickTrace},
		{"logs", "/logs"},
		{"logs_trace", "/logs?trace_id=" + w.fallbackTrace},
		{"logs_text_nomatch", "/logs?q=no-such-text"},
		{"logs_limit1000", "/logs?limit=1000"},
		{"decisions", "/decisions"},
		{"decision", "/decisions/" + w.fallbackRequest},
		{"model", "/model"},
		{"alerts", "/alerts"},
		{"drills", "/drills"},
		{"series", "/console/api/series"},
	}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", p.path, nil)
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				c.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatalf("GET %s status = %d", p.path, rec.Code)
				}
			}
		})
	}
}
