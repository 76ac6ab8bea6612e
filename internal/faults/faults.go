// Package faults injects the failures of drills and game days into a
// running node: a feature source that returns what a broken ETL wrote or
// answers past its budget, a scorer that fails, and the switches that turn
// each on. Checks on the serving path are one atomic load each.
package faults

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/features"
	"github.com/sightline/sightline/internal/model"
)

// The injectable faults.
const (
	ETLNullAge       = "etl-null-age"
	SlowFeatureStore = "slow-feature-store"
	ModelErrors      = "model-errors"
	PopularityShift  = "popularity-shift"
	TelemetryOutage  = "telemetry-outage"
)

// Names names every injectable fault, in a fixed order.
var Names = []string{ETLNullAge, SlowFeatureStore, ModelErrors, PopularityShift, TelemetryOutage}

var descriptions = map[string]string{
	ETLNullAge:       "the ETL stops populating user_age_bucket for users in segment new (the talk's incident)",
	SlowFeatureStore: "a third of feature-store reads take longer than the feature budget",
	ModelErrors:      "a third of model inferences fail",
	PopularityShift:  "users' true affinities change (concept drift); the traffic generator applies it",
	TelemetryOutage:  "the trace exporter cannot reach its collector: kept spans are dropped",
}

// ErrUnknown reports a fault name outside Names.
var ErrUnknown = errors.New("unknown fault")

// Info describes one fault and its state.
type Info struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Active      bool      `json:"active"`
	Since       time.Time `json:"since,omitzero"`
}

// Set holds which faults are on. It is safe for concurrent use.
type Set struct {
	now    func() time.Time
	notify func(name string, active bool)
	on     map[string]*atomic.Bool
	n      atomic.Uint64 // call counter for deterministic shares

	mu    sync.Mutex
	since map[string]time.Time
}

// NewSet returns a set with every fault off. notify, if not nil, is called
// after each switch; now stamps them (time.Now when nil).
func NewSet(now func() time.Time, notify func(name string, active bool)) *Set {
	if now == nil {
		now = time.Now
	}
	s := &Set{now: now, notify: notify, on: map[string]*atomic.Bool{}, since: map[string]time.Time{}}
	for _, name := range Names {
		s.on[name] = new(atomic.Bool)
	}
	return s
}

// Active reports whether the fault name is on.
func (s *Set) Active(name string) bool {
	b := s.on[name]
	return b != nil && b.Load()
}

// share reports true for about one call in every k, deterministically.
func (s *Set) share(k uint64) bool { return s.n.Add(1)%k == 0 }

// Switch turns the fault name on or off.
func (s *Set) Switch(name string, active bool) error {
	b, ok := s.on[name]
	if !ok {
		return fmt.Errorf("%w %q: want one of %v", ErrUnknown, name, Names)
	}
	s.mu.Lock()
	if active {
		s.since[name] = s.now()
	} else {
		delete(s.since, name)
	}
	b.Store(active)
	s.mu.Unlock()
	if s.notify != nil {
		s.notify(name, active)
	}
	return nil
}

// States lists every fault with its state, in the order of Names.
func (s *Set) States() []Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Info, 0, len(Names))
	for _, name := range Names {
		out = append(out, Info{Name: name, Description: descriptions[name], Active: s.on[name].Load(), Since: s.since[name]})
	}
	return out
}

// Source is the feature source the engine reads.
type Source interface {
	User(ctx context.Context, id string) (event.User, bool, error)
	Activity(ctx context.Context, userID string) (features.Activity, error)
}

// Store is a feature source with the feature faults applied: the ETL's
// null age bucket for new users, and reads slower than Budget.
type Store struct {
	Source Source
	Faults *Set
	// Budget is the engine's feature budget: a slow read waits just past it.
	Budget time.Duration
}

var (
	_ engine.CombinedSource = Store{}
	_ engine.UsersReader    = Store{}
	_ engine.Immediate      = Store{}
)

// User implements the engine's feature source.
func (s Store) User(ctx context.Context, id string) (event.User, bool, error) {
	if err := s.slow(ctx); err != nil {
		return event.User{}, false, err
	}
	u, ok, err := s.Source.User(ctx, id)
	return s.etlNull(u, ok), ok, err
}

