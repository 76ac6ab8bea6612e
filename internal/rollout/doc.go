// Package rollout ships a new model version safely: a challenger is scored
// in shadow, then served to a growing share of the champion's users (the
// canary steps, 5% → 25% → 50% by default, each held for a while), and is
// promoted or rolled back by guardrails checked every minute, without a
// person in the loop.
//
// The guardrails compare the challenger's users with the rest of the
// champion's users, both drawn by the same deterministic per-user hash, so
// the two groups differ only by the model that served them:
//
//   - ctr: the always-valid p-value of the sequential test of the A/B
//     statistics (package experiment), so checking every minute does not
//     inflate false rollbacks; it fails when the challenger is significantly
//     worse, and passes for promotion when the relative lift's 95% interval
//     stays above -NonInferiority;
//   - calibration: the challenger's predicted click rate over its observed
//     one stays within a band;
//   - latency: the p99 of the challenger's decisions stays within a ratio of
//     the champion's (plus a slack);
//   - fallbacks and null features: the challenger's rates exceed the
//     champion's by no more than a margin (and significantly).
//
// A failed guardrail rolls back at once; promotion needs every guardrail to
// pass at the last step. Every transition is a span (RolloutTransition), a
// log line with the guardrail values (INFO, WARN for a rollback), a metric
// and an entry of the rollout's timeline, and the state is written (to a
// file, or a cluster's registry: [Store]) before it takes effect, so a restart resumes the rollout (or finishes a
// promotion it had begun) instead of leaving a half-promoted model.
//
// The [Controller] steers a [Target], declared here and implemented by the
// node: it loads the challenger, routes a share of users to it, and makes it
// the champion.
package rollout
