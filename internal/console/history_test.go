package console_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sightline/sightline/internal/console"
)

type seriesBody struct {
	T      []int64               `json:"t"`
	Series map[string][]*float64 `json:"series"`
	CTR    map[string]struct {
		CTR      []*float64 `json:"ctr"`
		Baseline []*float64 `json:"baseline"`
	} `json:"ctr"`
	Variants []string `json:"variants"`
}

func series(t *testing.T, c *console.Console) seriesBody {
	t.Helper()
	rec := httptest.NewRecorder()
	c.ServeHTTP(rec, httptest.NewRequest("GET", "/console/api/series", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /console/api/series status = %d, want 200", rec.Code)
	}
	var b seriesBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("decode series: %v", err)
	}
	return b
}

// TestRunHistory runs the sampler for longer than the history and checks
// the ring keeps exactly the last 15 minutes at 5 s, oldest first.
func TestRunHistory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := console.New(console.Config{Stats: fakeStats{now: time.Now}, Quality: fakeQuality{}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		time.Sleep(20*time.Minute + time.Second)
		synctest.Wait()
		b := series(t, c)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
		if got, want := len(b.T), 180; got != want {
			t.Fatalf("len(series.t) = %d, want %d", got, want)
		}
		for i := 1; i < len(b.T); i++ {
			if d := b.T[i] - b.T[i-1]; d != 5000 {
				t.Fatalf("series.t[%d]-t[%d] = %d ms, want 5000", i, i-1, d)
			}
		}
		if got, want := b.T[len(b.T)-1], time.Now().Add(-time.Second).UnixMilli(); got != want {
			t.Errorf("newest sample at %d, want %d", got, want)
		}
		rps := b.Series["requests_per_second"]
		for i, ms := range b.T {
			if want := float64(time.UnixMilli(ms).Unix() % 1000); rps[i] == nil || *rps[i] != want {
				t.Fatalf("requests_per_second[%d] = %v, want %v", i, rps[i], want)
			}
		}
		if got := b.CTR["ftrl"].Baseline[0]; got == nil || *got != 0.04 {
			t.Errorf("ctr ftrl baseline[0] = %v, want 0.04", got)
		}
	})
}

// TestSeriesLazy checks the chart data still moves with no sampler: a
// request samples when the newest sample is older than two intervals.
func TestSeriesLazy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := console.New(console.Config{Stats: fakeStats{}})
		if err != nil {
			t.Fatal(err)
		}
		steps := []struct {
			wait time.Duration
			want int
		}{{0, 1}, {3 * time.Second, 1}, {8 * time.Second, 2}, {time.Second, 2}, {time.Hour, 3}}
		for _, s := range steps {
			time.Sleep(s.wait)
			b := series(t, c)
			if len(b.T) != s.want {
				t.Errorf("after +%v len(series.t) = %d, want %d", s.wait, len(b.T), s.want)
			}
			if got := b.Variants; len(got) != 1 || got[0] != "ftrl" {
				t.Errorf("variants = %v, want [ftrl] from the stats snapshot", got)
			}
		}
	})
}
