package api

import (
	"context"
	"math/rand/v2"
)

// maxRequestIDLen bounds a client-supplied X-Request-ID.
const maxRequestIDLen = 64

type requestIDKey struct{}

// RequestIDFromContext returns the id of the request ctx belongs to, or ""
// outside a request served by a [Server]. The id comes from a valid
// X-Request-ID header or is generated; it is echoed in the X-Request-ID
// response header and becomes the recommendation's request_id.
func RequestIDFromContext(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// validRequestID reports whether s may be used as a request id: 1..64 bytes
// of [A-Za-z0-9._-].
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// newRequestID returns 16 random hex digits. math/rand/v2's global source is
// per-thread ChaCha8: fast, goroutine-safe and unpredictable enough for an id
// that is not a secret.
func newRequestID() string {
	const hex = "0123456789abcdef"
	var b [16]byte
	v := rand.Uint64()
	for i := 15; i >= 0; i-- {
		b[i] = hex[v&0xf]
		v >>= 4
	}
	return string(b[:])
}
