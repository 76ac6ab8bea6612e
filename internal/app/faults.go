package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/features"
	"github.com/sightline/sightline/internal/model"
)

// The injectable faults, for drills and game days.
const (
	FaultETLNullAge       = "etl-null-age"
	FaultSlowFeatureStore = "slow-feature-store"
	FaultModelErrors      = "model-errors"
	FaultPopularityShift  = "popularity-shift"
	FaultTelemetryOutage  = "telemetry-outage"
)

// FaultInfo describes one fault and its state.
type FaultInfo struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Active      bool      `json:"active"`
	Since       time.Time `json:"since,omitzero"`
}

var faultDescriptions = map[string]string{
	FaultETLNullAge:       "the ETL stops populating user_age_bucket for users in segment new (the talk's incident)",
	FaultSlowFeatureStore: "a third of feature-store reads take longer than the feature budget",
	FaultModelErrors:      "a third of model inferences fail",
	FaultPopularityShift:  "users' true affinities change (concept drift); the traffic generator applies it",
	FaultTelemetryOutage:  "the trace exporter cannot reach its collector: kept spans are dropped",
}

// Faults names every injectable fault, in a fixed order.
var Faults = []string{FaultETLNullAge, FaultSlowFeatureStore, FaultModelErrors, FaultPopularityShift, FaultTelemetryOutage}

// ErrUnknownFault reports a fault name outside Faults.
var ErrUnknownFault = errors.New("unknown fault")

// faultSet holds which faults are on. Checks on the hot path are one atomic
// load each.
type faultSet struct {
	mu     sync.Mutex
	since  map[string]time.Time
	on     map[string]*atomic.Bool
	notify func(name string, active bool)
	n      atomic.Uint64 // call counter for deterministic shares
}

func newFaultSet(notify func(string, bool)) *faultSet {
	f := &faultSet{since: map[string]time.Time{}, on: map[string]*atomic.Bool{}, notify: notify}
	for _, name := range Faults {
		f.on[name] = new(atomic.Bool)
	}
	return f
}

func (f *faultSet) active(name string) bool { return f.on[name].Load() }

// share reports true for about one call in every k, deterministically.
func (f *faultSet) share(k uint64) bool { return f.n.Add(1)%k == 0 }

// SetFault switches a fault on or off at now.
func (n *Node) SetFault(name string, active bool) error {
	f := n.faults
	b, ok := f.on[name]
	if !ok {
		return fmt.Errorf("%w %q: want one of %v", ErrUnknownFault, name, Faults)
	}
	f.mu.Lock()
	if active {
		f.since[name] = n.cfg.Now()
	} else {
		delete(f.since, name)
	}
	b.Store(active)
	f.mu.Unlock()
	n.logger.Warn("fault switched", slog.String("fault", name), slog.Bool("active", active))
	if f.notify != nil {
		f.notify(name, active)
	}
	return nil
}

// FaultStates lists every fault with its state.
func (n *Node) FaultStates() []FaultInfo {
	f := n.faults
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]FaultInfo, 0, len(Faults))
	for _, name := range Faults {
		out = append(out, FaultInfo{Name: name, Description: faultDescriptions[name], Active: f.on[name].Load(), Since: f.since[name]})
	}
	return out
}

func (n *Node) adminFaults(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name   string `json:"name"`
		Active bool   `json:"active"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeProblem(w, r, http.StatusBadRequest, "bad-request", `body must be {"name": "<fault>", "active": true|false}: `+err.Error())
		return
	}
	if err := n.SetFault(req.Name, req.Active); err != nil {
		writeProblem(w, r, http.StatusBadRequest, "unknown-fault", err.Error())
		return
	}
	writeJSON(w, map[string]any{"faults": n.FaultStates()})
}

func (n *Node) listFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, map[string]any{"faults": n.FaultStates()})
}

// faultyStore is the feature source the engine reads, with the feature
// faults applied.
type faultyStore struct {
	store  featureStore
	faults *faultSet
	budget time.Duration
}

func (s faultyStore) User(ctx context.Context, id string) (event.User, bool, error) {
	if err := s.slow(ctx); err != nil {
		return event.User{}, false, err
	}
	u, ok, err := s.store.User(ctx, id)
	return s.etlNull(u, ok), ok, err
}

// slow applies the slow-feature-store fault: a third of the calls wait just
// past the feature budget.
func (s faultyStore) slow(ctx context.Context) error {
	if s.faults.active(FaultSlowFeatureStore) && s.faults.share(3) {
		t := time.NewTimer(s.budget + s.budget/4) // just past the deadline
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// etlNull applies the etl-null-age fault to a profile.
func (s faultyStore) etlNull(u event.User, known bool) event.User {
	if known && s.faults.active(FaultETLNullAge) && u.Segment == "new" {
		u.AgeBucket = "" // what the broken ETL wrote for new users
	}
	return u
}

func (s faultyStore) Activity(ctx context.Context, id string) (features.Activity, error) {
	return s.store.Activity(ctx, id)
}

// Features is User and Activity in one call, one round trip when the store
// can ([engine.CombinedSource], as Redis does).
func (s faultyStore) Features(ctx context.Context, id string) (event.User, bool, features.Activity, error) {
	c, ok := s.store.(engine.CombinedSource)
	if !ok {
		u, known, err := s.User(ctx, id)
		if err != nil {
			return u, known, features.Activity{}, err
		}
		act, err := s.store.Activity(ctx, id)
		return u, known, act, err
	}
	if err := s.slow(ctx); err != nil {
		return event.User{}, false, features.Activity{}, err
	}
	u, known, act, err := c.Features(ctx, id)
	return s.etlNull(u, known), known, act, err
}

// faultyScorer is the FTRL scorer with the model fault applied.
type faultyScorer struct {
	*engine.ModelScorer
	faults *faultSet
}

var errInjected = errors.New("injected fault: inference failed")

func (s faultyScorer) Score(ctx context.Context, x *model.Context, items []event.Item, out []float64) error {
	if s.faults.active(FaultModelErrors) && s.faults.share(3) {
		return errInjected
	}
	return s.ModelScorer.Score(ctx, x, items, out)
}

// ScoreLogits is Score for logits (engine.LogitScorer), with the same fault.
func (s faultyScorer) ScoreLogits(ctx context.Context, x *model.Context, items []event.Item, out []float64) error {
	if s.faults.active(FaultModelErrors) && s.faults.share(3) {
		return errInjected
	}
	return s.ModelScorer.ScoreLogits(ctx, x, items, out)
}
