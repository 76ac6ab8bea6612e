// Package app builds a whole Sightline node — event log, feature store,
// model, decision engine, live statistics, telemetry and the HTTP API —
// from one Config, restores its state from snapshots and the event log, and
// runs it. The command, the drills and the integration tests all use it, so
// they run the same wiring.
package app
