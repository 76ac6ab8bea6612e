package api

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Scope is a permission an API key grants. Every route of a node needs one
// scope (see docs/security.md for the table); [ScopePublic] routes need none.
type Scope string

// The scopes. A key holds any set of the first four; none implies another.
const (
	// ScopeRecommend asks for recommendations.
	ScopeRecommend Scope = "recommend"
	// ScopeIngest writes and reads back what clients own: events,
	// profiles, catalog items and imports.
	ScopeIngest Scope = "ingest"
	// ScopeRead reads what the node observed: decisions, traces, logs,
	// stats, alerts, experiments, metrics and the console.
	ScopeRead Scope = "read"
	// ScopeAdmin changes the node's state: snapshots, faults, rollouts,
	// and the profiler.
	ScopeAdmin Scope = "admin"
	// ScopePublic marks a route that needs no credential (liveness,
	// readiness, the OpenAPI document, the console's static assets). It is
	// not a scope a key can hold.
	ScopePublic Scope = "public"
)

// scopeSet is a set of scopes, one bit each.
type scopeSet uint8

var scopeBits = map[Scope]scopeSet{ScopeRecommend: 1, ScopeIngest: 2, ScopeRead: 4, ScopeAdmin: 8}

func (s scopeSet) has(sc Scope) bool { return s&scopeBits[sc] != 0 }

// String lists the scopes of s, comma-separated, in the order of the
// constants.
func (s scopeSet) String() string {
	var out []string
	for _, sc := range []Scope{ScopeRecommend, ScopeIngest, ScopeRead, ScopeAdmin} {
		if s.has(sc) {
			out = append(out, string(sc))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}

// KeyPrefix starts every key [NewKey] makes, so a leaked key is easy to
// recognise (secret scanners) and to tell from an admin token.
const KeyPrefix = "slk_"

// Key is one API key as the keys file holds it: a name, its scopes and the
// SHA-256 of the secret. The secret itself is never stored: a node hashes
// the secret a request presents and compares the hashes.
type Key struct {
	// Name identifies the key in metrics-free places: problem details of a
	// 403, span attributes and logs. It is not a secret.
	Name string
	// Scopes are the scopes the key grants.
	Scopes []Scope
	// Hash is the SHA-256 of the secret.
	Hash [sha256.Size]byte
}

// Line returns k as a line of the keys file: "name scope[,scope...]
// sha256:<hex>".
func (k Key) Line() string {
	sc := make([]string, len(k.Scopes))
	for i, s := range k.Scopes {
		sc[i] = string(s)
	}
	return k.Name + " " + strings.Join(sc, ",") + " sha256:" + hex.EncodeToString(k.Hash[:])
}

// HashKey returns the SHA-256 of a key's secret, the form the keys file
// stores. A plain hash suffices (no salt, no slow hash) because a key is
// 256 random bits: there is no dictionary to try.
func HashKey(secret string) [sha256.Size]byte { return sha256.Sum256([]byte(secret)) }

// NewKey returns a new secret, KeyPrefix and 43 characters of URL-safe
// base64 of 32 random bytes, and its [Key] with name and scopes, whose
// [Key.Line] goes into the keys file. The secret is given to the client
// and kept nowhere else.
func NewKey(name string, scopes ...Scope) (secret string, k Key, err error) {
	if err := validKeyName(name); err != nil {
		return "", Key{}, err
	}
	if len(scopes) == 0 {
		return "", Key{}, errors.New("new key: no scope; give at least one of recommend, ingest, read, admin")
	}
	for _, s := range scopes {
		if scopeBits[s] == 0 {
			return "", Key{}, fmt.Errorf("new key: unknown scope %q; want recommend, ingest, read or admin", s)
		}
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", Key{}, fmt.Errorf("new key: %w", err)
	}
	secret = KeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, Key{Name: name, Scopes: slices.Clone(scopes), Hash: HashKey(secret)}, nil
}

// ParseKeyScopes parses a comma-separated list of scopes, such as
// "read,admin".
func ParseKeyScopes(s string) ([]Scope, error) {
	var out []Scope
	for f := range strings.SplitSeq(s, ",") {
		sc := Scope(strings.TrimSpace(f))
		if scopeBits[sc] == 0 {
			return nil, fmt.Errorf("unknown scope %q; want recommend, ingest, read or admin", sc)
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out, nil
}

func validKeyName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("key name %q: want 1 to 64 characters of [A-Za-z0-9._-]", name)
	}
	for i := 0; i < len(name); i++ {
		if !keyNameByte(name[i]) {
			return fmt.Errorf("key name %q: want 1 to 64 characters of [A-Za-z0-9._-]", name)
		}
	}
	return nil
}

func keyNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// ParseKeys reads a keys file: one key a line, "name scopes sha256:<64 hex
// digits>", fields separated by blanks; scopes are comma-separated; blank
// lines and lines starting with # are skipped. Names and hashes must be
// unique. An error names the line.
func ParseKeys(r io.Reader) ([]Key, error) {
	var keys []Key
	names := map[string]int{}
	hashes := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.Fields(text)
		if len(f) != 3 {
			return nil, fmt.Errorf("keys line %d: want 3 fields, name scopes sha256:<hex>, got %d", line, len(f))
		}
		if err := validKeyName(f[0]); err != nil {
			return nil, fmt.Errorf("keys line %d: %w", line, err)
		}
		scopes, err := ParseKeyScopes(f[1])
		if err != nil {
			return nil, fmt.Errorf("keys line %d: %w", line, err)
		}
		hexHash, ok := strings.CutPrefix(f[2], "sha256:")
		if !ok {
			return nil, fmt.Errorf("keys line %d: the hash must start with sha256: (the file holds hashes, never keys)", line)
		}
		var k Key
		if n, err := hex.Decode(k.Hash[:], []byte(hexHash)); err != nil || n != sha256.Size || len(hexHash) != 2*sha256.Size {
			return nil, fmt.Errorf("keys line %d: the hash must be sha256: and 64 hex digits", line)
		}
		if prev, dup := names[f[0]]; dup {
			return nil, fmt.Errorf("keys line %d: name %q is already used on line %d", line, f[0], prev)
		}
		if prev, dup := hashes[k.Hash]; dup {
			return nil, fmt.Errorf("keys line %d: the same key is already on line %d", line, prev)
		}
		names[f[0]], hashes[k.Hash] = line, line
		k.Name, k.Scopes = f[0], scopes
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read keys: %w", err)
	}
	return keys, nil
}

// LoadKeys reads the keys file at path (see [ParseKeys]). A file with no
// key is an error: it would leave the node open while its operator
// believes it closed.
func LoadKeys(path string) ([]Key, error) {
	f, err := os.Open(path) //nolint:gosec // the operator's --api-keys-file
	if err != nil {
		return nil, fmt.Errorf("api keys file: %w", err)
	}
	defer func() { _ = f.Close() }() // read only: nothing to lose
	keys, err := ParseKeys(f)
	if err != nil {
		return nil, fmt.Errorf("api keys file %s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("api keys file %s: no key in it; add lines \"name scopes sha256:<hex>\" (sightline keys prints one)", path)
	}
	return keys, nil
}
