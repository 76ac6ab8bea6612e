package api

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
)

// echoRecommender returns a decision with req.Count items.
type echoRecommender struct{}

func (echoRecommender) RecommendFunc(_ context.Context, req engine.Request, fn func(*engine.Decision)) error {
	d := &engine.Decision{RequestID: req.RequestID, Variant: "a", ModelVersion: "m"}
	for range req.Count {
		d.Items = append(d.Items, engine.Item{ItemID: "item", Score: 0.5, Reason: "model"})
	}
	fn(d)
	return nil
}

func (echoRecommender) Decision(string) (*engine.Decision, bool) { return nil, false }

type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, []event.Event) (int, error) { return 0, nil }

func fuzzServer(f *testing.F) *Server {
	s, err := New(Config{Recommender: echoRecommender{}, Publisher: nopPublisher{}, MaxBodyBytes: 64 << 10, MaxBatch: 50})
	if err != nil {
		f.Fatal(err)
	}
	return s
}

func FuzzDecodeRecommendation(f *testing.F) {
	for _, seed := range []string{
		`{"user_id":"u1"}`,
		`{"user_id":"u1","count":5,"context":{"channel":"home","session_id":"s","page":"/p"},"exclude_item_ids":["a","b"]}`,
		`{"user_id":"u1","count":"5"}`, `{"user_id":1}`, `{"count":1e400}`, `{"user_id":"u","count":-1}`,
		`{"user_id":"u","context":null}`, `{"user_id":"u","exclude_item_ids":[null,1]}`, `null`, `[]`, `"x"`, ``,
		`{"user_id":"u"} {}`, `{"user_id":"\ud800"}`, `{"user_id":"u","colour":1}`, `{"user_id":"u","context":{"x":1}}`,
		"{\"user_id\":\"\xff\"}", "{\"user_id\":\"u\",\"exclude_item_ids\":[\"\xc0\xaf\"]}", `{"user_id":"\udc00"}`,
		`{"user_id":"\ud83d\ude00"}`, `{"user_id":"\ud800\ud800"}`, "{\"user_id\":\"\xe6\x9d", `{"user_id":"u","context":{"page":"\udbff"}}`,
	} {
		f.Add([]byte(seed))
	}
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		req, p := decodeRecommendation(http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(body)), 64<<10))
		if p != nil {
			if p.status < 400 || p.status > 499 || p.detail == "" {
				t.Fatalf("decodeRecommendation(%q) problem = %d %q, want a 4xx with a detail", body, p.status, p.detail)
			}
		} else if req.UserID == "" || req.Count < 1 || req.Count > maxCount || len(req.Exclude) > maxExclude {
			t.Fatalf("decodeRecommendation(%q) accepted invalid request %+v", body, req)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest("POST", "/v1/recommendations", bytes.NewReader(body)))
		if w.Code >= 500 {
			t.Fatalf("POST /v1/recommendations %q = %d %s, want no 5xx", body, w.Code, w.Body)
		}
		if (p == nil) != (w.Code == 200) {
			t.Fatalf("POST /v1/recommendations %q = %d, decoder problem %v: disagree", body, w.Code, p)
		}
	})
}

