package api

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"
)

// Admission errors: why [Limiter.Acquire] refused a request. They are the
// values of the reason label of sightline_http_admission_rejected_total
// (see [RejectReason]).
var (
	// ErrQueueFull is a request that found the limit reached and the queue
	// full.
	ErrQueueFull = errors.New("admission: at the concurrency limit and the queue is full")
	// ErrQueueTimeout is a request that waited its limiter's Wait without
	// getting a slot.
	ErrQueueTimeout = errors.New("admission: no slot within the queue wait")
)

// RejectReason returns the metric label of an error of [Limiter.Acquire]:
// queue_full, queue_timeout or canceled (the client went away while
// queued).
func RejectReason(err error) string {
	switch {
	case errors.Is(err, ErrQueueFull):
		return "queue_full"
	case errors.Is(err, ErrQueueTimeout):
		return "queue_timeout"
	}
	return "canceled"
}

// LimiterConfig configures a [Limiter]. The zero value of each optional
// field means its default.
type LimiterConfig struct {
	// Max is the most requests handled at once, the ceiling of an adaptive
	// limit. Required: at least 1.
	Max int
	// Queue is how many more may wait for a slot (default 4 × Max;
	// negative: none wait, a request beyond the limit is refused at once).
	Queue int
	// Wait bounds a request's time in a standing queue: one that has not
	// been empty for Interval, the sign of arrivals past capacity (default
	// 5ms).
	Wait time.Duration
	// Interval tells a burst from overload (default 100ms), as CoDel does:
	// while the queue has been empty within the last Interval, a queued
	// request may wait up to Interval for a slot, so that a burst or a
	// short stall of the node drains instead of being refused; once the
	// queue has stayed non-empty for Interval, queued requests wait at
	// most Wait.
	Interval time.Duration
	// Target, if positive, makes the limit adaptive (AIMD on latency): a
	// request held longer than Target (from its admission to its release)
	// cuts the limit by a tenth, at most once per round of limit
	// completions; a round of faster ones, while at least half the limit
	// is in use, raises it by one, up to Max. Zero keeps the limit at Max.
	Target time.Duration
	// Min is the floor of an adaptive limit (default Max/4, at least 1).
	Min int
}

// DefaultAdmissionWait is LimiterConfig.Wait's default.
const DefaultAdmissionWait = 5 * time.Millisecond

// DefaultAdmissionInterval is LimiterConfig.Interval's default.
const DefaultAdmissionInterval = 100 * time.Millisecond

// Limiter is admission control for a class of requests: it bounds those
// handled at once and lets a few more wait briefly, in arrival order, for
// a slot; the rest are refused at once, so that a node past its capacity
// answers what it admits in time and tells the others to come back
// (Retry-After) instead of queueing them all. It is safe for concurrent
// use.
type Limiter struct {
	cfg LimiterConfig

	mu       sync.Mutex
	inflight int
	limit    float64
	queued   int       // waiting, excluding abandoned waiters
	queue    []*waiter // FIFO; may hold abandoned waiters
	// busySince is when the queue last became non-empty; zero while it
	// is empty.
	busySince time.Time
	// completions since the limit last went down.
	sinceCut int
}

type waiter struct {
	ready   chan struct{}
	granted bool // set under mu when a release hands over its slot
	gone    bool // set under mu when the waiter gave up
}

// Ticket is an admitted request's hold on a slot; give it back with
// [Limiter.Release].
type Ticket struct{ start time.Time }

// NewLimiter returns a limiter for cfg.
func NewLimiter(cfg LimiterConfig) (*Limiter, error) {
	if cfg.Max < 1 {
		return nil, errors.New("admission: Max must be at least 1")
	}
	if cfg.Queue == 0 {
		cfg.Queue = 4 * cfg.Max
	}
	if cfg.Queue < 0 {
		cfg.Queue = 0
	}
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultAdmissionWait
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultAdmissionInterval
	}
	if cfg.Min <= 0 {
		cfg.Min = max(1, cfg.Max/4)
	}
	cfg.Min = min(cfg.Min, cfg.Max)
	return &Limiter{cfg: cfg, limit: float64(cfg.Max)}, nil
}

