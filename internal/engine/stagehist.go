package engine

import (
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// stageNames are the stages of a decision in stageHistograms' order.
var stageNames = [...]string{StageFeatures, StageCandidates, StageInference, StageRules}

// stageIndex returns the index of stage name in stageNames, or -1.
func stageIndex(name string) int {
	switch name {
	case StageFeatures:
		return 0
	case StageCandidates:
		return 1
	case StageInference:
		return 2
	case StageRules:
		return 3
	}
	return -1
}

// stageShards is the number of shards of stageHistograms.
const stageShards = 16

// stageHistograms is sightline_stage_duration_seconds: a classic histogram
// of each stage's duration over latencyBuckets, kept in shards that an
// observation picks at random and that a scrape sums. Every request
// observes four stages; in one prometheus.Histogram per stage, the
// atomic count, bucket and sum (a compare-and-swap loop on a float) that
// every request on every core updates kept their cache lines moving
// between cores: 3.6% of the CPU of BenchmarkHandler/parallel
// (docs/benchmarks.md, issue 16). Sums are kept in integer nanoseconds
// (one atomic add). A scrape reads each shard once; observations that land
// during it may show in the buckets before the sum, as with client_golang's
// own histograms between its hot and cold counts. All methods are
// goroutine-safe.
type stageHistograms struct {
	desc   *prometheus.Desc
	bounds [len(latencyBuckets)]time.Duration
	shards [stageShards]stageShard
}

// stageShard is one shard: per stage, the count of each bucket (the last
// is +Inf) and the sum of the durations.
type stageShard struct {
	counts [len(stageNames)][len(latencyBuckets) + 1]atomic.Uint64
	sum    [len(stageNames)]atomic.Int64
	_      [64]byte // the next shard's counts on other cache lines
}

var _ prometheus.Collector = (*stageHistograms)(nil)

func newStageHistograms() *stageHistograms {
	h := &stageHistograms{desc: prometheus.NewDesc("sightline_stage_duration_seconds", "Time spent in each decision stage.", []string{"stage"}, nil)}
	for i, b := range latencyBuckets {
		h.bounds[i] = time.Duration(b * float64(time.Second))
	}
	return h
}

// observe records a duration d of the stage of index stage (stageIndex).
func (h *stageHistograms) observe(stage int, d time.Duration) {
	i := 0
	for i < len(h.bounds) && d > h.bounds[i] {
		i++
	}
	s := &h.shards[rand.Uint32()%stageShards]
	s.counts[stage][i].Add(1)
	s.sum[stage].Add(int64(d))
}

// Describe implements prometheus.Collector.
func (h *stageHistograms) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

// Collect implements prometheus.Collector: one histogram per stage, with
// every stage's series present from the first scrape.
func (h *stageHistograms) Collect(ch chan<- prometheus.Metric) {
	for st, name := range stageNames {
		var counts [len(latencyBuckets) + 1]uint64
		var sum int64
		for k := range h.shards {
			s := &h.shards[k]
			for i := range counts {
				counts[i] += s.counts[st][i].Load()
			}
			sum += s.sum[st].Load()
		}
		buckets := make(map[float64]uint64, len(latencyBuckets))
		var cum uint64
		for i, c := range counts {
			cum += c
			if i < len(latencyBuckets) {
				buckets[latencyBuckets[i]] = cum
			}
		}
		ch <- prometheus.MustNewConstHistogram(h.desc, cum, time.Duration(sum).Seconds(), buckets, name)
	}
}
