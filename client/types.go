package client

import "time"

// RecommendRequest is the body of POST /v1/recommendations.
type RecommendRequest struct {
	// UserID is the user to recommend for. Required.
	UserID string `json:"user_id"`
	// Count is the number of items wanted, 1..100; zero means the server
	// default (10).
	Count int `json:"count,omitempty"`
	// Context describes where the recommendations are shown.
	Context Context `json:"context,omitzero"`
	// ExcludeItemIDs lists items that must not be returned (at most 500).
	ExcludeItemIDs []string `json:"exclude_item_ids,omitempty"`
}

// Context describes where recommendations are shown.
type Context struct {
	// Channel is the surface ("home", "email", ...): at most 64 bytes of
	// [a-z0-9_-]. Optional.
	Channel string `json:"channel,omitempty"`
	// SessionID identifies the user's session. Optional.
	SessionID string `json:"session_id,omitempty"`
	// Page is the page or screen. Optional.
	Page string `json:"page,omitempty"`
}

// Recommendation is the answer to a recommendation request.
type Recommendation struct {
	// RequestID identifies the decision; send it back on events that answer
	// it and use it with [Client.Decision].
	RequestID string `json:"request_id"`
	// Variant is the experiment variant that served the request.
	Variant string `json:"variant"`
	// ModelVersion is the version of the model that scored the items.
	ModelVersion string `json:"model_version"`
	// Fallback is non-nil when the items come from the fallback path rather
	// than the model, and says why.
	Fallback *Fallback `json:"fallback"`
	// Items are the recommended items, best first.
	Items []ScoredItem `json:"items"`
}

// Fallback says why a recommendation was served from the fallback path.
type Fallback struct {
	// Reason is a reason code such as "model_timeout" or "low_confidence".
	Reason string `json:"reason"`
	// Detail explains the fallback in words.
	Detail string `json:"detail"`
}

// ScoredItem is one recommended item.
type ScoredItem struct {
	ItemID string  `json:"item_id"`
	Score  float64 `json:"score"`
	// Reason says why the item is there: "model", "explore", "popular",
	// "popular_segment" or "cold_start".
	Reason string `json:"reason"`
}

// The event types accepted by [Client.SendEvents].
const (
	TypeImpression = "impression"
	TypeClick      = "click"
	TypeConversion = "conversion"
)

// Event is one user interaction, the element of POST /v1/events.
type Event struct {
	// EventID is the idempotency key: the server applies each id once.
	EventID string `json:"event_id"`
	// Type is one of TypeImpression, TypeClick, TypeConversion.
	Type   string `json:"type"`
	UserID string `json:"user_id"`
	ItemID string `json:"item_id"`
	// RequestID is the Recommendation.RequestID the event answers, if any.
	RequestID string `json:"request_id,omitempty"`
	Channel   string `json:"channel,omitempty"`
	// Timestamp is when the interaction happened; zero means server time.
	Timestamp time.Time `json:"timestamp,omitzero"`
	// DwellMS is the time spent on the item, in milliseconds.
	DwellMS int64 `json:"dwell_ms,omitempty"`
}

// EventsResult is the answer to [Client.SendEvents].
type EventsResult struct {
	// Accepted counts the events durably stored, duplicates included.
	Accepted int `json:"accepted"`
	// Duplicates counts accepted events whose id had been seen before.
	Duplicates int `json:"duplicates"`
	// Rejected lists the invalid events, by index in the batch.
	Rejected []Rejection `json:"rejected"`
}

// Rejection is one invalid event of a batch.
type Rejection struct {
	// Index is the position of the event in the batch sent.
	Index int `json:"index"`
	// Error names the field and says what to fix.
	Error string `json:"error"`
}

// User is a user profile, the body of PUT /v1/users/{user_id} and a line of
// the users import.
type User struct {
	UserID     string            `json:"user_id,omitempty"`
	AgeBucket  string            `json:"age_bucket,omitempty"`
	Segment    string            `json:"segment,omitempty"`
	Region     string            `json:"region,omitempty"`
	Device     string            `json:"device,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// UserProfile is what the server's feature store holds of a user, the
// answer of [Client.User]. The profile fields are empty for a user known
// only from events.
type UserProfile struct {
	User
	// UpdatedAt is when the profile was last stored (zero when it never
	// was).
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// Activity is the user's recent activity, most recent first.
	Activity Activity `json:"activity"`
}

// Activity is a user's recent activity as the feature store keeps it.
type Activity struct {
	// RecentItems are the items the user most recently clicked or converted
	// on.
	RecentItems []string `json:"recent_items"`
	// RecentCategories are the categories of those items.
	RecentCategories []string `json:"recent_categories"`
	// ClickedItems is the longer list of clicked items the server filters
	// out of the user's recommendations.
	ClickedItems []string `json:"clicked_items"`
}

// Erasure is what [Client.EraseUser] erased on the node that answered. The
// other nodes of a cluster erase the user's decisions when they apply the
// erasure from the event stream.
type Erasure struct {
	// Profile reports that a stored profile was deleted.
	Profile bool `json:"profile"`
	// Activity reports that stored recent activity was deleted.
	Activity bool `json:"activity"`
	// Decisions is how many of the user's recent decisions were dropped.
	Decisions int `json:"decisions"`
}

// Item is a catalog item, the body of PUT /v1/items/{item_id} and a line of
// the items import.
type Item struct {
	ItemID   string   `json:"item_id,omitempty"`
	Category string   `json:"category"`
	Tags     []string `json:"tags,omitempty"`
	// Available is false for items that must not be recommended.
	Available bool `json:"available"`
}

// ImportResult is the answer to an NDJSON import.
type ImportResult struct {
	// Imported counts the lines stored.
	Imported int `json:"imported"`
	// Rejected counts the lines refused.
	Rejected int `json:"rejected"`
	// Errors describes rejected lines (the server may cap the list).
	Errors []LineError `json:"errors"`
}

// LineError is one rejected line of an import.
type LineError struct {
	// Line is the 1-based line number in the uploaded file.
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// Stats is the server's rolling summary, from GET /v1/stats.
type Stats struct {
	RequestsPerSecond float64 `json:"requests_per_second"`
	Latency           Latency `json:"latency_ms"`
	// ErrorRate is the share of requests answered with a 5xx.
	ErrorRate float64 `json:"error_rate"`
	// FallbackRate is the share of recommendations served by the fallback.
	FallbackRate float64 `json:"fallback_rate"`
	// FallbackRateByReason splits FallbackRate by reason code.
	FallbackRateByReason map[string]float64 `json:"fallback_rate_by_reason"`
	// CTRByVariant is the engagement of each experiment variant.
	CTRByVariant    map[string]VariantCTR `json:"ctr_by_variant"`
	EventsPerSecond float64               `json:"events_per_second"`
	ModelVersion    string                `json:"model_version"`
	// WindowSeconds is the length of the window the rates cover.
	WindowSeconds float64 `json:"window_seconds"`
}

// Latency holds recommendation latency quantiles, in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
}

// VariantCTR is the click-through rate of one variant.
type VariantCTR struct {
	Impressions int64   `json:"impressions"`
	Clicks      int64   `json:"clicks"`
	CTR         float64 `json:"ctr"`
}
