package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// AdmissionConfig is the admission control of the routes that do work per
// request. A nil limiter leaves its routes unlimited.
type AdmissionConfig struct {
	// Recommend limits POST /v1/recommendations and
	// GET /v1/users/{user_id}/recommendations together.
	Recommend *Limiter
	// Events limits POST /v1/events: with the event bus's own bounded
	// queue, it is what pushes back on producers faster than the bus.
	Events *Limiter
	// RetryAfter is the Retry-After of a refused request, rounded up to
	// whole seconds (default 1s).
	RetryAfter time.Duration
	// OnReject, if set, is called with each refused request, after its 429
	// is written, and the reason label; the application records it in a
	// trace. It is called concurrently and must not block.
	OnReject func(r *http.Request, reason string)
}

// admission classes, the routes sharing a limiter.
type admitClass uint8

const (
	admitNone admitClass = iota
	admitRecommend
	admitEvents
)

func (c admitClass) String() string {
	switch c {
	case admitRecommend:
		return "recommend"
	case admitEvents:
		return "events"
	}
	return ""
}

// admitter refuses requests past a limiter with 429 problems and counts
// them.
type admitter struct {
	cfg        AdmissionConfig
	retryAfter string
	rejected   *prometheus.CounterVec
}

func newAdmitter(cfg AdmissionConfig) *admitter {
	secs := int64((max(cfg.RetryAfter, 0) + time.Second - 1) / time.Second)
	return &admitter{cfg: cfg, retryAfter: strconv.FormatInt(max(secs, 1), 10),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_http_admission_rejected_total",
			Help: "Requests refused by admission control with a 429, by route pattern and reason: queue_full (at the limit with the queue full), queue_timeout (no slot within the queue wait), canceled (the client left while queued).",
		}, []string{"route", "reason"})}
}

func (a *admitter) limiter(c admitClass) *Limiter {
	switch c {
	case admitRecommend:
		return a.cfg.Recommend
	case admitEvents:
		return a.cfg.Events
	}
	return nil
}

// wrap puts h, the handler of pattern, behind the limiter of class c.
func (a *admitter) wrap(pattern string, c admitClass, h http.Handler) http.Handler {
	l := a.limiter(c)
	if l == nil {
		return h
	}
	detail := "the node is at its limit of concurrent " + c.String() + " requests; retry after " + a.retryAfter + "s with jitter (the Go client does)"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, err := l.Acquire(r.Context())
		if err != nil {
			reason := RejectReason(err)
			a.rejected.WithLabelValues(pattern, reason).Inc()
			w.Header()["Retry-After"] = []string{a.retryAfter}
			writeProblem(w, r, &problem{status: http.StatusTooManyRequests, slug: slugOverloaded, detail: detail})
			if a.cfg.OnReject != nil {
				a.cfg.OnReject(r, reason)
			}
			return
		}
		defer l.Release(t)
		h.ServeHTTP(w, r)
	})
}

// collectors are the admitter's metrics: rejections and each limiter's
// state.
func (a *admitter) collectors() []prometheus.Collector {
	cs := []prometheus.Collector{a.rejected}
	for _, c := range []admitClass{admitRecommend, admitEvents} {
		l := a.limiter(c)
		if l == nil {
			continue
		}
		labels := prometheus.Labels{"limiter": c.String()}
		cs = append(cs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sightline_http_admission_inflight", ConstLabels: labels,
				Help: "Requests admitted and not yet answered, by limiter (recommend, events)."},
				func() float64 { return float64(l.State().InFlight) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sightline_http_admission_queued", ConstLabels: labels,
				Help: "Requests waiting for an admission slot, by limiter."},
				func() float64 { return float64(l.State().Queued) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sightline_http_admission_limit", ConstLabels: labels,
				Help: "The concurrency limit now (--max-inflight, lower while an adaptive limit has cut it), by limiter."},
				func() float64 { return float64(l.State().Limit) }),
		)
	}
	return cs
}