func FuzzDecodeEvents(f *testing.F) {
	for _, seed := range []string{
		`[{"event_id":"e1","type":"click","user_id":"u","item_id":"i","timestamp":"2026-01-02T03:04:05Z","dwell_ms":5}]`,
		`[{"event_id":"e1","type":"nope","user_id":"u","item_id":"i"}]`, `[{"event_id":"e1","type":1}]`,
		`[null]`, `[1]`, `[[]]`, `{}`, `[`, `[{}`, `[{}] x`, ``, `[{"timestamp":5}]`, `[{"dwell_ms":-1}]`,
		`[{"event_id":"e","type":"click","user_id":"u","item_id":"i","channel":"A"}]`,
		"[" + strings.Repeat(`{},`, 60) + `{}]`,
		"[{\"event_id\":\"e\",\"type\":\"click\",\"user_id\":\"\xff\",\"item_id\":\"i\"}]",
		`[{"event_id":"e","type":"click","user_id":"u","item_id":"i","request_id":"\ud800"}]`,
		`[{"event_id":"e","type":"click","user_id":"u","item_id":"i","timestamp":"9999-12-31T23:59:59Z"}]`,
		`[{"event_id":"e","type":"click","user_id":"u","item_id":"i","timestamp":"0001-01-01T00:00:00Z"}]`,
		`[{"event_id":"e","type":"click","user_id":"u","item_id":"i","timestamp":"2025-12-01T00:00:00Z"},{"event_id":"f","type":"click","user_id":"u","item_id":"i","timestamp":null}]`,
		`[{"event_id":"e","type":"click","user_id":"u","item_id":"i","timestamp":"2026-01-01T00:06:00+00:00"}]`,
	} {
		f.Add([]byte(seed))
	}
	s := fuzzServer(f)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	lim := EventTimeLimits{MaxSkew: DefaultEventMaxSkew, MaxAge: DefaultEventMaxAge}
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, rejected, p := decodeEventsWithin(http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(body)), 64<<10), 50, now, lim)
		if p != nil {
			if p.status < 400 || p.status > 499 || p.detail == "" {
				t.Fatalf("decodeEvents(%q) problem = %d %q, want a 4xx with a detail", body, p.status, p.detail)
			}
		} else {
			if len(evs)+len(rejected) > 50 {
				t.Fatalf("decodeEvents(%q) returned %d events and %d rejections, more than the batch limit", body, len(evs), len(rejected))
			}
			for i := range evs {
				if err := evs[i].Validate(); err != nil || lim.check(evs[i].Timestamp, now) != "" {
					t.Fatalf("decodeEvents(%q) accepted invalid event %+v: %v", body, evs[i], err)
				}
				if !utf8.ValidString(evs[i].ID + evs[i].UserID + evs[i].ItemID + evs[i].RequestID + evs[i].Channel) {
					t.Fatalf("decodeEvents(%q) accepted ids that are not UTF-8: %+v", body, evs[i])
				}
			}
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest("POST", "/v1/events", bytes.NewReader(body)))
		if w.Code >= 500 {
			t.Fatalf("POST /v1/events %q = %d %s, want no 5xx", body, w.Code, w.Body)
		}
	})
}

// FuzzQueryRecommendation holds GET /v1/users/{user_id}/recommendations to
// the same rules as the body: whatever it accepts is UTF-8 without control
// characters, however the path and query were escaped.
func FuzzQueryRecommendation(f *testing.F) {
	for _, seed := range []struct{ user, query string }{
		{"u1", "count=3&channel=home&session_id=s&page=%2Fp&exclude_item_ids=a,b"},
		{"u\xff", ""}, {"\xed\xa0\x80", ""}, {"u1", "session_id=%FF"}, {"u1", "page=%C0%AF"},
		{"u1", "exclude_item_ids=a,%E6%9D"}, {"u1", "count=1&count=2"}, {"u1", "session_id=%zz"},
		{"+15550107788", "session_id=alice%40example.com"}, {"", "count=0"},
	} {
		f.Add(seed.user, seed.query)
	}
	f.Fuzz(func(t *testing.T, user, query string) {
		req, p := queryRecommendation(user, query)
		if p != nil {
			if p.status != 400 || p.detail == "" {
				t.Fatalf("queryRecommendation(%q, %q) problem = %d %q, want a 400 with a detail", user, query, p.status, p.detail)
			}
			return
		}
		for _, s := range append([]string{req.UserID, req.Channel, req.SessionID, req.Page}, req.Exclude...) {
			if !printable(s) {
				t.Fatalf("queryRecommendation(%q, %q) accepted %q, not printable UTF-8", user, query, s)
			}
		}
	})
}
