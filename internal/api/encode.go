package api

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/sightline/sightline/internal/engine"
)

// maxPooledBuf is the largest buffer returned to the pool, so one huge
// response doesn't pin memory.
const maxPooledBuf = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > maxPooledBuf {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// writeJSON encodes v with encoding/json into a pooled buffer and writes it
// with status. It is for everything but the hot path.
func writeJSON(w http.ResponseWriter, status int, ctype string, v any) {
	bp := getBuf()
	buf := bytes.NewBuffer(*bp)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only values the API builds itself are encoded; a failure is a bug.
		buf.Reset()
		buf.WriteString(`{"type":"` + problemBase + slugInternal + `","title":"Internal server error","status":500,"detail":"response could not be encoded"}` + "\n")
		status, ctype = http.StatusInternalServerError, "application/problem+json"
	}
	writeBytes(w, status, ctype, buf.Bytes())
	*bp = buf.Bytes()
	putBuf(bp)
}

// Content-Type values shared by every response of their type: a header
// value slice built per response is an allocation. Nothing changes a header
// value in place (Header.Set and Add replace or extend the slice).
var (
	ctypeJSON    = []string{"application/json"}
	ctypeProblem = []string{"application/problem+json"}
)

// httpDate is the Date header value of one second, shared by the responses
// written in it like the Content-Type values above.
type httpDate struct {
	unix int64
	v    []string
}

// lastDate is the value of the latest second a response was written in.
var lastDate atomic.Pointer[httpDate]

// dateHeader returns the Date header value of now. net/http formats one
// per response when the handler sets none (about 1% of a node's CPU at
// saturation); this formats one per second.
func dateHeader(now time.Time) []string {
	sec := now.Unix()
	if d := lastDate.Load(); d != nil && d.unix == sec {
		return d.v
	}
	d := &httpDate{unix: sec, v: []string{now.UTC().Format(http.TimeFormat)}}
	lastDate.Store(d)
	return d.v
}

// chunkingThreshold is net/http's buffer of a response before it decides
// on chunked encoding: a body that fits and is written at once gets its
// Content-Length from the server, without an allocation for the header.
const chunkingThreshold = 2048

func writeBytes(w http.ResponseWriter, status int, ctype string, b []byte) {
	h := w.Header()
	switch ctype {
	case "application/json":
		h["Content-Type"] = ctypeJSON
	case "application/problem+json":
		h["Content-Type"] = ctypeProblem
	default:
		h["Content-Type"] = []string{ctype}
	}
	if len(b) >= chunkingThreshold {
		h["Content-Length"] = []string{strconv.Itoa(len(b))}
	}
	h["Date"] = dateHeader(time.Now())
	w.WriteHeader(status)
	// G705 (XSS): every caller writes JSON under a JSON content type, which
	// a browser does not render as HTML; a failed write means the client left.
	_, _ = w.Write(b) //nolint:gosec // see above
}

// appendRecommendation appends the wire form of d, the answer to a
// recommendation request, without reflection.
func appendRecommendation(b []byte, d *engine.Decision) []byte {
	b = append(b, `{"request_id":`...)
	b = appendString(b, d.RequestID)
	b = append(b, `,"variant":`...)
	b = appendString(b, d.Variant)
	b = append(b, `,"model_version":`...)
	b = appendString(b, d.ModelVersion)
	if d.Fallback == engine.ReasonNone {
		b = append(b, `,"fallback":null`...)
	} else {
		b = append(b, `,"fallback":{"reason":`...)
		b = appendString(b, string(d.Fallback))
		b = append(b, `,"detail":`...)
		b = appendString(b, d.FallbackDetail)
		b = append(b, '}')
	}
	b = append(b, `,"items":[`...)
	for i := range d.Items {
		it := &d.Items[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"item_id":`...)
		b = appendString(b, it.ItemID)
		b = append(b, `,"score":`...)
		b = appendFloat(b, it.Score)
		b = append(b, `,"reason":`...)
		b = appendString(b, it.Reason)
		b = append(b, '}')
	}
	return append(b, "]}\n"...)
}

// appendFloat appends f as encoding/json does; non-finite values, which JSON
// cannot carry, become 0.
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, '0')
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// Clean up e-09 to e-9, as encoding/json does.
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// like encoding/json.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
