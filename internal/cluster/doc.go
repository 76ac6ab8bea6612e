// Package cluster is the multi-process acceptance test of a Sightline
// cluster (issue 10) on one machine. It has no production code: its tests
// build the sightline binary and the kfakebroker program (a Kafka-protocol
// broker from franz-go's kfake, in kfakebroker/), start a real redis-server
// (the binary named by SIGHTLINE_TEST_REDIS_SERVER; the tests skip when it
// is unset), and run one active trainer, a standby trainer and two API
// nodes as separate processes on 127.0.0.1, each with its own data
// directory and log file.
//
// The scenarios check what a user of the cluster depends on: the model
// learns (the ftrl variant beats popularity on both API nodes) and every
// API node serves the published version within 2 s; a click through one
// node changes the next recommendation on the other within 2 s; an item
// written through one node is served by the other within 1 s; an event id
// retried through another node is learned once; a user erased through one
// node loses its decisions on the other and on the trainer within 5 s
// (the erasure record on the event stream); kill -9 of the active
// trainer loses and repeats no acknowledged event while the API nodes keep
// answering; kill -9 of an API node leaves the other serving; kill -9 of
// the trainer running a guarded rollout mid-canary lets the standby resume
// it from the registry and roll a bad challenger back, and a kill the
// moment a promotion begins is finished by the next trainer, after which
// both API nodes serve the promoted model; a 10 s Redis outage costs
// fallbacks, not errors, and heals without restarts; and one trace links a
// recommendation on one node, its click through another and the trainer's
// model update (in Jaeger, when SIGHTLINE_TEST_JAEGER_OTLP and
// SIGHTLINE_TEST_JAEGER_QUERY are set).
//
// Every child runs in its own process group and is killed when the test
// ends; the tail of each child's log is printed when a test fails.
package cluster
