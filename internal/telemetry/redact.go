package telemetry

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"log/slog"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
)

// Redacted is the value that replaces a field removed by name.
const Redacted = "[redacted]"

// Replacements for values scrubbed by pattern.
const (
	redactedEmail = "[email]"
	redactedPhone = "[phone]"
	redactedIP    = "[ip]"
)

var (
	emailRE = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)
	ipv4RE  = regexp.MustCompile(`\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}`)
	// ipv6CandRE finds runs that may be IPv6 addresses; each is confirmed
	// with netip.ParseAddr so times like 10:30:45 survive.
	ipv6CandRE = regexp.MustCompile(`[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*`)
	// phoneRE matches international numbers (+ and 8–15 digits with
	// separators) and 3-3-4 grouped national numbers.
	phoneRE = regexp.MustCompile(`\+\d[\d ().\-]{6,22}\d|\(?\d{3}\)?[ .\-]?\d{3}[ .\-]?\d{4}`)
)

// userKeys are normalized attribute keys whose value is a user id.
var userKeys = map[string]bool{
	"user_id": true, "userid": true, "uid": true, "enduser_id": true,
	"user": true, "sightline_user_id": true,
}

// secretKeys are normalized attribute keys whose value is removed.
var secretKeys = map[string]bool{
	"email": true, "phone": true, "phone_number": true, "ip": true, "client_ip": true,
	"remote_addr": true, "password": true, "token": true, "authorization": true,
	"client_address": true, "network_peer_address": true, "net_peer_ip": true,
	"net_sock_peer_addr": true, "http_client_ip": true, "x_forwarded_for": true,
	"cookie": true, "set_cookie": true, "api_key": true, "secret": true,
}

// secretSuffixes remove keys such as user_email or refresh_token.
var secretSuffixes = []string{"_email", "_phone", "_phone_number", "_password", "_token", "_ip", "_secret"}

type keyClass uint8

const (
	keyPlain keyClass = iota
	keyUser
	keySecret
)

// normalizeKey lower-cases k and maps '.' and '-' to '_' into buf.
func normalizeKey(buf []byte, k string) []byte {
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c == '.' || c == '-':
			c = '_'
		}
		buf = append(buf, c)
	}
	return buf
}

func classify(k string) keyClass {
	var arr [64]byte
	n := normalizeKey(arr[:0], k) // stays on the stack for short keys
	if userKeys[string(n)] || bytes.HasSuffix(n, []byte("_user_id")) {
		return keyUser
	}
	if secretKeys[string(n)] {
		return keySecret
	}
	for _, s := range secretSuffixes {
		if bytes.HasSuffix(n, []byte(s)) {
			return keySecret
		}
	}
	return keyPlain
}

// Redactor removes personal data from log attributes, span attributes and
// free text. User ids become a keyed pseudonym ("u_" + 16 hex digits of
// HMAC-SHA256(key, id)); fields named like email, phone, ip, password or
// token are replaced by [Redacted]; emails, phone numbers and IPv4/IPv6
// addresses inside string values are replaced by [email], [phone] and [ip].
//
// A Redactor is immutable and safe for concurrent use.
type Redactor struct {
	key []byte
	// macs pools keyed HMAC states (*pseudoMAC): hmac.New costs six
	// allocations and two extra SHA-256 blocks, and Pseudonymize runs on
	// every recommendation.
	macs *sync.Pool
}

// pseudoMAC is a reusable HMAC-SHA256 under the Redactor's key, with a
// buffer for the id (hash.Hash.Write takes a []byte).
type pseudoMAC struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

// maxPooledID bounds the id buffer a pooled MAC keeps.
const maxPooledID = 256

// NewRedactor returns a Redactor that pseudonymizes with key. The key must
// not be empty.
func NewRedactor(key []byte) (*Redactor, error) {
	if len(key) == 0 {
		return nil, ErrNoPseudonymKey
	}
	k := append([]byte(nil), key...)
	return &Redactor{key: k, macs: &sync.Pool{New: func() any {
		return &pseudoMAC{h: hmac.New(sha256.New, k), buf: make([]byte, 0, 64)}
	}}}, nil
}

