// Package quality watches what the serving path does and whether it works.
//
// It owns the in-process ML observability of issue 4:
//
//   - [Live]: request and engagement statistics over a short window (GET /v1/stats).
//   - [Monitor]: per-feature null ratio and drift (PSI) against a [Baseline]
//     captured at training or snapshot time, overall and by a bounded set of
//     segments, exported as sightline_feature_* gauges computed at scrape.
//   - [Engagement]: impression, click and conversion counters by variant and
//     channel, and each variant's windowed CTR against its own slow baseline
//     (sightline_ctr_ratio_to_baseline).
//   - [Decisions]: windowed fallback rates by reason, latency and per-stage
//     p99 with slow baselines, and recent example trace ids per cause.
//   - [Evaluator]: the alerting rules of deploy/prometheus/rules evaluated in
//     process, with pending, firing and resolved states (GET /v1/alerts), and
//     [Rank], the generic root-cause ranking attached to alerts as [Hint]s.
//
// It imports only internal/event. The app feeds it plain observation structs
// and owns the clock: every component takes an injected Now, and nothing
// here starts a goroutine except [Evaluator.Run], which the caller runs.
// Drills call [Evaluator.Evaluate] on a simulated clock instead.
//
// All methods are safe for concurrent use.
package quality
