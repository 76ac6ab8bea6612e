package telemetry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"
)

// LogLine is one stored log line: the JSON record as written, and the
// fields it is indexed by.
type LogLine struct {
	Time      time.Time       `json:"time"`
	Level     slog.Level      `json:"level"`
	Msg       string          `json:"msg"`
	TraceID   string          `json:"trace_id,omitempty"`
	SpanID    string          `json:"span_id,omitempty"`
	RequestID string          `json:"request_id,omitempty"`
	Record    json.RawMessage `json:"record"`

	seq uint64
}

// LogFilter selects lines in [LogStore.Query]. Zero fields match
// everything.
type LogFilter struct {
	// TraceID keeps only lines of this trace (hex).
	TraceID string
	// RequestID keeps only lines with this request_id.
	RequestID string
	// Level is the minimum level; nil matches all levels.
	Level slog.Leveler
	// Text keeps only lines whose JSON contains this substring.
	Text string
	// Limit caps the number of results; zero means 100.
	Limit int
}

// LogStore is a bounded ring of recent log lines with indexes by trace id
// and request id, so a lookup by either costs O(matches). When full, the
// oldest line is evicted.
//
// All methods are safe for concurrent use.
type LogStore struct {
	mu        sync.RWMutex
	ring      []LogLine
	seq       uint64 // sequence number of the next line; line n is at ring[n%len]
	byTrace   map[string][]uint64
	byRequest map[string][]uint64
}

// NewLogStore returns a store that keeps the last capacity lines (zero
// means 100,000).
func NewLogStore(capacity int) *LogStore {
	if capacity <= 0 {
		capacity = 100_000
	}
	return &LogStore{
		ring:      make([]LogLine, capacity),
		byTrace:   make(map[string][]uint64),
		byRequest: make(map[string][]uint64),
	}
}

// indexFields are the top-level fields of a JSON log line the store
// indexes.
type indexFields struct {
	Time      time.Time `json:"time"`
	Level     string    `json:"level"`
	Msg       string    `json:"msg"`
	TraceID   string    `json:"trace_id"`
	SpanID    string    `json:"span_id"`
	RequestID string    `json:"request_id"`
}

// Add parses one JSON log line (as written by the slog JSON handler) and
// stores a copy of it. Lines that are not a JSON object are ignored and
// reported as an error.
func (s *LogStore) Add(line []byte) error {
	line = bytes.TrimSpace(line)
	var f indexFields
	if err := json.Unmarshal(line, &f); err != nil {
		return fmt.Errorf("parse log line: %w", err)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.Level)); err != nil {
		lvl = slog.LevelInfo
	}
	ll := LogLine{
		Time: f.Time, Level: lvl, Msg: f.Msg,
		TraceID: f.TraceID, SpanID: f.SpanID, RequestID: f.RequestID,
		Record: bytes.Clone(line),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := uint64(len(s.ring))
	if s.seq >= n {
		old := &s.ring[s.seq%n]
		unindex(s.byTrace, old.TraceID, old.seq)
		unindex(s.byRequest, old.RequestID, old.seq)
	}
	ll.seq = s.seq
	s.ring[s.seq%n] = ll
	if ll.TraceID != "" {
		s.byTrace[ll.TraceID] = append(s.byTrace[ll.TraceID], ll.seq)
	}
	if ll.RequestID != "" {
		s.byRequest[ll.RequestID] = append(s.byRequest[ll.RequestID], ll.seq)
	}
	s.seq++
	return nil
}

// unindex removes seq, the oldest entry of key, from idx.
func unindex(idx map[string][]uint64, key string, seq uint64) {
	if key == "" {
		return
	}
	seqs := idx[key]
	if len(seqs) == 0 || seqs[0] != seq {
		return
	}
	if len(seqs) == 1 {
		delete(idx, key)
		return
	}
	idx[key] = seqs[1:]
}

// Len returns the number of stored lines.
func (s *LogStore) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return int(min(s.seq, uint64(len(s.ring))))
}

// Query returns the lines matching f, newest first.
func (s *LogStore) Query(f LogFilter) []LogLine {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []LogLine{}
	n := uint64(len(s.ring))
	match := func(ll *LogLine) bool {
		switch {
		case f.TraceID != "" && ll.TraceID != f.TraceID,
			f.RequestID != "" && ll.RequestID != f.RequestID,
			f.Level != nil && ll.Level < f.Level.Level(),
			f.Text != "" && !bytes.Contains(ll.Record, []byte(f.Text)):
			return false
		}
		return true
	}
	var seqs []uint64
	indexed := false
	switch {
	case f.TraceID != "":
		seqs, indexed = s.byTrace[f.TraceID], true
	case f.RequestID != "":
		seqs, indexed = s.byRequest[f.RequestID], true
	}
	if indexed {
		for i := len(seqs) - 1; i >= 0 && len(out) < limit; i-- {
			if ll := &s.ring[seqs[i]%n]; match(ll) {
				out = append(out, *ll)
			}
		}
		return out
	}
	oldest := uint64(0)
	if s.seq > n {
		oldest = s.seq - n
	}
	for q := s.seq; q > oldest && len(out) < limit; q-- {
		if ll := &s.ring[(q-1)%n]; match(ll) {
			out = append(out, *ll)
		}
	}
	return out
}

// ParseLogFilter parses the query parameters of GET /v1/logs: trace_id,
// request_id, level (DEBUG, INFO, WARN, ERROR), q (text) and limit.
func ParseLogFilter(q url.Values) (LogFilter, error) {
	f := LogFilter{TraceID: strings.ToLower(q.Get("trace_id")), RequestID: q.Get("request_id"), Text: q.Get("q")}
	if v := q.Get("level"); v != "" {
		var l slog.Level
		if err := l.UnmarshalText([]byte(v)); err != nil {
			return LogFilter{}, fmt.Errorf("%w: level %q", ErrBadFilter, v)
		}
		f.Level = l
	}
	var err error
	if f.Limit, err = parseLimit(q.Get("limit")); err != nil {
		return LogFilter{}, err
	}
	return f, nil
}
