// Package model owns Sightline's online model: FTRL-Proximal logistic
// regression (McMahan et al. 2013, "Ad Click Prediction: a View from the
// Trenches") over hashed features and feature crosses, its online
// evaluation, its snapshots and the deterministic assignment of users to
// variants (A/B arms).
//
// Features are binary and hashed into 2^Bits coordinates with a fixed
// 64-bit FNV-1a hash and a fixed mixer, so coordinates (and snapshots) are
// portable across processes. For a request and a candidate item the active
// features are: the bias; each request-side feature (each non-null user
// attribute, the channel, the hour bucket, each recent category) on its own
// and crossed with the item's category; the item id; and the item category.
//
// A model of a [Family] other than the plain "ftrl" may add two things.
// With [Config.Positions] it learns a weight per display position
// ([Context.Slot], known when learning from an impression or a click) apart
// from the items, so that an item shown low is not mistaken for a worse
// one, and it scores with the offset that averages those weights over the
// positions it learned from (scores stay calibrated). With
// [Config.Optimism] its ranking logit adds to each item an upper-confidence
// bonus that shrinks as the item's evidence (its coordinate's accumulated
// squared gradient) grows; learning predicts without it.
//
// Scoring is lock-free and allocation-free: per-coordinate FTRL state (z, n)
// and the weight derived from it are held in atomic 64-bit words, the weight
// recomputed by [Model.Learn] whenever it changes z or n, so [Model.Score]
// reads one word per coordinate and runs concurrently with [Model.Learn],
// which serializes writers with a mutex that readers never take. Callers reuse a [Prepared]
// to hash the request-side features once per request.
//
// The package is pure: it does no I/O except through the io.Reader and
// io.Writer given to snapshots and the files named to [Model.SaveFile] and
// [LoadFile], starts no goroutines, and reads time only through
// [Config.Now]. Metrics, tracing and the event stream are the callers'
// business (the engine scores, an ingest consumer learns).
package model
