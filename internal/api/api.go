package api

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
)

// Recommender produces recommendations and keeps recent decisions. The
// Server calls it from request goroutines concurrently.
type Recommender interface {
	// RecommendFunc decides for req and calls fn with the decision, which
	// is valid only until fn returns (the handler writes the answer inside
	// the call; engine.Engine reuses the decision's memory). It returns an
	// error, without calling fn, only when ctx is done or req is invalid;
	// failures inside the engine become fallbacks.
	RecommendFunc(ctx context.Context, req engine.Request, fn func(*engine.Decision)) error
	// Decision returns a recent decision by request id. It must not block.
	Decision(requestID string) (*engine.Decision, bool)
}

// EventPublisher makes events durable on the event bus. It is called
// concurrently and may block until the events are stored or ctx is done.
type EventPublisher interface {
	// Publish stores evs. A nil error means all of them are durable;
	// duplicates counts events whose id had been seen before (they are
	// accepted but applied once).
	Publish(ctx context.Context, evs []event.Event) (duplicates int, err error)
}

// Catalog stores user profiles and catalog items. It is called
// concurrently.
type Catalog interface {
	// PutUser creates or replaces the profile u.ID.
	PutUser(ctx context.Context, u event.User) error
	// PutItem creates or replaces the item it.ID.
	PutItem(ctx context.Context, it event.Item) error
}

// CatalogReader is the read side of a [Catalog], an optional capability:
// when Config.Catalog implements it, GET /v1/users/{user_id} and
// GET /v1/items/{item_id} read through it; otherwise they answer 501. Its
// methods are called concurrently and may block on the store until ctx is
// done.
type CatalogReader interface {
	// UserProfile returns the stored profile of the user id and its recent
	// activity; ok is false when the store has neither.
	UserProfile(ctx context.Context, id string) (p UserProfile, ok bool, err error)
	// CatalogItem returns the catalog item id; ok is false when it is not
	// in the catalog.
	CatalogItem(ctx context.Context, id string) (it event.Item, ok bool, err error)
}

// UserProfile is the answer to GET /v1/users/{user_id}: what the feature
// store holds of a user. The profile fields are empty (and UpdatedAt zero)
// for a user known only from events.
type UserProfile struct {
	event.User
	// Activity is the user's recent activity, most recent first.
	Activity Activity `json:"activity"`
}

// Activity is a user's recent activity as the feature store keeps it. Each
// list holds distinct values, most recent first; none is nil.
type Activity struct {
	// RecentItems are the items the user most recently clicked or
	// converted on.
	RecentItems []string `json:"recent_items"`
	// RecentCategories are the categories of those items.
	RecentCategories []string `json:"recent_categories"`
	// ClickedItems is the longer list of clicked items the engine filters
	// out of recommendations.
	ClickedItems []string `json:"clicked_items"`
}

// Importer loads NDJSON files of users or items, reading r as a stream. It
// is called concurrently.
type Importer interface {
	// ImportUsers reads one event.User per line.
	ImportUsers(ctx context.Context, r io.Reader) (ImportResult, error)
	// ImportItems reads one event.Item per line.
	ImportItems(ctx context.Context, r io.Reader) (ImportResult, error)
}

// ImportResult is the answer to an import: how many lines were stored and
// which were rejected.
type ImportResult struct {
	Imported int         `json:"imported"`
	Rejected int         `json:"rejected"`
	Errors   []LineError `json:"errors"`
}