// Pseudonymize returns the keyed pseudonym of a user id: "u_" followed by
// the first 16 hex digits of HMAC-SHA256(key, userID). It is deterministic
// for a key, so the same user can be followed across lines and spans. An
// empty id stays empty.
func (r *Redactor) Pseudonymize(userID string) string {
	if userID == "" {
		return ""
	}
	m := r.macs.Get().(*pseudoMAC)
	m.h.Reset()
	m.buf = append(m.buf[:0], userID...)
	m.h.Write(m.buf)
	var out [18]byte
	out[0], out[1] = 'u', '_'
	hex.Encode(out[2:], m.h.Sum(m.sum[:0])[:8])
	if cap(m.buf) <= maxPooledID {
		r.macs.Put(m)
	}
	return string(out[:])
}

// scanHints summarizes s so the regular expressions run only when they can
// match.
func scanHints(s string) (at, colons bool, digits int) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '@':
			at = true
		case c == ':':
			colons = true
		}
	}
	return at, colons, digits
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// replaceBounded replaces the matches of re in s that are not glued to a
// word character on either side and that accept reports as valid.
func replaceBounded(s string, re *regexp.Regexp, repl string, accept func(s string, lo, hi int) bool) string {
	idx := re.FindAllStringIndex(s, -1)
	if idx == nil {
		return s
	}
	var b strings.Builder
	last := 0
	for _, m := range idx {
		lo, hi := m[0], m[1]
		if lo > 0 && isWordByte(s[lo-1]) && isWordByte(s[lo]) {
			continue
		}
		if hi < len(s) && isWordByte(s[hi]) && isWordByte(s[hi-1]) {
			continue
		}
		if accept != nil && !accept(s, lo, hi) {
			continue
		}
		b.WriteString(s[last:lo])
		b.WriteString(repl)
		last = hi
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func validIP(s string, lo, hi int) bool {
	_, err := netip.ParseAddr(s[lo:hi])
	return err == nil
}

func validIPv6Run(s string, lo, hi int) bool {
	s = strings.Trim(s[lo:hi], ".")
	if strings.Count(s, ":") < 2 {
		return false
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}

// validPhone accepts 9–15 digits not glued to an identifier such as
// item-1234567890 or a path.
func validPhone(s string, lo, hi int) bool {
	if lo > 0 {
		switch s[lo-1] {
		case '-', '/', '.', '#', '_':
			return false
		}
	}
	s = s[lo:hi]
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			n++
		}
	}
	return n >= 9 && n <= 15
}

// RedactString scrubs emails, phone numbers and IP addresses from s. A
// string without any returns unchanged and without allocating.
func (r *Redactor) RedactString(s string) string {
	at, colons, digits := scanHints(s)
	if at {
		s = emailRE.ReplaceAllString(s, redactedEmail)
	}
	if colons {
		s = replaceBounded(s, ipv6CandRE, redactedIP, validIPv6Run)
	}
	if digits >= 4 {
		s = replaceBounded(s, ipv4RE, redactedIP, validIP)
	}
	if digits >= 9 {
		s = replaceBounded(s, phoneRE, redactedPhone, validPhone)
	}
	return s
}

// RedactAttr returns a with personal data removed: user id keys
// pseudonymized, secret keys replaced by [Redacted], string values
// scrubbed. It resolves [slog.LogValuer]s, recurses into groups, and
// scrubs error strings, string slices and the JSON form of structured
// values (maps, structs, slices).
func (r *Redactor) RedactAttr(a slog.Attr) slog.Attr {
	a.Value = a.Value.Resolve()
	switch classify(a.Key) {
	case keyUser:
		if a.Value.Kind() == slog.KindGroup {
			break
		}
		return slog.String(a.Key, r.Pseudonymize(valueString(a.Value)))
	case keySecret:
		return slog.String(a.Key, Redacted)
	}
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); s != "" {
			if rs := r.RedactString(s); rs != s {
				a.Value = slog.StringValue(rs)
			}
		}
	case slog.KindGroup:
		g := a.Value.Group()
		out := make([]slog.Attr, len(g))
		for i, ga := range g {
			out[i] = r.RedactAttr(ga)
		}
		a.Value = slog.GroupValue(out...)
	case slog.KindAny:
		a.Value = r.redactAny(a.Value.Any())
	}
	return a
}

