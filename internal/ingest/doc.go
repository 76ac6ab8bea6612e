// Package ingest owns the event bus of a Sightline node: the embedded,
// durable, segmented event log ([Log]) that POST /v1/events appends to, and
// the consumers (model updater, feature updater, engagement counters) that
// read it in offset order.
//
// An event is acknowledged only once it is durable according to the
// configured [FsyncPolicy]. Appends are idempotent on event id within a
// dedupe window, and concurrent appends are coalesced by one writer into a
// single write and fsync (group commit). After a crash, [Open] recovers the
// log: a torn record at the tail of the last segment is truncated away, and
// corruption anywhere else is counted and logged, never fatal.
//
// Consumers that keep in-memory state restore it from a snapshot that
// records the next log offset it includes and call [Log.Consume] from that
// offset; stateless consumers let the log persist their position
// ([ConsumeOptions.CommitOffsets]) and resume from [Log.Committed].
//
// [Kafka] is the same bus on a Kafka topic (franz-go): records keyed by
// user, one consumer group per consumer name, positions per partition.
// Both implement [Bus], the partition-aware contract the rest of Sightline
// uses; the embedded log is its single partition 0.
//
// The package leaves the meaning of events to its consumers, which it
// reaches only through the [Handler] and [PartitionHandler] interfaces.
package ingest
