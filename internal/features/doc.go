// Package features owns the per-user and per-item state the decision engine
// reads on every request: user profiles (the model's user attributes), the
// item catalog, and each user's recent activity (recently clicked or
// converted items and categories). It also owns the offline bulk import of
// profiles and items from NDJSON files ([LoadUsers], [LoadItems]) and the
// on-disk snapshot format of the in-memory store.
//
// [Memory] is the embedded, in-process implementation: sharded maps with a
// read-write lock per shard, compact user records with interned attribute
// values, and fixed-size most-recent-first lists per user. [Redis] is the
// scale-out implementation, for stateless API nodes sharing one Redis: the
// same engine-facing methods (User, Activity, and Features in one round
// trip), with every call bounded by the caller's deadline. The node uses
// [Memory] by default and [Redis] with --feature-store redis (which a
// cluster's API nodes and trainers need); internal/app wires either.
//
// Both stores erase a user ([Memory.EraseUser], [Redis.EraseUser]), and
// both apply the erasure record of the event stream ([event.Erasure]) in
// order with the user's events. The [Journal] makes a memory node's
// profile writes and erasures durable between snapshots.
//
// The package does not consume events itself: the activity updater
// (internal/learn) calls [Memory.Apply] or [Redis.Apply], and nothing here
// deduplicates by event id. It does not decide what a missing attribute
// means for a recommendation; that is the engine's job.
package features
