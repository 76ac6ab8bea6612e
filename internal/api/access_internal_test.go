package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"testing"
)

// TestMatchComparesEveryHash checks what keeps key checks timing-safe: the
// presented key's hash is compared with every stored hash (the admin
// token's too), whichever matches and whether any does, always as two
// 32-byte values, so neither which key matched nor where two hashes first
// differ shows in the time taken (subtle.ConstantTimeCompare's time
// depends only on the length).
func TestMatchComparesEveryHash(t *testing.T) {
	var keys []Key
	var secrets []string
	for i := range 5 {
		s, k, err := NewKey(fmt.Sprintf("k%d", i), ScopeRead)
		if err != nil {
			t.Fatal(err)
		}
		keys, secrets = append(keys, k), append(secrets, s)
	}
	a := newAccess(AccessConfig{Keys: keys, AdminToken: "short"}, slog.New(slog.DiscardHandler))
	defer func(f func(a, b []byte) int) { compareHash = f }(compareHash)
	var calls int
	compareHash = func(x, y []byte) int {
		calls++
		if len(x) != sha256.Size || len(y) != sha256.Size {
			t.Errorf("compared %d and %d bytes, want two SHA-256 hashes", len(x), len(y))
		}
		return subtle.ConstantTimeCompare(x, y)
	}
	cases := map[string]string{"no match": "slk_nothing", "admin token": "short"}
	for i, s := range secrets {
		cases[fmt.Sprintf("key %d", i)] = s
	}
	for name, secret := range cases {
		calls = 0
		p := a.match(HashKey(secret))
		if calls != len(keys)+1 {
			t.Errorf("%s: %d comparisons, want %d (every key and the admin token)", name, calls, len(keys)+1)
		}
		switch {
		case name == "no match" && p != nil:
			t.Errorf("%s: matched %q", name, p.name)
		case name == "admin token" && (p == nil || p.name != adminTokenName || !p.scopes.has(ScopeAdmin) || p.scopes.has(ScopeRead)):
			t.Errorf("%s: matched %+v, want the admin token with the admin scope only", name, p)
		case name != "no match" && name != "admin token" && (p == nil || p.name != "k"+name[len(name)-1:]):
			t.Errorf("%s: matched %+v", name, p)
		}
	}
}

// TestScopeSetString checks the names a 403 quotes.
func TestScopeSetString(t *testing.T) {
	for s, want := range map[scopeSet]string{0: "none", scopeBits[ScopeRead]: "read", scopeBits[ScopeAdmin] | scopeBits[ScopeRecommend]: "recommend,admin"} {
		if got := s.String(); got != want {
			t.Errorf("scopeSet(%d).String() = %q, want %q", s, got, want)
		}
	}
}
