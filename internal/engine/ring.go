package engine

import (
	"sync"

	"github.com/sightline/sightline/internal/model"
)

// ring keeps the most recent decisions, with the model context of each, for
// lookup by request id. It is bounded: the oldest record is overwritten.
type ring struct {
	mu   sync.Mutex
	buf  []ringSlot
	next int
	byID map[string]int
}

type ringSlot struct {
	d *Decision
	x *model.Context
}

func newRing(n int) *ring {
	return &ring{buf: make([]ringSlot, n), byID: make(map[string]int, n)}
}

func (r *ring) put(d *Decision, x *model.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.buf[r.next].d; old != nil {
		if i, ok := r.byID[old.RequestID]; ok && i == r.next {
			delete(r.byID, old.RequestID)
		}
	}
	r.buf[r.next] = ringSlot{d: d, x: x}
	r.byID[d.RequestID] = r.next
	r.next = (r.next + 1) % len(r.buf)
}

func (r *ring) get(id string) (*Decision, *model.Context, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, ok := r.byID[id]
	if !ok {
		return nil, nil, false
	}
	s := r.buf[i]
	return s.d, s.x, true
}

// recent calls fn with up to n most recent decisions, newest first.
func (r *ring) recent(n int, fn func(*Decision) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := 1; k <= len(r.buf) && k <= n; k++ {
		s := r.buf[(r.next-k+len(r.buf))%len(r.buf)]
		if s.d == nil || !fn(s.d) {
			return
		}
	}
}
