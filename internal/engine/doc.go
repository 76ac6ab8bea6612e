// Package engine is the decision engine: for each recommendation request it
// fetches the user's features, generates candidates, scores them with the
// variant's model, applies business rules, and falls back to popular items
// for the user's segment when the feature store or the model fails, times
// out, or is unsure. Every request produces one [Decision], the single
// source for the API response, the decision log line, the statistics and the
// metrics.
//
// The engine declares what it needs of its collaborators as small
// interfaces ([FeatureSource], [Catalog], [Scorer]); the app wires the
// feature store and the model in. Each stage runs as its own function with
// its own deadline, timing and span (FeatureFetch, CandidateGeneration,
// ModelInference, BusinessRules under GenerateRecommendations).
//
// The engine also owns the candidate index (global, per-category and
// per-segment popularity and item co-visitation), fed from the event stream
// through [Engine.Observe], and a bounded ring of recent decisions used by
// the API and by the model updater to join events to what the model saw.
//
// All methods of [Engine] are safe for concurrent use.
package engine
