package api

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
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