// Immediate reports whether reads never wait: not while the
// slow-feature-store fault is on, else as the source says
// ([engine.Immediate]).
func (s Store) Immediate() bool {
	im, ok := s.Source.(engine.Immediate)
	return ok && im.Immediate() && !s.Faults.Active(SlowFeatureStore)
}

// slow applies the slow-feature-store fault: a third of the calls wait just
// past the feature budget.
func (s Store) slow(ctx context.Context) error {
	if s.Faults.Active(SlowFeatureStore) && s.Faults.share(3) {
		t := time.NewTimer(s.Budget + s.Budget/4) // just past the deadline
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
			// Woken late (a loaded machine), both may be ready and select
			// picks at random; and the context's own timer may not have
			// canceled it yet. A read that ends past the deadline is late.
			if err := ctx.Err(); err != nil {
				return err
			}
			if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
				return context.DeadlineExceeded
			}
			return nil
		}
	}
	return nil
}

// etlNull applies the etl-null-age fault to a profile.
func (s Store) etlNull(u event.User, known bool) event.User {
	if known && s.Faults.Active(ETLNullAge) && u.Segment == "new" {
		u.AgeBucket = "" // what the broken ETL wrote for new users
	}
	return u
}

// Activity implements the engine's feature source.
func (s Store) Activity(ctx context.Context, id string) (features.Activity, error) {
	return s.Source.Activity(ctx, id)
}

// Features is User and Activity in one call, one round trip when the
// source can ([engine.CombinedSource], as Redis does).
func (s Store) Features(ctx context.Context, id string) (event.User, bool, features.Activity, error) {
	c, ok := s.Source.(engine.CombinedSource)
	if !ok {
		u, known, err := s.User(ctx, id)
		if err != nil {
			return u, known, features.Activity{}, err
		}
		act, err := s.Source.Activity(ctx, id)
		return u, known, act, err
	}
	if err := s.slow(ctx); err != nil {
		return event.User{}, false, features.Activity{}, err
	}
	u, known, act, err := c.Features(ctx, id)
	return s.etlNull(u, known), known, act, err
}

// ReadUsers is Features for many users, in one round trip when the source
// can ([engine.UsersReader], as Redis does), with the ETL fault applied.
// The slow-store fault does not apply: it delays requests, and this serves
// the candidate index's event path.
func (s Store) ReadUsers(ctx context.Context, ids []string) (map[string]features.UserState, error) {
	var out map[string]features.UserState
	if r, ok := s.Source.(engine.UsersReader); ok {
		var err error
		if out, err = r.ReadUsers(ctx, ids); err != nil {
			return nil, err
		}
	} else {
		out = make(map[string]features.UserState, len(ids))
		for _, id := range ids {
			u, known, err := s.Source.User(ctx, id)
			if err != nil {
				return nil, err
			}
			act, err := s.Source.Activity(ctx, id)
			if err != nil {
				return nil, err
			}
			out[id] = features.UserState{User: u, Known: known, Activity: act}
		}
	}
	for id, st := range out {
		st.User = s.etlNull(st.User, st.Known)
		out[id] = st
	}
	return out, nil
}

// ErrInjected is the error of an inference the model-errors fault failed.
var ErrInjected = errors.New("injected fault: inference failed")

// Scorer is the FTRL scorer with the model-errors fault applied.
type Scorer struct {
	*engine.ModelScorer
	Faults *Set
}

// Score implements engine.Scorer.
func (s Scorer) Score(ctx context.Context, x *model.Context, items []event.Item, out []float64) error {
	if s.Faults.Active(ModelErrors) && s.Faults.share(3) {
		return ErrInjected
	}
	return s.ModelScorer.Score(ctx, x, items, out)
}

// ScoreLogits is Score for logits (engine.LogitScorer), with the same fault.
func (s Scorer) ScoreLogits(ctx context.Context, x *model.Context, items []event.Item, out []float64) error {
	if s.Faults.Active(ModelErrors) && s.Faults.share(3) {
		return ErrInjected
	}
	return s.ModelScorer.ScoreLogits(ctx, x, items, out)
}
