package loadtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Errors returned by this package. Callers match them with errors.Is.
var (
	// ErrInvalidConfig reports a configuration with an out-of-range field.
	ErrInvalidConfig = errors.New("invalid load config")
	// ErrStatus reports an HTTP answer outside 2xx; the error is a
	// [*StatusError].
	ErrStatus = errors.New("unexpected http status")
)

// Error kinds counted in [Report.ErrorsByKind].
const (
	// KindOverrun counts arrivals dropped because MaxInFlight requests were
	// already outstanding: the target fell so far behind that the generator
	// refused to queue more.
	KindOverrun = "overrun"
	// KindTimeout counts requests that hit Config.Timeout.
	KindTimeout = "timeout"
	// KindRejected counts 429 answers: the target refused the request
	// (admission control) before doing its work. They are also in
	// [Report.Rejected].
	KindRejected = "http_429"
	// KindClient counts 4xx answers other than 429.
	KindClient = "http_4xx"
	// KindServer counts 5xx answers.
	KindServer = "http_5xx"
	// KindTransport counts every other failure (refused, reset, ...).
	KindTransport = "transport"
)

// Target sends one request and waits for its answer. seq numbers the
// arrivals of a run from 0. Send is called from many goroutines at once and
// must be safe for concurrent use; it returns nil on success.
type Target interface {
	Send(ctx context.Context, seq uint64) error
}

// TargetFunc adapts a function to [Target].
type TargetFunc func(ctx context.Context, seq uint64) error

// Send calls f.
func (f TargetFunc) Send(ctx context.Context, seq uint64) error { return f(ctx, seq) }

// Config configures [Run]. The zero value of an optional field means its
// default.
type Config struct {
	// Rate is the constant arrival rate in requests per second. Required.
	Rate float64
	// Duration is how long arrivals are scheduled. Required.
	Duration time.Duration
	// MaxInFlight bounds the outstanding requests (default 1024). An arrival
	// that finds the bound reached is not sent and counts as an error of
	// kind [KindOverrun].
	MaxInFlight int
	// Timeout bounds each request (default 5s).
	Timeout time.Duration
	// Name labels the report (optional).
	Name string
}

