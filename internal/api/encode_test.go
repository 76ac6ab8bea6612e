package api

import (
	"encoding/json"
	"math"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/engine"
)

// TestAppendRecommendationMatchesEncodingJSON checks the hand-written
// encoder against encoding/json on awkward values.
func TestAppendRecommendationMatchesEncodingJSON(t *testing.T) {
	strs := []string{"", "plain", `q"uo\te`, "tab\tnl\ncr\r", "\x00\x1f\x7f\b\f", "é ü 日本", "bad\xffutf8", "\u2028\u2029", "<&>"}
	floats := []float64{0, 1, -1, 0.5, 1e-7, 1.5e-9, 123456789, 1e21, 1e300, -2.5e-10, math.SmallestNonzeroFloat64, 0.1 + 0.2}
	type item struct {
		ItemID string  `json:"item_id"`
		Score  float64 `json:"score"`
		Reason string  `json:"reason"`
	}
	type fallback struct {
		Reason string `json:"reason"`
		Detail string `json:"detail"`
	}
	type wire struct {
		RequestID    string    `json:"request_id"`
		Variant      string    `json:"variant"`
		ModelVersion string    `json:"model_version"`
		Fallback     *fallback `json:"fallback"`
		Items        []item    `json:"items"`
	}
	for i, s := range strs {
		d := &engine.Decision{RequestID: s, Variant: s, ModelVersion: s, Items: []engine.Item{}}
		want := wire{RequestID: s, Variant: s, ModelVersion: s, Items: []item{}}
		if i%2 == 1 {
			d.Fallback, d.FallbackDetail = engine.ReasonLowConfidence, s
			want.Fallback = &fallback{Reason: "low_confidence", Detail: s}
		}
		for _, f := range floats {
			d.Items = append(d.Items, engine.Item{ItemID: s, Score: f, Reason: s})
			want.Items = append(want.Items, item{ItemID: s, Score: f, Reason: s})
		}
		got := appendRecommendation(nil, d)
		wantJSON, _ := json.Marshal(want)
		// encoding/json escapes <, > and & as \u003c etc.; compare decoded
		// values, and the raw bytes only when no HTML characters are present.
		var gotV, wantV wire
		if err := json.Unmarshal(got, &gotV); err != nil {
			t.Fatalf("appendRecommendation(%q) = %s: invalid JSON: %v", s, got, err)
		}
		_ = json.Unmarshal(wantJSON, &wantV)
		if diff := cmp.Diff(wantV, gotV); diff != "" {
			t.Errorf("appendRecommendation(%q) decoded mismatch (-want +got):\n%s", s, diff)
		}
		if s != "<&>" && string(got) != string(wantJSON)+"\n" {
			t.Errorf("appendRecommendation(%q) = %s, want %s", s, got, wantJSON)
		}
	}
}

func TestAppendFloatNonFinite(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if got := string(appendFloat(nil, f)); got != "0" {
			t.Errorf("appendFloat(%v) = %s, want 0", f, got)
		}
	}
}

// TestDateHeader: the Date value is the second's, formatted once and
// shared by the responses of that second, and the next second gets its own.
func TestDateHeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := time.Now()
		first := dateHeader(now)
		if want := now.UTC().Format(http.TimeFormat); len(first) != 1 || first[0] != want {
			t.Fatalf("dateHeader(%v) = %q, want [%q]", now, first, want)
		}
		time.Sleep(time.Second - time.Duration(now.Nanosecond()) - 1)
		if same := dateHeader(time.Now()); &same[0] != &first[0] {
			t.Errorf("dateHeader later in the same second = %q, a new value; want the shared one", same)
		}
		time.Sleep(time.Nanosecond)
		later := time.Now()
		next := dateHeader(later)
		if want := later.UTC().Format(http.TimeFormat); next[0] != want || next[0] == first[0] {
			t.Errorf("dateHeader(%v) = %q, want %q (the next second)", later, next, want)
		}
	})
}