// LineError is one rejected line of an import.
type LineError struct {
	// Line is the 1-based line number.
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// StatsSource provides the rolling summary served at GET /v1/stats. Stats
// must not block for long; its result is encoded with encoding/json.
type StatsSource interface {
	Stats(ctx context.Context) any
}

// Defaults for Config fields left zero.
const (
	DefaultMaxBodyBytes   = 1 << 20
	DefaultMaxImportBytes = 256 << 20
	DefaultMaxBatch       = 1000
)

// Config configures a [Server]. Only Recommender is required; a route whose
// dependency is nil answers 501 Not Implemented.
type Config struct {
	// Recommender serves recommendations and decision records. Required.
	Recommender Recommender
	// Publisher makes events durable (POST /v1/events).
	Publisher EventPublisher
	// Catalog stores users and items (PUT /v1/users/{id}, /v1/items/{id}).
	Catalog Catalog
	// Importer loads NDJSON files (POST /v1/users:import, /v1/items:import).
	Importer Importer
	// Stats provides GET /v1/stats.
	Stats StatsSource
	// Logger receives errors and recovered panics; nil discards them.
	Logger *slog.Logger
	// Ready reports readiness for GET /readyz; nil means always ready.
	Ready func(ctx context.Context) error
	// MaxBodyBytes bounds JSON request bodies; zero means 1 MiB.
	MaxBodyBytes int64
	// MaxImportBytes bounds NDJSON import bodies, which are streamed; zero
	// means 256 MiB.
	MaxImportBytes int64
	// MaxBatch bounds the events of one POST /v1/events; zero means 1000.
	MaxBatch int
	// EventTimes bounds the timestamps POST /v1/events accepts, relative
	// to Now; the zero value sets no bound (see [EventTimeLimits]).
	EventTimes EventTimeLimits
	// Now is the server's clock for event timestamps; nil means time.Now.
	Now func() time.Time
	// Middleware, if set, wraps the handler of every API route. It runs
	// after routing, so r.Pattern names the route (e.g.
	// "POST /v1/recommendations"), and inside the request id and panic
	// recovery layers. Mounted handlers are not wrapped.
	Middleware func(http.Handler) http.Handler
	// Authorized, if set, wraps the handler of every API route inside
	// access control and outside admission: it sees only requests whose
	// credentials grant the route's scope (so a gate it applies, such as
	// "still loading", never answers before a 401 or 403), and a refusal
	// it writes takes no admission slot. Mounted handlers are not wrapped.
	Authorized func(http.Handler) http.Handler
	// OnEvents, if set, is called with the valid events of a batch before
	// they are published, so the application can stamp TraceParent and
	// TraceState into each. It may modify the events in place.
	OnEvents func(ctx context.Context, evs []event.Event)
	// Mount adds extra routes (ServeMux pattern to handler), such as
	// "GET /metrics" or "/console/". They must not conflict with API routes,
	// and each needs a scope in Access.MountScopes.
	Mount map[string]http.Handler
	// Access configures API keys and the admin token; the zero value
	// leaves every route but the admin ones open.
	Access AccessConfig
	// Admission bounds the recommendation and event requests handled at
	// once; the zero value bounds nothing.
	Admission AdmissionConfig
	// Registerer receives the access and admission metrics; nil registers
	// none.
	Registerer prometheus.Registerer
}

// Server is the HTTP handler of the Sightline API. It is safe for
// concurrent use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	mounted []string         // Config.Mount's patterns, for Patterns
	scopes  map[string]Scope // of every route
}

var _ http.Handler = (*Server)(nil)

//go:embed openapi.json
var openAPISpec []byte

// OpenAPI returns the OpenAPI 3.1 document of the API, the one served at
// GET /openapi.json. The caller must not modify it.
func OpenAPI() []byte { return openAPISpec }

// route is one API route: its pattern, handler, the scope a key needs to
// call it and the limiter that admits it.
type route struct {
	pattern string
	handler http.HandlerFunc
	scope   Scope
	admit   admitClass
}