func valueString(v slog.Value) string {
	if v.Kind() == slog.KindAny {
		if s, ok := v.Any().(fmt.Stringer); ok {
			return s.String()
		}
	}
	return v.String()
}

// redactAny redacts a value of kind Any.
func (r *Redactor) redactAny(v any) slog.Value {
	switch x := v.(type) {
	case nil:
		return slog.AnyValue(nil)
	case error:
		return slog.StringValue(r.RedactString(x.Error()))
	case fmt.Stringer:
		return slog.StringValue(r.RedactString(x.String()))
	case []string:
		out := make([]string, len(x))
		for i, s := range x {
			out[i] = r.RedactString(s)
		}
		return slog.AnyValue(out)
	case []float64, []float32, []int, []int64, []int32, []uint64, []bool, []*float64:
		return slog.AnyValue(v)
	case json.RawMessage:
		return r.redactJSON(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return slog.StringValue(r.RedactString(fmt.Sprint(v)))
	}
	return r.redactJSON(b)
}

// redactJSON redacts a JSON document value by value, keeping its shape.
func (r *Redactor) redactJSON(b []byte) slog.Value {
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		return slog.StringValue(r.RedactString(string(b)))
	}
	return slog.AnyValue(r.redactTree("", doc))
}

func (r *Redactor) redactTree(key string, v any) any {
	switch classify(key) {
	case keyUser:
		switch x := v.(type) {
		case string:
			return r.Pseudonymize(x)
		case float64:
			return r.Pseudonymize(strconv.FormatFloat(x, 'f', -1, 64))
		}
	case keySecret:
		return Redacted
	}
	switch x := v.(type) {
	case string:
		return r.RedactString(x)
	case map[string]any:
		for k, e := range x {
			x[k] = r.redactTree(k, e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = r.redactTree("", e)
		}
		return x
	}
	return v
}

// RedactKeyValue is [Redactor.RedactAttr] for OpenTelemetry attributes.
// Numeric user ids are pseudonymized too (their pseudonym is a string).
func (r *Redactor) RedactKeyValue(kv attribute.KeyValue) attribute.KeyValue {
	kv, _ = r.redactKV(kv)
	return kv
}

// redactKV redacts kv and reports whether it changed.
func (r *Redactor) redactKV(kv attribute.KeyValue) (attribute.KeyValue, bool) {
	switch classify(string(kv.Key)) {
	case keyUser:
		return kv.Key.String(r.Pseudonymize(kv.Value.String())), true
	case keySecret:
		return kv.Key.String(Redacted), true
	}
	switch kv.Value.Type() {
	case attribute.STRING:
		s := kv.Value.AsString()
		if rs := r.RedactString(s); rs != s {
			return kv.Key.String(rs), true
		}
	case attribute.STRINGSLICE:
		ss := kv.Value.AsStringSlice()
		changed := false
		for i, s := range ss {
			if rs := r.RedactString(s); rs != s {
				ss[i], changed = rs, true
			}
		}
		if changed {
			return kv.Key.StringSlice(ss), true
		}
	}
	return kv, false
}

// redactKeyValues redacts attrs, returning the input slice when nothing
// changed.
func (r *Redactor) redactKeyValues(attrs []attribute.KeyValue) []attribute.KeyValue {
	var out []attribute.KeyValue
	for i, kv := range attrs {
		rkv, changed := r.redactKV(kv)
		if out == nil && changed {
			out = make([]attribute.KeyValue, len(attrs))
			copy(out, attrs[:i])
		}
		if out != nil {
			out[i] = rkv
		}
	}
	if out == nil {
		return attrs
	}
	return out
}
