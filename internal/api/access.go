package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// AccessConfig configures authentication and authorization. The zero value
// leaves the node open: every route but the admin ones answers without a
// credential, and the admin routes are refused.
type AccessConfig struct {
	// Keys are the accepted API keys. With none, the node is open (see
	// above); with some, every route but the [ScopePublic] ones needs a key
	// holding the route's scope.
	Keys []Key
	// AdminToken, if set, is a bearer credential that grants the admin
	// scope and nothing else (the --admin-token the admin routes have
	// always taken). It is kept alongside keys.
	AdminToken string
	// MountScopes gives the scope of each pattern of Config.Mount; New
	// fails on a mounted route without one. The API's own routes carry
	// theirs.
	MountScopes map[string]Scope
}

// Auth failure reasons, the values of the reason label of
// sightline_http_auth_failures_total.
const (
	authMissing   = "missing"   // no credential
	authMalformed = "malformed" // an Authorization header of another form
	authInvalid   = "invalid"   // a credential that matches no key
	authForbidden = "forbidden" // a key without the route's scope
)

// principal is who a request was authenticated as.
type principal struct {
	name   string
	scopes scopeSet
}

type principalKey struct{}

// Granted reports whether the request of ctx was authenticated with a
// credential that holds scope. Handlers that must never run unauthorized
// (the admin routes) check it as a second line behind the route's scope.
func Granted(ctx context.Context, scope Scope) bool {
	p, ok := ctx.Value(principalKey{}).(*principal)
	return ok && p.scopes.has(scope)
}

// KeyName returns the name of the API key the request of ctx was
// authenticated with ("admin-token" for the admin token), or "" when it
// was not authenticated.
func KeyName(ctx context.Context) string {
	if p, ok := ctx.Value(principalKey{}).(*principal); ok {
		return p.name
	}
	return ""
}

// adminTokenName names the admin token where a key's name would go.
const adminTokenName = "admin-token"

// access checks the credentials of requests. It is safe for concurrent
// use; it holds no secret, only hashes.
type access struct {
	hashes     [][sha256.Size]byte // the keys', then the admin token's
	principals []*principal        // same order
	keysOn     bool
	adminOn    bool
	failures   *prometheus.CounterVec
	log        *slog.Logger
}

// compareHash compares two hashes in time independent of their contents;
// a variable so that a test can check every hash is compared.
var compareHash = func(a, b []byte) int { return subtle.ConstantTimeCompare(a, b) }

func newAccess(cfg AccessConfig, log *slog.Logger) *access {
	a := &access{keysOn: len(cfg.Keys) > 0, log: log,
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_http_auth_failures_total",
			Help: "Requests refused by access control, by route pattern and reason: missing (no credential), malformed, invalid (no such key), forbidden (the key lacks the route's scope).",
		}, []string{"route", "reason"})}
	for _, k := range cfg.Keys {
		var s scopeSet
		for _, sc := range k.Scopes {
			s |= scopeBits[sc]
		}
		a.hashes = append(a.hashes, k.Hash)
		a.principals = append(a.principals, &principal{name: k.Name, scopes: s})
		a.adminOn = a.adminOn || s.has(ScopeAdmin)
	}
	if cfg.AdminToken != "" {
		a.hashes = append(a.hashes, HashKey(cfg.AdminToken))
		a.principals = append(a.principals, &principal{name: adminTokenName, scopes: scopeBits[ScopeAdmin]})
		a.adminOn = true
	}
	return a
}

// match returns the principal whose hash equals h, or nil. It compares h
// with every hash, whichever matches, so its time says nothing of which
// key (if any) matched.
func (a *access) match(h [sha256.Size]byte) *principal {
	found := -1
	for i := range a.hashes {
		found = subtle.ConstantTimeSelect(compareHash(h[:], a.hashes[i][:]), i, found)
	}
	if found < 0 {
		return nil
	}
	return a.principals[found]
}

