package telemetry

import (
	"fmt"
	"log/slog"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func addLine(t *testing.T, s *LogStore, level, msg, traceID, requestID string) {
	t.Helper()
	line := fmt.Sprintf(`{"time":"2026-01-02T03:04:05Z","level":%q,"msg":%q,"trace_id":%q,"span_id":"00f067aa0ba902b7","request_id":%q}`+"\n",
		level, msg, traceID, requestID)
	if err := s.Add([]byte(line)); err != nil {
		t.Fatalf("Add(%s) error = %v", line, err)
	}
}

func TestLogStoreQuery(t *testing.T) {
	s := NewLogStore(5)
	addLine(t, s, "INFO", "m0 evicted", "t1", "r1")
	addLine(t, s, "INFO", "m1", "t1", "r1")
	addLine(t, s, "WARN", "m2 fallback", "t2", "r2")
	addLine(t, s, "ERROR", "m3 failure", "t1", "r3")
	addLine(t, s, "DEBUG", "m4", "", "")
	addLine(t, s, "INFO", "m5 fallback", "t2", "r2")
	tests := []struct {
		name string
		f    LogFilter
		want []string
	}{
		{"all newest first", LogFilter{}, []string{"m5 fallback", "m4", "m3 failure", "m2 fallback", "m1"}},
		{"trace", LogFilter{TraceID: "t1"}, []string{"m3 failure", "m1"}},
		{"request", LogFilter{RequestID: "r2"}, []string{"m5 fallback", "m2 fallback"}},
		{"trace and level", LogFilter{TraceID: "t1", Level: slog.LevelWarn}, []string{"m3 failure"}},
		{"level", LogFilter{Level: slog.LevelWarn}, []string{"m3 failure", "m2 fallback"}},
		{"text", LogFilter{Text: "fallback"}, []string{"m5 fallback", "m2 fallback"}},
		{"limit", LogFilter{Limit: 2}, []string{"m5 fallback", "m4"}},
		{"unknown trace", LogFilter{TraceID: "t9"}, nil},
		{"evicted request", LogFilter{RequestID: "r1"}, []string{"m1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, l := range s.Query(tt.f) {
				got = append(got, l.Msg)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Query(%+v) (-want +got):\n%s", tt.f, diff)
			}
		})
	}
	if got := s.Len(); got != 5 {
		t.Errorf("Len() = %d, want 5", got)
	}
}

func TestLogStoreIndexStaysBounded(t *testing.T) {
	s := NewLogStore(10)
	for i := range 1000 {
		addLine(t, s, "INFO", "m", fmt.Sprintf("t%d", i), fmt.Sprintf("r%d", i%3))
	}
	if len(s.byTrace) != 10 {
		t.Errorf("trace index has %d keys, want 10", len(s.byTrace))
	}
	n := 0
	for _, seqs := range s.byRequest {
		n += len(seqs)
	}
	if n != 10 {
		t.Errorf("request index has %d entries, want 10", n)
	}
	if got := len(s.Query(LogFilter{RequestID: "r0"})); got < 3 || got > 4 {
		t.Errorf("len(Query(r0)) = %d, want 3 or 4", got)
	}
}

func TestLogStoreRejectsGarbage(t *testing.T) {
	s := NewLogStore(2)
	if err := s.Add([]byte("not json")); err == nil {
		t.Errorf("Add(not json) error = nil, want error")
	}
	if s.Len() != 0 {
		t.Errorf("Len() = %d after garbage, want 0", s.Len())
	}
}

func TestParseLogFilter(t *testing.T) {
	tests := []struct {
		q       string
		want    LogFilter
		wantErr bool
	}{
		{"trace_id=ABC&request_id=r1&level=warn&q=fallback&limit=3",
			LogFilter{TraceID: "abc", RequestID: "r1", Level: slog.LevelWarn, Text: "fallback", Limit: 3}, false},
		{"", LogFilter{}, false},
		{"level=loud", LogFilter{}, true},
		{"limit=x", LogFilter{}, true},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.q)
		got, err := ParseLogFilter(q)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseLogFilter(%q) error = %v, want error %v", tt.q, err, tt.wantErr)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseLogFilter(%q) (-want +got):\n%s", tt.q, diff)
		}
	}
}

func FuzzLogStoreAdd(f *testing.F) {
	f.Add([]byte(`{"time":"2026-01-02T03:04:05Z","level":"INFO","msg":"m","trace_id":"t"}`))
	f.Add([]byte(`{"level":"WARN+2"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, line []byte) {
		s := NewLogStore(2)
		for range 3 {
			_ = s.Add(line)
		}
		if s.Len() > 2 {
			t.Errorf("Len() = %d, want <= 2", s.Len())
		}
		_ = s.Query(LogFilter{TraceID: "t", Text: "m"})
	})
}
