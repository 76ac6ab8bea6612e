// Package quality watches what the serving path does and whether it works:
// live request and engagement statistics over a sliding window (request
// rate, latency percentiles, error and fallback rates, CTR by variant,
// event rate). It imports only internal/event; the app feeds it decisions
// and events through plain observation structs.
//
// All methods are safe for concurrent use.
package quality
