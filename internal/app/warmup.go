package app

import (
	"errors"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/sightline/sightline/internal/api"
)

// warming is the set of loads a node is waiting for before it recommends
// (see [Node.Loading]). The zero value has none. It is safe for
// concurrent use; the hot path reads only an atomic pointer.
type warming struct {
	mu    sync.Mutex
	loads []*string // in start order
	// first is the oldest load still running; nil when none is.
	first atomic.Pointer[string]
}

// loadingRetryAfter is the Retry-After, in seconds, of a recommendation
// refused while the node loads.
const loadingRetryAfter = "1"

// Loading marks the node as loading what (for example "the synthetic
// world (users and items)") until done is called. Meanwhile GET /readyz
// answers 503, and the recommendation routes answer a request that access
// control lets through (a 401 or 403 comes first) with 503
// application/problem+json with Retry-After and a detail naming the load,
// instead of an answer from a half-loaded catalog (no items, or popular
// items for users it does not know yet). Every other route is served as
// usual: the imports and writes that load the node among them.
//
// Loads may overlap; the node recommends again when every one is done,
// from a candidate index that holds the loaded items. done is idempotent. Loading is safe for concurrent use, before or after
// [Node.Serve].
func (n *Node) Loading(what string) (done func()) {
	end := n.warm.begin(what)
	return func() {
		// The candidate index publishes the items put since its last
		// refresh every RefreshInterval: publish the loaded ones now, so
		// that the first answer after the load has them.
		if n.engine != nil {
			n.engine.Index().Refresh()
		}
		end()
	}
}

func (w *warming) begin(what string) func() {
	p := &what
	w.mu.Lock()
	w.loads = append(w.loads, p)
	w.first.Store(w.loads[0])
	w.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			for i, q := range w.loads {
				if q == p {
					w.loads = append(w.loads[:i], w.loads[i+1:]...)
					break
				}
			}
			if len(w.loads) == 0 {
				w.first.Store(nil)
				return
			}
			w.first.Store(w.loads[0])
		})
	}
}

// err says what the node is still loading; nil when nothing.
func (w *warming) err() error {
	if p := w.first.Load(); p != nil {
		return errors.New("loading " + *p)
	}
	return nil
}

// recommendRoutes are the routes a loading node refuses.
var recommendRoutes = map[string]bool{
	hotRoute: true,
	"GET /v1/users/{user_id}/recommendations": true,
}

// gate refuses recommendations while a load runs and passes every other
// request to h. The node installs it as api.Config.Authorized, inside
// access control: a request without a valid key gets its 401 or 403 while
// the node loads, and only an authorized one learns that it is loading.
func (w *warming) gate(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if p := w.first.Load(); p != nil && recommendRoutes[r.Pattern] {
			rw.Header().Set("Retry-After", loadingRetryAfter)
			api.WriteProblem(rw, r, http.StatusServiceUnavailable, "unavailable",
				"the node is loading "+*p+" and does not recommend until it is loaded; retry after "+
					loadingRetryAfter+"s (the Go client does), or wait until GET /readyz answers 200")
			return
		}
		h.ServeHTTP(rw, r)
	})
}