// Acquire admits the caller or refuses it with [ErrQueueFull],
// [ErrQueueTimeout] or ctx's error. A queued caller waits at most Wait in
// a standing queue and at most the larger of Wait and Interval in a burst
// (see [LimiterConfig]). An admitted caller must call Release with the
// ticket when done.
func (l *Limiter) Acquire(ctx context.Context) (Ticket, error) {
	l.mu.Lock()
	if l.inflight < int(l.limit) && l.queued == 0 {
		l.inflight++
		l.mu.Unlock()
		return l.ticket(), nil
	}
	if l.queued >= l.cfg.Queue {
		l.mu.Unlock()
		return Ticket{}, ErrQueueFull
	}
	w := &waiter{ready: make(chan struct{})}
	l.compact()
	l.queue = append(l.queue, w)
	start := time.Now()
	if l.queued == 0 {
		l.busySince = start
	}
	l.queued++
	l.mu.Unlock()

	t := time.NewTimer(l.cfg.Wait)
	defer t.Stop()
	var err error
wait:
	for {
		select {
		case <-w.ready:
			return l.ticket(), nil
		case <-t.C:
			if d := l.waitMore(start); d > 0 {
				t.Reset(d)
				continue
			}
			err = ErrQueueTimeout
			break wait
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		}
	}
	l.mu.Lock()
	if w.granted { // handed a slot as the wait ended: take it
		l.mu.Unlock()
		return l.ticket(), nil
	}
	w.gone = true
	l.dequeued()
	l.mu.Unlock()
	return Ticket{}, err
}

// waitMore returns how much longer a request queued at start, having
// waited at least Wait, may wait: none in a standing queue or past
// Interval; in a burst, until the queue would be standing or Interval
// has passed.
func (l *Limiter) waitMore(start time.Time) time.Duration {
	now := time.Now()
	l.mu.Lock()
	standing := l.busySince.Add(l.cfg.Interval)
	l.mu.Unlock()
	return min(standing.Sub(now), start.Add(l.cfg.Interval).Sub(now))
}

// dequeued counts a waiter out of the queue. l.mu is held.
func (l *Limiter) dequeued() {
	l.queued--
	if l.queued == 0 {
		l.busySince = time.Time{}
	}
}

// ticket starts the clock of an admitted request; only an adaptive limit
// reads it.
func (l *Limiter) ticket() Ticket {
	if l.cfg.Target > 0 {
		return Ticket{start: time.Now()}
	}
	return Ticket{}
}

// compact drops abandoned waiters once they outnumber the live ones, so
// the queue stays bounded when no slot frees for a while. l.mu is held.
func (l *Limiter) compact() {
	if len(l.queue) < 2*l.cfg.Queue+8 {
		return
	}
	live := l.queue[:0]
	for _, w := range l.queue {
		if !w.gone {
			live = append(live, w)
		}
	}
	clear(l.queue[len(live):])
	l.queue = live
}

// Release gives back the slot of t: to the longest waiting request, or to
// the pool. With an adaptive limit it feeds the time t was held to the
// limit.
func (l *Limiter) Release(t Ticket) {
	var held time.Duration
	if l.cfg.Target > 0 {
		held = time.Since(t.start)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.Target > 0 {
		l.adapt(held)
	}
	for len(l.queue) > 0 && l.inflight <= int(l.limit) {
		w := l.queue[0]
		l.queue[0] = nil
		l.queue = l.queue[1:]
		if w.gone {
			continue
		}
		w.granted = true
		l.dequeued()
		close(w.ready)
		return // the slot passes to w: inflight is unchanged
	}
	l.inflight--
}

// adapt moves the limit after a request held its slot for held. l.mu is
// held.
func (l *Limiter) adapt(held time.Duration) {
	l.sinceCut++
	lim := int(l.limit)
	if held > l.cfg.Target {
		if l.sinceCut >= lim {
			l.limit = math.Max(float64(l.cfg.Min), l.limit*0.9)
			l.sinceCut = 0
		}
		return
	}
	if 2*l.inflight >= lim {
		l.limit = math.Min(float64(l.cfg.Max), l.limit+1/l.limit)
	}
}

// LimiterState is a limiter's figures at one moment.
type LimiterState struct {
	// InFlight counts the requests admitted and not yet released.
	InFlight int
	// Queued counts the requests waiting for a slot.
	Queued int
	// Limit is the current limit (Max unless adaptive).
	Limit int
}

// State returns the limiter's figures now.
func (l *Limiter) State() LimiterState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return LimiterState{InFlight: l.inflight, Queued: l.queued, Limit: int(l.limit)}
}