// routes lists every API route; openapi.json documents exactly these.
func (s *Server) routes() []route {
	return []route{
		{"POST /v1/recommendations", s.recommend, ScopeRecommend, admitRecommend},
		{"GET /v1/users/{user_id}/recommendations", s.recommendGet, ScopeRecommend, admitRecommend},
		{"POST /v1/events", s.events, ScopeIngest, admitEvents},
		{"PUT /v1/users/{user_id}", s.putUser, ScopeIngest, admitNone},
		{"PUT /v1/items/{item_id}", s.putItem, ScopeIngest, admitNone},
		{"POST /v1/users:import", s.importUsers, ScopeIngest, admitNone},
		{"POST /v1/items:import", s.importItems, ScopeIngest, admitNone},
		{"GET /v1/users/{user_id}", s.getUser, ScopeIngest, admitNone},
		{"DELETE /v1/users/{user_id}", s.eraseUser, ScopeIngest, admitNone},
		{"GET /v1/items/{item_id}", s.getItem, ScopeIngest, admitNone},
		{"GET /v1/decisions/{request_id}", s.decision, ScopeRead, admitNone},
		{"GET /v1/stats", s.stats, ScopeRead, admitNone},
		{"GET /healthz", s.healthz, ScopePublic, admitNone},
		{"GET /readyz", s.readyz, ScopePublic, admitNone},
		{"GET /openapi.json", s.openapi, ScopePublic, admitNone},
	}
}

