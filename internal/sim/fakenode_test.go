package sim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/event"
)

// fakeNode implements just enough of the node's API for the simulator:
// POST /v1/recommendations, POST /v1/events and the two NDJSON imports. It
// decodes strictly and validates with internal/event, as the real API does.
type fakeNode struct {
	w          *World
	recLatency time.Duration // added to every recommendation
	evLatency  time.Duration // added to every events batch
	evStatus   int           // non-zero: answer events with this status

	mu        sync.Mutex
	recs      int
	inFlight  int
	maxFlight int
	shown     map[string][]string // request id → item ids returned
	batches   []int
	events    []event.Event
	badEvents []string
	imported  map[string]int // import path → lines stored
	rejectAt  int            // non-zero: reject this line of each import
}

func newFakeNode(w *World) *fakeNode {
	return &fakeNode{w: w, shown: map[string][]string{}, imported: map[string]int{}}
}

func (f *fakeNode) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	switch {
	case req.Method == http.MethodPost && req.URL.Path == "/v1/recommendations":
		f.recommend(rw, req)
	case req.Method == http.MethodPost && req.URL.Path == "/v1/events":
		f.ingest(rw, req)
	case req.Method == http.MethodPost && req.URL.Path == "/v1/users:import":
		importLines(f, rw, req, func(u *event.User) error { return u.Validate() })
	case req.Method == http.MethodPost && req.URL.Path == "/v1/items:import":
		importLines(f, rw, req, func(it *event.Item) error { return it.Validate() })
	default:
		http.NotFound(rw, req)
	}
}

func (f *fakeNode) recommend(rw http.ResponseWriter, req *http.Request) {
	dec := json.NewDecoder(req.Body)
	dec.DisallowUnknownFields()
	var in client.RecommendRequest
	if err := dec.Decode(&in); err != nil || in.UserID == "" || in.Count < 1 || in.Context.Channel == "" {
		http.Error(rw, fmt.Sprintf("bad request: %v", err), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.inFlight++
	f.maxFlight = max(f.maxFlight, f.inFlight)
	n := f.recs
	f.recs++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}()
	if f.recLatency > 0 {
		select {
		case <-time.After(f.recLatency):
		case <-req.Context().Done():
			return
		}
	}
	// Vary the answer size so impressions must follow what was returned.
	count := max(in.Count-n%3, 1)
	out := client.Recommendation{
		RequestID: fmt.Sprintf("req-%d", n),
		Variant:   []string{"ftrl", "popularity"}[n%2],
	}
	ids := make([]string, 0, count)
	for k := range count {
		id := ItemID((n*7 + k*13) % len(f.w.Items()))
		out.Items = append(out.Items, client.ScoredItem{ItemID: id, Score: 1 / float64(k+1), Reason: "model"})
		ids = append(ids, id)
	}
	if n%5 == 4 {
		out.Fallback = &client.Fallback{Reason: "low_confidence"}
	}
	f.mu.Lock()
	f.shown[out.RequestID] = ids
	f.mu.Unlock()
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(out)
}

func (f *fakeNode) ingest(rw http.ResponseWriter, req *http.Request) {
	dec := json.NewDecoder(req.Body)
	dec.DisallowUnknownFields()
	var evs []event.Event
	if err := dec.Decode(&evs); err != nil {
		http.Error(rw, fmt.Sprintf("bad request: %v", err), http.StatusBadRequest)
		return
	}
	if f.evLatency > 0 {
		select {
		case <-time.After(f.evLatency):
		case <-req.Context().Done():
			return
		}
	}
	if f.evStatus != 0 {
		http.Error(rw, "unavailable", f.evStatus)
		return
	}
	f.mu.Lock()
	f.batches = append(f.batches, len(evs))
	for i := range evs {
		if err := evs[i].Validate(); err != nil {
			f.badEvents = append(f.badEvents, err.Error())
		}
	}
	f.events = append(f.events, evs...)
	f.mu.Unlock()
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(client.EventsResult{Accepted: len(evs)})
}

func importLines[T any](f *fakeNode, rw http.ResponseWriter, req *http.Request, validate func(*T) error) {
	res := client.ImportResult{}
	sc := bufio.NewScanner(req.Body)
	for line := 1; sc.Scan(); line++ {
		var v T
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		err := dec.Decode(&v)
		if err == nil {
			err = validate(&v)
		}
		if err == nil && line == f.rejectAt {
			err = fmt.Errorf("rejected on purpose")
		}
		if err != nil {
			res.Rejected++
			res.Errors = append(res.Errors, client.LineError{Line: line, Error: err.Error()})
			continue
		}
		res.Imported++
	}
	if err := sc.Err(); err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.imported[req.URL.Path] += res.Imported
	f.mu.Unlock()
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(res)
}

// memTransport serves requests with a handler in memory, so the client
// can run inside a synctest bubble (a real socket would keep the bubble
// from ever being idle).
type memTransport struct{ h http.Handler }

func (m memTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	m.h.ServeHTTP(rec, req)
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	return rec.Result(), nil
}
