// Package loadtest is Sightline's load harness: an open-loop generator that
// sends requests at a constant arrival rate and measures each latency from
// the request's scheduled send time (so a stalled server cannot hide its
// queue: no coordinated omission), a mergeable log-linear latency
// histogram, a search for the highest rate that keeps p99 under a limit,
// the HTTP targets of the benchmark suite (recommendations and event
// batches, sent by a small HTTP/1.1 client of its own that costs the
// machine a fraction of net/http's client, and a bare net/http baseline
// handler), and probes that read a node's
// ingest lag and the freshness of its recommendations.
//
// The package drives a node over HTTP only; it never imports the node's
// packages. cmd/sightline's loadgen command and scripts/bench use it.
package loadtest
