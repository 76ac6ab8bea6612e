package api

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func BenchmarkRecommendHTTP(b *testing.B) {
	for _, telemetry := range []bool{false, true} {
		b.Run(fmt.Sprintf("telemetry=%v", telemetry), func(b *testing.B) {
			cfg := Config{Recommender: echoRecommender{}}
			if telemetry {
				tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
				b.Cleanup(func() { _ = tp.Shutdown(b.Context()) })
				cfg.Middleware = func(h http.Handler) http.Handler {
					return otelhttp.NewHandler(h, "api", otelhttp.WithTracerProvider(tp))
				}
			}
			s, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			srv := httptest.NewServer(s)
			defer srv.Close()
			hc := srv.Client()
			defer hc.CloseIdleConnections()
			body := []byte(`{"user_id":"user-123","count":10,"context":{"channel":"home","session_id":"s-1"}}`)
			url := srv.URL + "/v1/recommendations"
			b.ReportAllocs()
			for b.Loop() {
				resp, err := hc.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}

// BenchmarkRecommendHandler measures the server's own cost per request,
// without the network.
func BenchmarkRecommendHandler(b *testing.B) {
	s, err := New(Config{Recommender: echoRecommender{}})
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"user_id":"user-123","count":10,"context":{"channel":"home","session_id":"s-1"}}`)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("POST", "/v1/recommendations", bytes.NewReader(body))
		clear(w.h)
		s.ServeHTTP(w, r)
		if w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
	}
}

type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(c int)           { w.code = c }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

func BenchmarkDecodeEvents500(b *testing.B) {
	var sb strings.Builder
	sb.WriteByte('[')
	for i := range 500 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"event_id":"ev-%d","type":"click","user_id":"user-%d","item_id":"item-%d","request_id":"0123456789abcdef","channel":"home","timestamp":"2026-01-02T03:04:05Z","dwell_ms":%d}`, i, i%97, i%31, i*10)
	}
	sb.WriteByte(']')
	body := []byte(sb.String())
	now := time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC)
	lim := EventTimeLimits{MaxSkew: DefaultEventMaxSkew, MaxAge: DefaultEventMaxAge}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		evs, rej, p := decodeEventsWithin(bytes.NewReader(body), 1000, now, lim)
		if p != nil || len(evs) != 500 || len(rej) != 0 {
			b.Fatalf("decodeEvents = %d events, %d rejected, %v", len(evs), len(rej), p)
		}
	}
}