// New returns a Server for cfg. It fails when a required dependency is
// missing, a limit is negative or a mounted pattern is invalid or conflicts.
func New(cfg Config) (s *Server, err error) {
	if cfg.Recommender == nil {
		return nil, errors.New("api: config: Recommender is required")
	}
	if cfg.MaxBodyBytes < 0 || cfg.MaxImportBytes < 0 || cfg.MaxBatch < 0 || cfg.EventTimes.MaxSkew < 0 || cfg.EventTimes.MaxAge < 0 {
		return nil, errors.New("api: config: MaxBodyBytes, MaxImportBytes, MaxBatch and the event time limits must not be negative")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxImportBytes == 0 {
		cfg.MaxImportBytes = DefaultMaxImportBytes
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s = &Server{cfg: cfg, log: log, mux: http.NewServeMux(), scopes: map[string]Scope{}}
	acc := newAccess(cfg.Access, log)
	adm := newAdmitter(cfg.Admission)
	defer func() {
		// ServeMux.Handle panics on invalid or conflicting patterns.
		if v := recover(); v != nil {
			s, err = nil, fmt.Errorf("api: register routes: %v", v)
		}
	}()
	// Each route: the telemetry middleware outermost (a refused request
	// still gets its span and is counted), then access control, then the
	// Authorized middleware, then admission (a request without a valid key
	// takes no slot).
	for _, rt := range s.routes() {
		h := adm.wrap(rt.pattern, rt.admit, rt.handler)
		if cfg.Authorized != nil {
			h = cfg.Authorized(h)
		}
		h = acc.guard(rt.pattern, rt.scope, h)
		if cfg.Middleware != nil {
			h = cfg.Middleware(h)
		}
		s.mux.Handle(rt.pattern, h)
		s.scopes[rt.pattern] = rt.scope
	}
	for pattern, h := range cfg.Mount {
		if h == nil {
			return nil, fmt.Errorf("api: config: nil handler mounted at %q", pattern)
		}
		scope, ok := cfg.Access.MountScopes[pattern]
		if !ok || (scope != ScopePublic && scopeBits[scope] == 0) {
			return nil, fmt.Errorf("api: config: the route %q has no access scope: give it one in Access.MountScopes (internal/app/access.go) and docs/security.md", pattern)
		}
		s.mux.Handle(pattern, acc.guard(pattern, scope, h))
		s.mounted = append(s.mounted, pattern)
		s.scopes[pattern] = scope
	}
	slices.Sort(s.mounted)
	if cfg.Registerer != nil {
		for _, c := range append(adm.collectors(), acc.failures) {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("api: register metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Scope returns the scope a key needs to call the route pattern (one of
// [Server.Patterns]), and false for a pattern s does not route.
func (s *Server) Scope(pattern string) (Scope, bool) {
	sc, ok := s.scopes[pattern]
	return sc, ok
}

// Patterns returns the ServeMux patterns s routes, its API routes first and
// then the mounted ones (sorted), such as "GET /v1/stats". Contract tests
// compare them with the OpenAPI document.
func (s *Server) Patterns() []string {
	var out []string
	for _, rt := range s.routes() {
		out = append(out, rt.pattern)
	}
	return append(out, s.mounted...)
}

// ServeHTTP assigns the request id, recovers panics and routes the request.
// Unknown paths and methods are answered with problem+json 404 and 405.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The canonical form: Get canonicalizes any other spelling into a new
	// string, an allocation every request.
	id := r.Header.Get("X-Request-Id")
	if !validRequestID(id) {
		id = newRequestID()
	}
	w.Header()["X-Request-Id"] = []string{id}
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
	rw := &recoverWriter{ResponseWriter: w}
	defer s.recover(rw, r)

	h, pattern := s.mux.Handler(r)
	if pattern == "" {
		// 404, 405 or a redirect to a clean path: let the mux decide, and
		// turn its plain-text errors into problems.
		h.ServeHTTP(&unroutedWriter{w: rw, r: r}, r)
		return
	}
	s.mux.ServeHTTP(rw, r)
}

// recover turns a panic in a handler into a 500 problem (when nothing was
// written yet) and logs it. http.ErrAbortHandler is passed on.
func (s *Server) recover(rw *recoverWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
		panic(v)
	}
	// r.Pattern is set on the routed copy of r only; the route is found
	// again for the log line.
	_, pattern := s.mux.Handler(r)
	s.log.ErrorContext(r.Context(), "panic in HTTP handler",
		slog.String("route", pattern),
		slog.String("request_id", RequestIDFromContext(r.Context())),
		slog.String("panic", fmt.Sprint(v)))
	if rw.wrote {
		panic(http.ErrAbortHandler) // the response is torn; drop the connection
	}
	writeProblem(rw, r, &problem{status: http.StatusInternalServerError, slug: slugInternal,
		detail: "the server failed while handling the request; it has been logged with the request id"})
}

// recoverWriter remembers whether the response has started.
type recoverWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *recoverWriter) WriteHeader(code int) {
	if code >= 200 {
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recoverWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *recoverWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher for handlers that stream.
func (w *recoverWriter) Flush() {
	w.wrote = true
	http.NewResponseController(w.ResponseWriter).Flush() //nolint:errcheck // best effort
}

// unroutedWriter replaces the mux's plain-text 404 and 405 with problems
// and passes anything else (redirects) through.
type unroutedWriter struct {
	w        http.ResponseWriter
	r        *http.Request
	swallow  bool
	wroteHdr bool
}

func (u *unroutedWriter) Header() http.Header { return u.w.Header() }

func (u *unroutedWriter) WriteHeader(code int) {
	if u.wroteHdr {
		return
	}
	u.wroteHdr = true
	switch code {
	case http.StatusNotFound:
		u.swallow = true
		writeProblem(u.w, u.r, notFound(fmt.Sprintf("no route for %s %s; see /openapi.json for the API", u.r.Method, quotePath(u.r.URL.EscapedPath()))))
	case http.StatusMethodNotAllowed:
		u.swallow = true
		writeProblem(u.w, u.r, &problem{status: http.StatusMethodNotAllowed, slug: slugMethodNotAllowed,
			detail: fmt.Sprintf("method %s is not allowed on %s; use %s", u.r.Method, quotePath(u.r.URL.EscapedPath()), u.w.Header().Get("Allow"))})
	default:
		u.w.WriteHeader(code)
	}
}

func (u *unroutedWriter) Write(b []byte) (int, error) {
	if !u.wroteHdr {
		u.WriteHeader(http.StatusOK)
	}
	if u.swallow {
		return len(b), nil
	}
	return u.w.Write(b)
}

// quotePath shortens a path for a detail; it may hold a user id, but it
// goes only to the client that sent it.
func quotePath(p string) string {
	if len(p) > 128 {
		return p[:128] + "..."
	}
	return p
}
