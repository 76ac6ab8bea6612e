package engine

import "time"

// Reason is a fallback reason code. The empty Reason means no fallback.
type Reason string

// The fallback reasons. They are a closed set: metrics label on them.
const (
	ReasonNone                Reason = ""
	ReasonFeatureStoreError   Reason = "feature_store_error"
	ReasonFeatureStoreTimeout Reason = "feature_store_timeout"
	ReasonMissingFeatures     Reason = "missing_features"
	ReasonModelError          Reason = "model_error"
	ReasonModelTimeout        Reason = "model_timeout"
	ReasonLowConfidence       Reason = "low_confidence"
)

// Reasons lists every fallback reason, in a fixed order.
var Reasons = []Reason{
	ReasonFeatureStoreError, ReasonFeatureStoreTimeout, ReasonMissingFeatures,
	ReasonModelError, ReasonModelTimeout, ReasonLowConfidence,
}

// Stage names, used for timings, span names' metric labels and logs.
const (
	StageFeatures   = "feature_fetch"
	StageCandidates = "candidate_generation"
	StageInference  = "model_inference"
	StageRules      = "business_rules"
)

// Request is one recommendation request, already validated by the caller.
type Request struct {
	// RequestID identifies the request; the engine assigns one when empty.
	RequestID string
	UserID    string
	// Count is the number of items wanted, 1..100.
	Count     int
	Channel   string
	SessionID string
	Page      string
	// Exclude lists item ids that must not be returned.
	Exclude []string
}

// Item is one recommended item.
type Item struct {
	ItemID   string  `json:"item_id"`
	Category string  `json:"category"`
	Score    float64 `json:"score"`
	// Reason says why the item is there: "model", "explore", "popular",
	// "popular_segment", "cold_start", "popularity" (the control variant),
	// "recent_category" (the user's latest category, shown at once).
	Reason string `json:"reason"`
	// Propensity is the probability that the policy would show this item in
	// this slot, for off-policy evaluation.
	Propensity float64 `json:"propensity"`
}

// PoolItem is one candidate of a decision's logged pool: the best eligible
// candidates by the serving ranking, whether shown or not, so that an
// offline evaluation can ask which of them another policy would have shown
// (Config.PoolSize).
type PoolItem struct {
	ItemID   string `json:"item_id"`
	Category string `json:"category"`
	// Score is the serving policy's score of the item: the model's
	// probability, or the popularity for the popularity control.
	Score float64 `json:"score"`
	// Popularity is the item's popularity normalised to 0..1 against the
	// most popular item.
	Popularity float64 `json:"popularity"`
}

// StageTiming is how long one stage of a decision took and how it ended.
type StageTiming struct {
	Stage    string        `json:"stage"`
	Duration time.Duration `json:"duration_ns"`
	// Error is the stage's error, if any, in words safe to log.
	Error string `json:"error,omitempty"`
}

// Decision is the record of one recommendation: the single source for the
// API response, the decision log line, the stats and the metrics.
// A Decision is immutable once Recommend returns it.
type Decision struct {
	RequestID string    `json:"request_id"`
	Time      time.Time `json:"time"`
	// UserHash is the pseudonymized user id; the raw id is never recorded.
	UserHash     string `json:"user_hash"`
	KnownUser    bool   `json:"known_user"`
	Segment      string `json:"segment"`
	Channel      string `json:"channel"`
	Variant      string `json:"variant"`
	ModelVersion string `json:"model_version"`
	// Features are the model attributes the engine saw, by feature name;
	// a nil value is a null (missing) feature.
	Features   map[string]*string `json:"features"`
	Candidates int                `json:"candidates"`
	Items      []Item             `json:"items"`
	// Pool is the best Config.PoolSize eligible candidates in the serving
	// ranking's order (empty when PoolSize is 0 or the engine fell back).
	Pool []PoolItem `json:"pool,omitempty"`
	// Eligible is the number of candidates left after the business rules'
	// filters, which exploration draws from.
	Eligible int `json:"eligible"`
	// Explore and ExploreTop are the exploration settings the decision was
	// made with (Config.Explore, Config.ExploreTop): with them and Pool an
	// offline evaluation knows which items the policy could have shown.
	Explore    float64 `json:"explore"`
	ExploreTop int     `json:"explore_top,omitempty"`
	// Confidence is the model's confidence in this decision (0..1).
	Confidence float64 `json:"confidence"`
	Fallback   Reason  `json:"fallback_reason,omitempty"`
	// FallbackDetail explains the fallback in words safe to log.
	FallbackDetail string        `json:"fallback_detail,omitempty"`
	Stages         []StageTiming `json:"stages"`
	Duration       time.Duration `json:"duration_ns"`
	TraceID        string        `json:"trace_id,omitempty"`
	SpanID         string        `json:"span_id,omitempty"`
	// TraceSampled reports that the decision's trace was head-sampled.
	TraceSampled bool `json:"trace_sampled,omitempty"`
	// Shadow is what a shadow challenger would have shown, nil when none
	// scored the decision ([Challenger].Shadow).
	Shadow *Shadow `json:"shadow,omitempty"`
}

// Shadow is a shadow challenger's would-be answer to a decision: its
// greedy choice among the same eligible candidates, never shown.
type Shadow struct {
	// ModelVersion is the challenger's model version.
	ModelVersion string `json:"model_version"`
	// Items are the item ids it would have shown, best first, and Scores
	// their predicted click probabilities.
	Items  []string  `json:"items"`
	Scores []float64 `json:"scores"`
	// Overlap is how many of Items the decision showed too.
	Overlap int `json:"overlap"`
	// Duration is how long its scoring took.
	Duration time.Duration `json:"duration_ns"`
	// Error is why it could not score ("" when it did), in words safe to
	// log.
	Error string `json:"error,omitempty"`
}
