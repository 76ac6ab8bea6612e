// Package evaluate owns offline policy evaluation: it estimates, from a
// decision log (the rows of [decisionlog.Decision] and the events joined to
// them), the click-through rate a target policy would have had if it had
// served the logged traffic, with inverse propensity scoring (IPS),
// self-normalized IPS (SNIPS) and doubly robust (DR) estimators, bootstrap
// intervals, the effective sample size, weight clipping and an overlap check
// that says when an estimate is not to be trusted.
//
// A recommendation is a slate: the estimators work per shown position (the
// independent-item estimator of Open Bandit Pipeline's slate estimators)
// and sum over positions. The item-position propensity is the logged one
// in the first slot and, below it, reconstructed from the logged
// exploration settings and serving ranking. docs/evaluation.md explains
// each estimator, its assumptions and the thresholds.
//
// Targets are parsed from a spec ([ParseSpec]): the logging policy itself
// ("logged"), popularity ("popularity"), a model snapshot file, or the FTRL
// model with other settings trained progressively over the log ("ftrl:…").
//
// The package reads rows through [Source], which the decision log's Parquet
// reader and [MemorySource] implement; reading files, flags, the terminal
// and the saved report are the caller's business (cmd/sightline). [Run]
// reads the source on a goroutine of its own while it evaluates, and
// returns after it ended. [Report] is the result, in the JSON form the
// console reads.
package evaluate
