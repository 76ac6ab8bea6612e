package app

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/api"
	"github.com/sightline/sightline/internal/api/apitest"
	"github.com/sightline/sightline/internal/faults"
	"github.com/sightline/sightline/internal/loadtest"
	"github.com/sightline/sightline/internal/telemetry"
)

// TestOverloadOverLoopback drives a real node over loopback past its
// admission limit with the open-loop load generator: requests past it are
// answered 429 with Retry-After (checked against openapi.json), counted,
// and kept in a trace; when the load drops the node serves everything at
// once.
func TestOverloadOverLoopback(t *testing.T) {
	n := startNode(t, Config{AlertInterval: -1, FeatureBudget: 40 * time.Millisecond,
		Admission: AdmissionConfig{MaxInFlight: 2, Wait: 20 * time.Millisecond}})
	if err := smallWorld().Load(t.Context(), n.c); err != nil {
		t.Fatal(err)
	}
	// A third of the requests now hold their slot for the feature budget:
	// the node serves about 2 / 13ms ≈ 150 a second.
	if err := n.SetFault(faults.SlowFeatureStore, true); err != nil {
		t.Fatal(err)
	}
	tgt, err := loadtest.NewHTTP(n.base+"/v1/recommendations", loadtest.HTTPConfig{Body: loadtest.RecommendBody(2000, 5)})
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	over, err := loadtest.Run(t.Context(), tgt, loadtest.Config{Rate: 400, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("overload: %d sent, %d ok, %d refused (p99 %.1fms), errors %v", over.Sent, over.OK, over.Rejected, over.RejectedLatency.P99, over.ErrorsByKind)
	if over.Rejected < over.Sent/4 || over.OK == 0 {
		t.Errorf("at 400/s past a limit of 2: %d ok, %d refused of %d; want both, and many refused", over.OK, over.Rejected, over.Sent)
	}
	if over.RejectedWithoutRetryAfter != 0 || over.Errors != over.Rejected {
		t.Errorf("%d refusals without Retry-After, errors %v; want every failure a 429 with Retry-After", over.RejectedWithoutRetryAfter, over.ErrorsByKind)
	}
	var counted float64
	for _, reason := range []string{"queue_full", "queue_timeout", "canceled"} {
		counted += counter(t, n.Node, "sightline_http_admission_rejected_total", map[string]string{"route": "POST /v1/recommendations", "reason": reason})
	}
	if counted != float64(over.Rejected) {
		t.Errorf("sightline_http_admission_rejected_total = %v, want the %d refusals", counted, over.Rejected)
	}
	if got := counter(t, n.Node, "sightline_http_requests_total", map[string]string{"route": "POST /v1/recommendations", "code": "4xx"}); got != float64(over.Rejected) {
		t.Errorf("sightline_http_requests_total{4xx} = %v, want the %d refusals", got, over.Rejected)
	}
	// A refusal, as the API document describes it (validating every
	// answer of the run would load the machine more than the node).
	checked := contractHTTP(t, apitest.Responses)
	var wg sync.WaitGroup
	var refused atomic.Int32
	for range 20 {
		wg.Go(func() {
			if st, _ := call(t, checked, "POST", n.base+"/v1/recommendations", `{"user_id":"u1"}`); st == 429 {
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	if refused.Load() == 0 {
		t.Errorf("no 429 among 20 requests at once past a limit of 2")
	}
	if !admissionTraceKept(n.Telemetry()) {
		t.Errorf("no kept trace of POST /v1/recommendations holds an Admission span with an error status and its reason")
	}

	// The load drops: everything is served, from the first second.
	if err := n.SetFault(faults.SlowFeatureStore, false); err != nil {
		t.Fatal(err)
	}
	after, err := loadtest.Run(t.Context(), tgt, loadtest.Config{Rate: 20, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if after.OK != after.Sent || after.Rejected != 0 {
		t.Errorf("after the overload: %d of %d ok, %d refused, errors %v; want all served", after.OK, after.Sent, after.Rejected, after.ErrorsByKind)
	}
}

// admissionTraceKept reports whether the flight recorder holds a
// recommendation trace with an Admission span marked as an error.
func admissionTraceKept(tel *telemetry.Telemetry) bool {
	for _, s := range tel.Flight().Query(telemetry.Filter{Error: true, Route: "/v1/recommendations", Limit: 1000}) {
		tr, ok := tel.Flight().Trace(s.TraceID)
		if !ok {
			continue
		}
		for _, sp := range tr.Spans {
			if sp.Name == "Admission" && sp.Status.Code == "error" && sp.Attributes["sightline.admission.reason"] != nil {
				return true
			}
		}
	}
	return false
}

// TestEventsAdmissionQueue: event batches past the limit wait in a queue
// of eventsQueuePerSlot per slot (a steady producer's bursts wait for a
// slot instead of being refused at once), and the one past that queue is
// refused at once: the queue stays bounded.
func TestEventsAdmissionQueue(t *testing.T) {
	n := &Node{cfg: Config{Admission: AdmissionConfig{MaxInFlightEvents: 2, EventsWait: time.Minute}}}
	ad, err := n.admission()
	if err != nil {
		t.Fatal(err)
	}
	l := ad.Events
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var tickets []api.Ticket
	for range 2 {
		tk, err := l.Acquire(ctx)
		if err != nil {
			t.Fatalf("Acquire() within the limit error = %v", err)
		}
		tickets = append(tickets, tk)
	}
	const queue = 2 * eventsQueuePerSlot
	var wg sync.WaitGroup
	var admitted atomic.Int64
	for range queue {
		wg.Go(func() {
			if tk, err := l.Acquire(ctx); err == nil {
				admitted.Add(1)
				l.Release(tk)
			}
		})
	}
	for deadline := time.Now().Add(5 * time.Second); l.State().Queued < queue; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			cancel()
			wg.Wait()
			t.Fatalf("%d batches past the limit are waiting, want %d", l.State().Queued, queue)
		}
	}
	start := time.Now()
	if _, err := l.Acquire(ctx); !errors.Is(err, api.ErrQueueFull) {
		t.Errorf("Acquire() with %d batches waiting error = %v, want %v", queue, err, api.ErrQueueFull)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("the refusal past the queue took %v, want at once", el)
	}
	for _, tk := range tickets {
		l.Release(tk)
	}
	wg.Wait()
	if got := admitted.Load(); got != queue {
		t.Errorf("%d of the %d waiting batches were admitted when slots freed, want all", got, queue)
	}
}
