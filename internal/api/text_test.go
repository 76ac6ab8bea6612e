package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

// readText reads body through a textReader fed by chunk(body) and returns
// what it passed on and its error.
func readText(body []byte, chunk func(io.Reader) io.Reader) ([]byte, error) {
	return io.ReadAll(&textReader{r: chunk(bytes.NewReader(body))})
}

var chunkings = map[string]func(io.Reader) io.Reader{
	"whole":    func(r io.Reader) io.Reader { return r },
	"one byte": iotest.OneByteReader,
	"halves":   iotest.HalfReader,
}

func TestTextReader(t *testing.T) {
	tests := []struct {
		name, body string
		offset     int64 // of the error; -1 for none
		surrogate  rune
		eof        bool // found only at the end of the body
	}{
		{"ascii", `{"user_id":"u1"}`, -1, 0, false},
		{"utf-8", `{"user_id":"jürgen-東京-😀"}`, -1, 0, false},
		{"escaped pair", `{"user_id":"\ud83d\ude00"}`, -1, 0, false},
		{"escaped pair upper case", `{"user_id":"\uD83D\uDE00"}`, -1, 0, false},
		{"escaped bmp", `{"user_id":"\u00fc\u6771"}`, -1, 0, false},
		{"escaped backslash then u", `{"user_id":"\\ud800"}`, -1, 0, false},
		{"replacement char is a character", `{"user_id":"\ufffd` + "\uFFFD" + `"}`, -1, 0, false},
		{"bad hex left to json", `{"user_id":"\uZZZZ"}`, -1, 0, false},
		{"0xff", "{\"user_id\":\"a\xffb\"}", 13, 0, false},
		{"overlong", "{\"user_id\":\"\xc0\xafb\"}", 12, 0, false},
		{"utf-16 surrogate as utf-8", "{\"user_id\":\"\xed\xa0\x80\"}", 12, 0, false},
		{"cut at the end", "{\"user_id\":\"\xe6\x9d", 12, 0, true},
		{"truncated sequence mid-body", "{\"user_id\":\"\xe6\x9d\"}", 12, 0, false},
		{"lone high", `{"user_id":"a\ud800b"}`, 13, 0xd800, false},
		{"lone high at end of string", `{"user_id":"\ud800"}`, 12, 0xd800, false},
		{"lone low", `{"user_id":"\udc00"}`, 12, 0xdc00, false},
		{"high then high", `{"user_id":"\ud800\ud800\udc00"}`, 12, 0xd800, false},
		{"high then other escape", `{"user_id":"\ud800\n"}`, 12, 0xd800, false},
		{"high then raw character", `{"user_id":"\ud800é"}`, 12, 0xd800, false},
		{"high at the end of the body", `"\ud800`, 1, 0xd800, true},
		{"in an event batch", `[{"event_id":"e1"},{"user_id":"\udfff"}]`, 31, 0xdfff, false},
	}
	for _, tt := range tests {
		for cname, chunk := range chunkings {
			t.Run(tt.name+"/"+cname, func(t *testing.T) {
				got, err := readText([]byte(tt.body), chunk)
				if tt.offset < 0 {
					if err != nil || string(got) != tt.body {
						t.Fatalf("read %q = %q, %v; want it unchanged", tt.body, got, err)
					}
					return
				}
				te, ok := errors.AsType[*textError](err)
				if !ok {
					t.Fatalf("read %q error = %v, want a *textError", tt.body, err)
				}
				if te.offset != tt.offset || te.surrogate != tt.surrogate {
					t.Errorf("read %q error at %d (surrogate %x), want at %d (surrogate %x): %v", tt.body, te.offset, te.surrogate, tt.offset, tt.surrogate, te)
				}
				// A stream passes on what it read before it could tell;
				// read whole, it stops at the offending bytes.
				if string(got) != tt.body[:len(got)] || cname == "whole" && !tt.eof && int64(len(got)) > tt.offset {
					t.Errorf("read %q passed on %q, want a prefix of the body, whole no further than byte %d", tt.body, got, tt.offset)
				}
			})
		}
	}
}

// FuzzTextReader holds textReader to encoding/json: a body it passes
// decodes to strings that re-encode to what the body said, and a body
// whose strings encoding/json would alter is refused.
func FuzzTextReader(f *testing.F) {
	for _, s := range []string{
		`"u1"`, `"jürgen"`, `"\ud83d\ude00"`, `"\ud800"`, `"\udc00x"`, "\"\xff\"", "\"\xe6\x9d\"",
		`"\\ud800"`, `"\ud800\u0041"`, `["a","\ud800\udc00"]`, `{"k\ud800":"v"}`, "\"\xed\xa0\x80\"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, werr := readText(body, chunkings["whole"])
		_, oerr := readText(body, iotest.OneByteReader)
		_, wok := errors.AsType[*textError](werr)
		_, ook := errors.AsType[*textError](oerr)
		if wok != ook || (wok && werr.Error() != oerr.Error()) {
			t.Fatalf("read %q: whole %v, byte by byte %v: want the same verdict", body, werr, oerr)
		}
		if wok {
			return
		}
		if !utf8.Valid(body) {
			t.Fatalf("read %q accepted bytes that are not UTF-8", body)
		}
		var v any
		if json.Unmarshal(body, &v) != nil {
			return
		}
		// Every string encoding/json decoded is what the body meant: a
		// U+FFFD it produced must have been in the body.
		if n := countFFFD(v); n > bytes.Count(body, []byte("\uFFFD"))+bytes.Count(bytes.ToLower(body), []byte(`\ufffd`)) {
			t.Fatalf("read %q accepted a body encoding/json decodes with %d replacement characters", body, n)
		}
	})
}

func countFFFD(v any) int {
	n := 0
	switch x := v.(type) {
	case string:
		n += bytes.Count([]byte(x), []byte("\uFFFD"))
	case []any:
		for _, e := range x {
			n += countFFFD(e)
		}
	case map[string]any:
		for k, e := range x {
			n += countFFFD(k) + countFFFD(e)
		}
	}
	return n
}

// BenchmarkTextReader measures the check alone on an event batch, the
// largest body it sees.
func BenchmarkTextReader(b *testing.B) {
	var sb bytes.Buffer
	sb.WriteByte('[')
	for i := range 500 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"event_id":"ev-%d","type":"click","user_id":"jürgen-%d","item_id":"item-%d","request_id":"0123456789abcdef","timestamp":"2026-01-02T03:04:05Z"}`, i, i%97, i%31)
	}
	sb.WriteByte(']')
	body := sb.Bytes()
	buf := make([]byte, 4096) // encoding/json's reads are of this order
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		tr := textReader{r: bytes.NewReader(body)}
		for {
			if _, err := tr.Read(buf); err != nil {
				if !errors.Is(err, io.EOF) {
					b.Fatal(err)
				}
				break
			}
		}
	}
}
