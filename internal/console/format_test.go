package console

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRecordFields(t *testing.T) {
	tests := []struct {
		in   string
		want []kv
	}{
		{`{"time":"t","level":"WARN","msg":"m","trace_id":"ab","request_id":"r","a":1}`, []kv{{Key: "a", Value: "1"}}},
		{`{"features":{"user_age_bucket":null,"user_region":"eu"},"ok":true}`, []kv{
			{Key: "features.user_age_bucket", Value: "null", Null: true},
			{Key: "features.user_region", Value: "eu"},
			{Key: "ok", Value: "true"},
		}},
		{`{"items":[{"score":0.5},"x"],"z":1.25e3}`, []kv{{Key: "items[0].score", Value: "0.5"}, {Key: "items[1]", Value: "x"}, {Key: "z", Value: "1.25e3"}}},
		{`{"a":"b","c":`, []kv{{Key: "a", Value: "b"}}},
		{`not json`, nil},
	}
	for _, tt := range tests {
		got := recordFields([]byte(tt.in))
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("recordFields(%s) mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
}

func FuzzRecordFields(f *testing.F) {
	for _, s := range []string{
		`{"msg":"decision","features":{"user_age_bucket":null}}`,
		`{"a":[[[[[[1]]]]]],"b":{"c":{"d":null}}}`,
		`[null,1,"x",true]`, `{"a":`, `null`, `"\u003cscript\u003e"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		fields := recordFields(raw)
		nulls := 0
		for _, fl := range fields {
			if fl.Null {
				nulls++
				if fl.Value != "null" {
					t.Errorf("recordFields(%q) null field %q has value %q", raw, fl.Key, fl.Value)
				}
			}
		}
		if most := bytes.Count(raw, []byte("null")); nulls > most {
			t.Errorf("recordFields(%q) found %d nulls, input has at most %d", raw, nulls, most)
		}
	})
}

func TestAgo(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0 s"}, {20 * time.Second, "20 s"}, {119 * time.Second, "119 s"}, {2 * time.Minute, "2 min"},
		{119 * time.Minute, "119 min"}, {2 * time.Hour, "2 h"}, {47 * time.Hour, "47 h"}, {6725 * time.Hour, "280 days"},
	}
	for _, tt := range tests {
		if got := ago(tt.d); got != tt.want {
			t.Errorf("ago(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestPValueAndPoints(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"pValue(0.0012)", pValue(0.0012), "0.0012"},
		{"pValue(1e-90)", pValue(1e-90), "< 0.0001"},
		{"pValue(1)", pValue(1), "1.0000"},
		{"points(0.0123)", points(0.0123), "+1.23 pp"},
		{"points(-0.005)", points(-0.005), "-0.50 pp"},
		{"points(+Inf)", points(math.Inf(1)), "–"},
		{"pointsAbs(0.0027)", pointsAbs(0.0027), "0.27 pp"},
		{"signedPct(0.5)", signedPct(0.5), "+50.00%"},
		{"signedPct(-0.25)", signedPct(-0.25), "-25.00%"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}
