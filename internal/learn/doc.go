// Package learn is the event path: what happens to an event after it is
// acknowledged. Its consumers read the event bus ([ingest.Bus]) partition by
// partition and
//
//   - join each impression and click to the decision that showed the item
//     (through a [Joiner]: the engine's own ring on a single node, or a ring
//     the trainer fills from the decision stream on a cluster), and train
//     the online model on what the model saw then ([ModelUpdater]);
//   - record events in users' recent activity in the feature store
//     ([ActivityUpdater]);
//   - feed the serving node's candidate index ([IndexUpdater]) and the
//     engagement (CTR) signals ([EngagementTracker]).
//
// Every consumer tracks the next offset it applies per partition, so a
// batch the bus delivers again is skipped, and a snapshot taken while the
// consumer is paused holds state and positions that match exactly. The
// model updater also drops an event whose id it has seen within its dedupe
// window (DefaultDedupeWindow ids): a client retry sent through another node
// or replayed after a failover is learned once.
//
// The package knows neither the engine nor the node: it declares the small
// interfaces it needs ([Joiner], [FeatureReader], [Learner],
// [ActivityWriter], [Observer], [EngagementObserver]) and the wiring in
// internal/app connects them.
package learn
