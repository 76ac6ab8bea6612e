// Package decisionlog is the long-term store of decisions: every decision
// a node served (request id, time, user pseudonym, variant, model version,
// the features the model saw with nulls as nulls, the shown items with
// score and propensity, the candidate pool, exploration settings, fallback
// and trace) and every event joined to one, as Parquet files under
// <dir>/date=YYYY-MM-DD/hour=HH/, readable by DuckDB, Spark or pandas.
// The schemas are [Decision] and [Event], versioned by [SchemaVersion].
//
// On a single node the node's engine feeds the writer; on a cluster the
// active trainer does, from the decision stream. Offline policy
// evaluation (internal/evaluate) reads the files back.
package decisionlog