func (c Config) withDefaults() (Config, error) {
	if !(c.Rate > 0) || c.Duration <= 0 {
		return c, fmt.Errorf("%w: rate %v and duration %v must be positive", ErrInvalidConfig, c.Rate, c.Duration)
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 1024
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	return c, nil
}

// Report is the outcome of one open-loop run.
type Report struct {
	// Name is Config.Name.
	Name string `json:"name,omitempty"`
	// Rate is the offered arrival rate, per second.
	Rate float64 `json:"rate"`
	// DurationSeconds is the time from the first scheduled arrival to the
	// last answer.
	DurationSeconds float64 `json:"duration_seconds"`
	// Sent counts the scheduled arrivals (overruns included).
	Sent uint64 `json:"sent"`
	// OK counts the successful requests.
	OK uint64 `json:"ok"`
	// Errors counts the failed requests and overruns.
	Errors uint64 `json:"errors"`
	// ErrorsByKind splits Errors by kind ([KindOverrun], [KindTimeout], ...).
	ErrorsByKind map[string]uint64 `json:"errors_by_kind"`
	// Throughput is OK per second of DurationSeconds.
	Throughput float64 `json:"throughput"`
	// Latency summarises the successful requests' latencies, measured from
	// each request's scheduled send time, in milliseconds.
	Latency Summary `json:"latency_ms"`
	// Histogram holds the latencies behind Latency, for merging.
	Histogram *Histogram `json:"-"`
	// Rejected counts the 429 answers (also under [KindRejected]).
	Rejected uint64 `json:"rejected"`
	// RejectedWithoutRetryAfter counts the 429 answers that had no valid
	// Retry-After header (a whole number of seconds or an HTTP date).
	RejectedWithoutRetryAfter uint64 `json:"rejected_without_retry_after"`
	// RejectedLatency summarises how long the 429 answers took, from the
	// scheduled send time, in milliseconds: a refusal must be fast.
	RejectedLatency Summary `json:"rejected_latency_ms"`
	// SendLag summarises how late the generator handed each arrival to the
	// target, from its scheduled time, in milliseconds. It is the
	// generator's own delay (its scheduling, its GC, a machine that stopped
	// it), already inside Latency: when a high Latency tail comes with a
	// SendLag tail as long, the generator or the machine stalled, not the
	// target.
	SendLag Summary `json:"send_lag_ms"`
	// PerSecond splits the outcomes by the second of each arrival's
	// scheduled time, from the start of the run: whether the target
	// recovered at once when the load dropped shows in the first seconds
	// of the next run.
	PerSecond []SecondCounts `json:"per_second"`
}

// SecondCounts are the outcomes of the arrivals scheduled in one second of
// a run.
type SecondCounts struct {
	// OK counts successful requests.
	OK uint64 `json:"ok"`
	// Rejected counts 429 answers.
	Rejected uint64 `json:"rejected"`
	// Errors counts every other failure, overruns included.
	Errors uint64 `json:"errors"`
	// MaxMs is the longest latency of the second's answered requests
	// (successes and refusals), in milliseconds: where in a run a stall
	// fell.
	MaxMs float64 `json:"max_ms"`
}

// ErrorRatio returns Errors/Sent (0 when nothing was sent).
func (r *Report) ErrorRatio() float64 {
	if r.Sent == 0 {
		return 0
	}
	return float64(r.Errors) / float64(r.Sent)
}

// Run sends requests to t at cfg.Rate for cfg.Duration, open loop: arrival
// i is scheduled at start + i/Rate whatever happened to earlier requests,
// and its latency is measured from that scheduled time, so time an arrival
// spends waiting for the generator or a stalled server is counted. Run
// waits for every request it sent, then returns the report. It stops
// scheduling when ctx is done and returns the partial report with ctx's
// error.
func Run(ctx context.Context, t Target, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	h, rejected, sendLag := new(Histogram), new(Histogram), new(Histogram)
	total := uint64(cfg.Rate * cfg.Duration.Seconds())
	var (
		mu           sync.Mutex
		byKind       = map[string]uint64{}
		noRetryAfter uint64
		perSecond    = make([]SecondCounts, int(cfg.Duration/time.Second)+1)
		wg           sync.WaitGroup
	)
	start := time.Now()
	second := func(sched time.Time) *SecondCounts {
		return &perSecond[min(int(sched.Sub(start)/time.Second), len(perSecond)-1)]
	}
	fail := func(kind string, sched time.Time) {
		mu.Lock()
		byKind[kind]++
		second(sched).Errors++
		mu.Unlock()
	}
	reject := func(lat time.Duration, sched time.Time, retryAfter bool) {
		rejected.Record(lat)
		mu.Lock()
		byKind[KindRejected]++
		sc := second(sched)
		sc.Rejected++
		sc.MaxMs = max(sc.MaxMs, ms(lat))
		if !retryAfter {
			noRetryAfter++
		}
		mu.Unlock()
	}
	ok := func(lat time.Duration, sched time.Time) {
		h.Record(lat)
		mu.Lock()
		sc := second(sched)
		sc.OK++
		sc.MaxMs = max(sc.MaxMs, ms(lat))
		mu.Unlock()
	}
	perArrival := float64(time.Second) / cfg.Rate
	sem := make(chan struct{}, cfg.MaxInFlight)
	at := func(i uint64) time.Time { return start.Add(time.Duration(float64(i) * perArrival)) }
	timer := time.NewTimer(0)
	defer timer.Stop()
	var next uint64
	var runErr error
schedule:
	for next < total {
		if d := time.Until(at(next)); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				runErr = ctx.Err()
				break schedule
			case <-timer.C:
			}
		}
		now := time.Now()
		for ; next < total && !at(next).After(now); next++ {
			seq, sched := next, at(next)
			select {
			case sem <- struct{}{}:
			default:
				fail(KindOverrun, sched)
				continue
			}
			wg.Go(func() {
				defer func() { <-sem }()
				rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
				sendLag.Record(time.Since(sched))
				err := t.Send(rctx, seq)
				lat := time.Since(sched)
				cancel()
				if se, isStatus := errors.AsType[*StatusError](err); isStatus && se.Code == http.StatusTooManyRequests {
					reject(lat, sched, validRetryAfter(se.RetryAfter))
					return
				}
				if err != nil {
					fail(kindOf(err), sched)
					return
				}
				ok(lat, sched)
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	r := &Report{
		Name:                      cfg.Name,
		Rate:                      cfg.Rate,
		DurationSeconds:           elapsed.Seconds(),
		Sent:                      next,
		OK:                        h.Count(),
		ErrorsByKind:              maps.Clone(byKind),
		Latency:                   h.Summary(),
		Histogram:                 h,
		Rejected:                  rejected.Count(),
		RejectedLatency:           rejected.Summary(),
		SendLag:                   sendLag.Summary(),
		PerSecond:                 perSecond,
		RejectedWithoutRetryAfter: noRetryAfter,
	}
	for _, n := range byKind {
		r.Errors += n
	}
	if elapsed > 0 {
		r.Throughput = float64(r.OK) / elapsed.Seconds()
	}
	return r, runErr
}

// validRetryAfter reports whether v is a valid Retry-After value
// (RFC 9110): a whole number of seconds, or an HTTP date.
func validRetryAfter(v string) bool {
	if v == "" {
		return false
	}
	if _, err := strconv.ParseUint(v, 10, 32); err == nil {
		return true
	}
	_, err := http.ParseTime(v)
	return err == nil
}

func kindOf(err error) string {
	if se, ok := errors.AsType[*StatusError](err); ok {
		if se.Code >= 500 {
			return KindServer
		}
		return KindClient
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return KindTimeout
	}
	return KindTransport
}
