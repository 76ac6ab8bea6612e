package decisionlog

import "time"

// SchemaVersion is the version of the row schemas below. It is written in
// every file's key-value metadata under [MetaSchema]; readers reject a file
// of a version they do not know. A new column is added at the end of a row
// with a new version; a column never changes meaning. Version 2 added the
// shadow_* columns of Decision; readers read version 1 files with them
// empty.
const SchemaVersion = 2

// minSchemaVersion is the oldest version readers read.
const minSchemaVersion = 1

// Keys of the key-value metadata of every file.
const (
	// MetaSchema names the file's row kind and schema version:
	// "decisions/2" or "events/2" (version 1 files are read too).
	MetaSchema = "sightline.schema"
	// MetaStoreRatio is the share of decisions the writer kept
	// (--decision-store-ratio, "1" by default), as a decimal. Decisions are
	// sampled by a hash of the request id, and the events of a dropped
	// decision are dropped with it, so a sampled log is an unbiased sample
	// of decisions; totals scale by 1/ratio.
	MetaStoreRatio = "sightline.store_ratio"
	// MetaNode is the --node-name of the process that wrote the file.
	MetaNode = "sightline.node"
)

// Decision is one row of a decisions file: one recommendation as it was
// served. Column names are the parquet tags; strings are UTF-8, times are
// UTC timestamps in microseconds.
type Decision struct {
	// RequestID is the answer's request_id, which events name.
	RequestID string `parquet:"request_id"`
	// Time is when the decision started.
	Time time.Time `parquet:"time,timestamp(microsecond)"`
	// UserHash is the keyed pseudonym of the user id; never the raw id.
	UserHash string `parquet:"user_hash"`
	// KnownUser reports that the user had a profile.
	KnownUser bool `parquet:"known_user"`
	// Node is the node that served the decision.
	Node    string `parquet:"node,dict"`
	Channel string `parquet:"channel,dict"`
	// Variant is the variant that served; ModelVersion its model's version.
	Variant      string `parquet:"variant,dict"`
	ModelVersion string `parquet:"model_version,dict"`
	// The user attributes the model saw; a null is a missing attribute
	// (the talk's incident is user_age_bucket null for new users). All
	// four are null when the feature fetch failed.
	UserAgeBucket *string `parquet:"user_age_bucket,optional,dict"`
	UserSegment   *string `parquet:"user_segment,optional,dict"`
	UserRegion    *string `parquet:"user_region,optional,dict"`
	UserDevice    *string `parquet:"user_device,optional,dict"`
	// Hour is the hour of day the model saw (0–23). The column is not
	// named "hour": that is the hour=HH partition key of the directory
	// layout, and readers with hive partitioning (DuckDB's default) would
	// replace a column of that name with the directory's UTC hour.
	Hour int32 `parquet:"context_hour"`
	// RecentCategories are the user's recent categories the model saw,
	// most recent first.
	RecentCategories []string `parquet:"recent_categories,list"`
	// Candidates is the number of candidates generated; Eligible the number
	// left after the business rules' filters.
	Candidates int32 `parquet:"candidates"`
	Eligible   int32 `parquet:"eligible"`
	// Explore is the exploration share and ExploreTop the number of top
	// ranked eligible candidates exploration draws from (0: all of them)
	// that the decision was made with.
	Explore    float64 `parquet:"explore"`
	ExploreTop int32   `parquet:"explore_top"`
	// Confidence is the decision's confidence (0..1).
	Confidence float64 `parquet:"confidence"`
	// FallbackReason is "" when the model served, else the reason code.
	FallbackReason string `parquet:"fallback_reason,dict"`
	// Items are the items shown, in slot order.
	Items []Slot `parquet:"items,list"`
	// Pool is the best eligible candidates by the serving ranking, shown or
	// not, without a category's candidates no slot can reach
	// (--decision-pool of them; empty on a fallback).
	Pool []Candidate `parquet:"pool,list"`
	// DurationNS is the decision's duration in nanoseconds.
	DurationNS int64 `parquet:"duration_ns"`
	// TraceID is the hex W3C trace id ("" without tracing); TraceSampled
	// reports that the trace was head-sampled.
	TraceID      string `parquet:"trace_id"`
	TraceSampled bool   `parquet:"trace_sampled"`
	// ShadowModelVersion is the version of the shadow challenger that
	// scored the decision without its answer being shown (a rollout in its
	// shadow stage); "" when none did. The shadow columns are schema
	// version 2.
	ShadowModelVersion string `parquet:"shadow_model_version,dict"`
	// ShadowItems are the items the shadow challenger would have shown,
	// best first (its greedy choice among the same eligible candidates),
	// with its predicted click probabilities; empty when none scored the
	// decision or its scoring failed. Offline evaluation estimates its
	// click-through rate from them against the logged propensities.
	ShadowItems []ShadowSlot `parquet:"shadow_items,list"`
	// ShadowError is why the shadow challenger could not score ("" when
	// it did), in words safe to log.
	ShadowError string `parquet:"shadow_error,dict"`
	// ShadowDurationNS is how long the shadow challenger's scoring took.
	ShadowDurationNS int64 `parquet:"shadow_duration_ns"`
}

// ShadowSlot is one item a shadow challenger would have shown.
type ShadowSlot struct {
	ItemID string `parquet:"item_id"`
	// Score is the challenger's predicted click probability.
	Score float64 `parquet:"score"`
}

// Slot is one shown item of a decision.
type Slot struct {
	ItemID   string `parquet:"item_id"`
	Category string `parquet:"category"`
	// Score is the serving score: the model's probability, or the
	// popularity for the popularity control.
	Score float64 `parquet:"score"`
	// Reason says why the item is there (model, explore, popular, …).
	Reason string `parquet:"reason"`
	// Propensity is the probability the serving policy had of showing this
	// item in this slot, given the items above it.
	Propensity float64 `parquet:"propensity"`
}

// Candidate is one candidate of a decision's pool.
type Candidate struct {
	ItemID   string `parquet:"item_id"`
	Category string `parquet:"category"`
	// Score is the serving score, as in Slot.
	Score float64 `parquet:"score"`
	// Popularity is the item's popularity, 0..1 against the most popular.
	Popularity float64 `parquet:"popularity"`
}

// Event is one row of an events file: an impression, click or conversion
// joined to the decision it answers.
type Event struct {
	// RequestID is the decision the event answers.
	RequestID string `parquet:"request_id"`
	EventID   string `parquet:"event_id"`
	// Type is "impression", "click" or "conversion".
	Type string `parquet:"type,dict"`
	// Time is the event's timestamp.
	Time    time.Time `parquet:"time,timestamp(microsecond)"`
	ItemID  string    `parquet:"item_id"`
	DwellMS int64     `parquet:"dwell_ms"`
}
