// Package slo owns Sightline's service level objectives and their
// multiwindow, multi-burn-rate alerts, as the Google SRE workbook
// ("Alerting on SLOs", method 6) describes them.
//
// Two SLOs are declared, each with an objective over a 30-day period
// (default 99.9%):
//
//   - availability: the share of recommendation requests answered without a
//     5xx and without a fallback caused by a failed or late dependency
//     (feature store error or timeout, model error or timeout). A fallback
//     the engine chooses by design (missing_features, low_confidence: the
//     model is unsure) is a good answer here; HighFallbackRate and the data
//     alerts watch those.
//   - latency: the share of recommendation decisions that took at most the
//     latency threshold (default 10ms).
//
// A [Tracker] counts good and bad events of both as the node serves them,
// exports them as sightline_slo_requests_total{slo,result} (with the
// objectives as sightline_slo_objective_ratio{slo}) for the Prometheus
// rules of deploy/prometheus/rules/sightline.yml, and keeps them in
// time buckets so that the same alerts ([Alerts]: SLOFastBurn,
// SLOSlowBurn, SLOSustainedBurn) are evaluated in process: [Tracker.Rules]
// gives them to the quality package's evaluator, and [Tracker.Status]
// reports each SLO's error budget left and burn rates (GET /v1/slos, the
// console's SLO panel).
//
// The in-process figures cover what this node served since it started (at
// most the period): a restart starts them again, and in a cluster each API
// node reports its own traffic. Prometheus, which aggregates every node's
// counters across restarts, is the authority for the cluster's budget.
//
// The tracker owns no goroutine and no clock: it reads the injected Now
// on each observation and is evaluated on demand. All methods are safe for
// concurrent use.
package slo
