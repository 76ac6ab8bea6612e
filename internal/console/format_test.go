package console

import (
	"bytes"
	"testing"

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
		if max := bytes.Count(raw, []byte("null")); nulls > max {
			t.Errorf("recordFields(%q) found %d nulls, input has at most %d", raw, nulls, max)
		}
	})
}