// guard wraps h, the handler of pattern, with the check of scope. An open
// node (no keys) checks only admin routes; public routes are not wrapped.
func (a *access) guard(pattern string, scope Scope, h http.Handler) http.Handler {
	if scope == ScopePublic || (!a.keysOn && scope != ScopeAdmin) {
		return h
	}
	// Browsers cannot send a bearer token while navigating: the console's
	// pages (and the read routes their scripts fetch) take the key as the
	// password of HTTP Basic, on safe methods only, so a credential the
	// browser holds can never be replayed by another site into a write.
	basicOK := scope == ScopeRead
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, reason := a.authenticate(r, basicOK)
		if p == nil {
			a.deny(w, r, pattern, scope, reason, nil, basicOK)
			return
		}
		if !p.scopes.has(scope) {
			a.deny(w, r, pattern, scope, authForbidden, p, basicOK)
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// maxSecret bounds the credential hashed; a longer one is no key.
const maxSecret = 512

// authenticate returns the principal of r's credential, or nil and why not.
func (a *access) authenticate(r *http.Request, basicOK bool) (*principal, string) {
	hdr := r.Header.Get("Authorization")
	if hdr == "" {
		return nil, authMissing
	}
	var secret string
	scheme, rest, _ := strings.Cut(hdr, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		secret = strings.TrimSpace(rest)
	case strings.EqualFold(scheme, "Basic") && basicOK && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		user, pass, ok := r.BasicAuth()
		if !ok {
			return nil, authMalformed
		}
		// The key is the password; a browser prompt may get it in the
		// user name field instead.
		secret = pass
		if secret == "" {
			secret = user
		}
	default:
		return nil, authMalformed
	}
	if secret == "" || len(secret) > maxSecret {
		return nil, authMalformed
	}
	p := a.match(HashKey(secret))
	if p == nil {
		return nil, authInvalid
	}
	return p, ""
}

// deny answers a refused request, a 403 when p (the key's principal) is
// known and a 401 otherwise, and counts it. It logs the route, the reason
// and the key's name; never a credential.
func (a *access) deny(w http.ResponseWriter, r *http.Request, pattern string, scope Scope, reason string, p *principal, basicOK bool) {
	a.failures.WithLabelValues(pattern, reason).Inc()
	attrs := []slog.Attr{slog.String("route", pattern), slog.String("reason", reason)}
	if p != nil {
		attrs = append(attrs, slog.String("key_name", p.name))
	}
	a.log.LogAttrs(r.Context(), slog.LevelDebug, "request refused by access control", attrs...)
	if p != nil {
		writeProblem(w, r, &problem{status: http.StatusForbidden, slug: slugForbidden,
			detail: "the API key " + quote(p.name) + " holds the scopes " + p.scopes.String() + ", but " + pattern + " needs the scope " + string(scope) + "; use a key with it (docs/security.md lists the scope of every route)"})
		return
	}
	h := w.Header()
	h.Add("WWW-Authenticate", `Bearer realm="sightline"`)
	if basicOK {
		h.Add("WWW-Authenticate", `Basic realm="sightline", charset="UTF-8"`)
	}
	writeProblem(w, r, &problem{status: http.StatusUnauthorized, slug: slugUnauthorized, detail: a.unauthorizedDetail(scope, reason)})
}

func (a *access) unauthorizedDetail(scope Scope, reason string) string {
	what := "an API key with the scope " + string(scope)
	if scope == ScopeAdmin {
		switch {
		case !a.adminOn:
			return "the admin routes are disabled on this node: start it with --admin-token, or give an API key the admin scope"
		case a.keysOn:
			what = "the admin token (--admin-token) or an API key with the scope admin"
		default:
			what = "the admin token (--admin-token)"
		}
	}
	switch reason {
	case authMissing:
		return "this route needs " + what + ": send Authorization: Bearer <key>"
	case authMalformed:
		return "the Authorization header is not of the form Bearer <key>; this route needs " + what
	}
	return "the credential sent is not a key of this node (revoked, mistyped, or of another deployment); this route needs " + what
}
