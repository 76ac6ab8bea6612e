package api

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/engine"
)

// FuzzScanRecommendation checks the fast path against encoding/json: when
// the scanner accepts a body, encoding/json must decode it to the same
// request with the same verdict.
func FuzzScanRecommendation(f *testing.F) {
	for _, s := range []string{
		`{"user_id":"user-123","count":10,"context":{"channel":"home","session_id":"s-1"}}`,
		` { "user_id" : "u" , "count" : 3 , "exclude_item_ids" : [ "a" , "b" ] } `,
		`{"user_id":"u","exclude_item_ids":[]}`,
		`{"user_id":"u","context":{}}`,
		`{"user_id":"u","count":0}`,
		`{"user_id":"u","count":1000000}`,
		`{"user_id":"u","count":1e1}`,
		`{"user_id":"u","count":10.0}`,
		`{"user_id":"u","USER_ID":"v"}`,
		`{"user_id":"u","user_id":"v"}`,
		`{"user_id":"\u0075"}`,
		`{"user_id":null}`,
		`{"user_id":"u"} {}`,
		`{"user_id":"u","context":{"page":"p","page":"q"}}`,
		`{"user_id":"u\x01"}`,
		"{\"user_id\":\"\xff\"}",
		"{\"user_id\":\"u\",\"exclude_item_ids\":[\"\xed\xa0\x80\"]}",
		`{"user_id":"\ud800"}`,
		`{"user_id":"\ufffd"}`,
		"{\"user_id\":\"\xef\xbf\xbd\"}",
		`[]`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := scanRecommendation(body)
		if !ok {
			return
		}
		slow, p := decodeRecommendation(bytes.NewReader(body))
		fp := validateRequest(&fast, "context.")
		if (p == nil) != (fp == nil) {
			t.Fatalf("scanRecommendation(%q) problem = %v, encoding/json problem = %v", body, fp, p)
		}
		if p != nil {
			if fp.detail != p.detail {
				t.Fatalf("scanRecommendation(%q) detail = %q, want %q", body, fp.detail, p.detail)
			}
			return
		}
		if diff := cmp.Diff(slow, fast); diff != "" {
			t.Fatalf("scanRecommendation(%q) mismatch (-encoding/json +fast):\n%s", body, diff)
		}
	})
}

// TestScanRecommendationAccepts checks the fast path takes the common shape,
// so that the fuzz test above compares something.
func TestScanRecommendationAccepts(t *testing.T) {
	for _, s := range []string{
		`{"user_id":"user-123","count":10,"context":{"channel":"home","session_id":"s-1"}}`,
		`{"user_id":"u","exclude_item_ids":["a","b"]}`,
	} {
		if _, ok := scanRecommendation([]byte(s)); !ok {
			t.Errorf("scanRecommendation(%q) = false, want true", s)
		}
	}
}

// BenchmarkDecodeRecommendationBody measures the fast path on the common
// body, and encoding/json on one the fast path declines (an escape).
func BenchmarkDecodeRecommendationBody(b *testing.B) {
	for _, bc := range []struct{ name, body string }{
		{"fast", `{"user_id":"user-123","count":10,"context":{"channel":"home","session_id":"s-1"},"exclude_item_ids":["i1","i2"]}`},
		{"slow", `{"user_id":"user-\u0031","count":10,"context":{"channel":"home","session_id":"s-1"},"exclude_item_ids":["i1","i2"]}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			body := []byte(bc.body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, p := decodeRecommendationBody(bytes.NewReader(body)); p != nil {
					b.Fatal(p.detail)
				}
			}
		})
	}
}

// FuzzValidateRequest checks validateRequest's shortcut for a valid request
// against the field checks it stands for: it answers nil exactly when every
// check passes.
func FuzzValidateRequest(f *testing.F) {
	f.Add("user-1", 10, "web", "s-1", "/home", "a,b")
	f.Add("", 0, "Web", "s\x01", "", "")
	f.Add("u", 101, "web-2_x", "", "p\u0085", ",")
	f.Add("u\xff", 1, "", "", "", "x\x7f")
	f.Fuzz(func(t *testing.T, user string, count int, channel, session, page, exclude string) {
		req := engine.Request{UserID: user, Count: count, Channel: channel, SessionID: session, Page: page}
		if exclude != "" {
			req.Exclude = strings.Split(exclude, ",")
		}
		valid := checkID("user_id", user, true) == "" && count >= 1 && count <= maxCount &&
			checkChannel("channel", channel) == "" && checkText("session_id", session, maxSessionLen) == "" &&
			checkText("page", page, maxPageLen) == "" && len(req.Exclude) <= maxExclude
		for _, id := range req.Exclude {
			valid = valid && checkID("id", id, true) == ""
		}
		if p := validateRequest(&req, "context."); (p == nil) != valid {
			t.Fatalf("validateRequest(%+v) = %v, want valid %v", req, p, valid)
		}
	})
}

func TestValidateRequestAllocs(t *testing.T) {
	req := engine.Request{UserID: "user-123", Count: 10, Channel: "web", SessionID: "s-1", Exclude: []string{"a"}}
	if n := testing.AllocsPerRun(100, func() { _ = validateRequest(&req, "context.") }); n != 0 {
		t.Errorf("validateRequest of a valid request allocates %v times, want 0", n)
	}
}
