package rollout

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// memStore is a Store in memory, holding the encoded state as a cluster's
// registry does; failing makes every save fail.
type memStore struct {
	mu      sync.Mutex
	doc     []byte
	saves   int
	failing error
}

func (m *memStore) LoadState(context.Context) (State, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.doc == nil {
		return State{}, false, nil
	}
	st, err := DecodeState(m.doc)
	return st, err == nil, err
}

func (m *memStore) SaveState(_ context.Context, st State) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failing != nil {
		return m.failing
	}
	b, err := EncodeState(st)
	if err != nil {
		return err
	}
	m.doc, m.saves = b, m.saves+1
	return nil
}

// A controller on a Store resumes from it as from the state file: the
// trainer that takes over a cluster's rollout builds a new controller on
// the registry's state, on the same metrics registry once the old one
// unregistered its metrics.
func TestStoreResumes(t *testing.T) {
	reg := prometheus.NewRegistry()
	clk := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	store := &memStore{}
	tg := &fakeTarget{}
	c := newController(t, tg, clk, Config{Store: store, Registerer: reg, StatePath: "/nonexistent/ignored.json"})
	start(t, c)
	w := newWorld(4, 0.05, 0.05)
	w.run(t, c, clk, tg, 12)
	before := c.State()
	if before.Stage != Canary || before.Share != 0.25 || store.saves == 0 {
		t.Fatalf("before the takeover: %s at %v, %d saves", before.Stage, before.Share, store.saves)
	}
	if _, err := New(t.Context(), &fakeTarget{}, Config{Store: &memStore{}, Registerer: reg}); err == nil {
		t.Fatal("a second controller registered its metrics beside the first's")
	}
	c.Unregister()
	tg2 := &fakeTarget{}
	c2 := newController(t, tg2, clk, Config{Store: store, Registerer: reg})
	if after := c2.State(); after.Stage != Canary || after.Share != 0.25 || after.Step != 1 || !c2.Live() {
		t.Fatalf("after the takeover: %s at %v step %d (live %v)", after.Stage, after.Share, after.Step, c2.Live())
	}
	if !slices.Equal(tg2.routes, []float64{0.25}) {
		t.Errorf("the new controller routed %v, want the challenger at 25%%", tg2.routes)
	}
	// A store that refuses writes (a lost lease) is counted, and the
	// controller goes on in memory.
	store.mu.Lock()
	store.failing = errors.New("lease lost")
	store.mu.Unlock()
	clk.advance(time.Minute)
	c2.Check(t.Context())
	if got := value(t, c2.met.persistErrors); got == 0 {
		t.Error("a refused state write was not counted")
	}
	if _, err := DecodeState([]byte(`{"version": 1, "state": {"stage": "canary", "steps": [], "step": 0}}`)); err == nil {
		t.Error("DecodeState accepted an active state without a plan")
	}
}
