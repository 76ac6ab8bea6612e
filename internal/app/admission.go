package app

import (
	"net/http"
	"runtime"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/sightline/sightline/internal/api"
)

// AdmissionConfig is the admission control of the recommendation and event
// routes: how many requests of each kind a node handles at once, and how
// long a request past that may wait for a slot before it is refused with a
// 429 and Retry-After. The zero value of each field means its default.
type AdmissionConfig struct {
	// MaxInFlight bounds the recommendation requests handled at once
	// (default DefaultMaxInFlight: 8 per GOMAXPROCS; negative: no limit).
	MaxInFlight int
	// Wait is how long a recommendation request past the limit may wait
	// for a slot in a standing queue, one not empty for Interval (default
	// 5ms).
	Wait time.Duration
	// Interval is how long a burst may queue (default 100ms): a request
	// past the limit waits up to Interval for a slot unless the queue has
	// not been empty for that long (see [api.LimiterConfig]).
	Interval time.Duration
	// Target, if positive, makes the recommendation limit adaptive: it
	// shrinks (down to a quarter of MaxInFlight) while requests take
	// longer than Target and grows back while they do not. Zero keeps it
	// at MaxInFlight.
	Target time.Duration
	// MaxInFlightEvents bounds the POST /v1/events batches handled at
	// once (default DefaultMaxInFlightEvents: 4 per GOMAXPROCS; negative:
	// no limit).
	MaxInFlightEvents int
	// EventsWait is how long a batch past the limit may wait for a slot
	// (default 250ms: a batch is larger and less urgent than a
	// recommendation).
	EventsWait time.Duration
}

// DefaultMaxInFlight is AdmissionConfig.MaxInFlight's default: the
// recommendation path is CPU-bound on the embedded stores, so a few
// requests per processor keep every processor busy, and more would only
// queue inside the node.
func DefaultMaxInFlight() int { return 8 * runtime.GOMAXPROCS(0) }

// DefaultMaxInFlightEvents is AdmissionConfig.MaxInFlightEvents' default.
func DefaultMaxInFlightEvents() int { return 4 * runtime.GOMAXPROCS(0) }

// eventsQueuePerSlot is how many event batches may wait for each slot of
// the events limiter.
const eventsQueuePerSlot = 8

// DefaultEventsWait is AdmissionConfig.EventsWait's default.
const DefaultEventsWait = 250 * time.Millisecond

// admission builds the API's limiters from the node's config and wires
// refusals into traces.
func (n *Node) admission() (api.AdmissionConfig, error) {
	c := n.cfg.Admission
	out := api.AdmissionConfig{OnReject: newRejectionTracer(n.tracer).record}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight()
	}
	if c.MaxInFlightEvents == 0 {
		c.MaxInFlightEvents = DefaultMaxInFlightEvents()
	}
	if c.EventsWait <= 0 {
		c.EventsWait = DefaultEventsWait
	}
	var err error
	if c.MaxInFlight > 0 {
		if out.Recommend, err = api.NewLimiter(api.LimiterConfig{Max: c.MaxInFlight, Wait: c.Wait, Interval: c.Interval, Target: c.Target}); err != nil {
			return out, err
		}
	}
	if c.MaxInFlightEvents > 0 {
		// A batch may wait up to EventsWait, a long time at the rates
		// producers send: a queue of only MaxInFlightEvents would refuse the
		// bursts of a steady producer at once, though a slot frees within
		// the wait (at 200 batches/s, 8 in flight and 8 waiting refused a
		// batch in twenty). The queue stays bounded, and the requests in it
		// hold no body yet: admission comes before the body is read.
		if out.Events, err = api.NewLimiter(api.LimiterConfig{Max: c.MaxInFlightEvents, Queue: eventsQueuePerSlot * c.MaxInFlightEvents, Wait: c.EventsWait}); err != nil {
			return out, err
		}
	}
	return out, nil
}

// rejectionTracer records a refused request in its trace: an "Admission"
// span with an error status under the request's server span, which makes
// tail retention keep the trace (reason error). Under overload refusals
// come by the thousand a second, so at most rejectionTraces a second are
// recorded; sightline_http_admission_rejected_total counts them all.
type rejectionTracer struct {
	tracer trace.Tracer

	mu     sync.Mutex
	second int64 // the Unix second counted
	n      int   // recorded in that second
}

// rejectionTraces is how many refused requests a second are traced.
const rejectionTraces = 10

func newRejectionTracer(t trace.Tracer) *rejectionTracer { return &rejectionTracer{tracer: t} }

// record is api.AdmissionConfig.OnReject.
func (rt *rejectionTracer) record(r *http.Request, reason string) {
	now := time.Now().Unix()
	rt.mu.Lock()
	if now != rt.second {
		rt.second, rt.n = now, 0
	}
	ok := rt.n < rejectionTraces
	rt.n++
	rt.mu.Unlock()
	if !ok {
		return
	}
	// The server span above it records the route and the 429.
	_, span := rt.tracer.Start(r.Context(), "Admission", trace.WithAttributes(
		attribute.String("sightline.admission.reason", reason)))
	span.SetStatus(codes.Error, "refused by admission control: "+reason)
	span.End()
}
