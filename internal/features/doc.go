// Package features owns the per-user and per-item state the decision engine
// reads on every request: user profiles (the model's user attributes), the
// item catalog, and each user's recent activity (recently clicked or
// converted items and categories). It also owns the offline bulk import of
// profiles and items from NDJSON files ([LoadUsers], [LoadItems]) and the
// on-disk snapshot format of the in-memory store.
//
// [Memory] is the embedded, in-process implementation: sharded maps with a
// read-write lock per shard, compact user records with interned attribute
// values, and fixed-size most-recent-first lists per user. A Redis
// implementation for scale-out is planned; the engine-facing methods (User,
// Activity, Item) are kept small so that one can slot in behind the
// interfaces the engine declares.
//
// The package does not consume events itself: the ingest consumers call
// [Memory.Apply], and deduplication by event id is theirs. It does not decide
// what a missing attribute means for a recommendation; that is the engine's
// job.
package features
