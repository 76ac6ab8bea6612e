package api

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
)

// Limits of a recommendation request.
const (
	maxCount       = 100
	defaultCount   = 10
	maxExclude     = 500
	maxSessionLen  = 128
	maxPageLen     = 256
	maxChannelLen  = event.MaxChannelLen
	maxIDLen       = event.MaxIDLen
	maxDetailValue = 64 // longest user-supplied value quoted back in a detail
)

// recommendRequest is the body of POST /v1/recommendations.
type recommendRequest struct {
	UserID  string `json:"user_id"`
	Count   int    `json:"count"`
	Context struct {
		Channel   string `json:"channel"`
		SessionID string `json:"session_id"`
		Page      string `json:"page"`
	} `json:"context"`
	ExcludeItemIDs []string `json:"exclude_item_ids"`
}

// decodeRecommendation decodes and validates a recommendation request body
// read from r (already limited by an http.MaxBytesReader).
func decodeRecommendation(r io.Reader) (engine.Request, *problem) {
	req := recommendRequest{Count: defaultCount}
	if p := decodeStrict(r, &req); p != nil {
		return engine.Request{}, p
	}
	out := engine.Request{
		UserID: req.UserID, Count: req.Count, Channel: req.Context.Channel,
		SessionID: req.Context.SessionID, Page: req.Context.Page, Exclude: req.ExcludeItemIDs,
	}
	return out, validateRequest(&out, "context.")
}

// validateRequest checks a recommendation request, reporting every invalid
// field. ctxPrefix names where channel, session_id and page came from.
func validateRequest(req *engine.Request, ctxPrefix string) *problem {
	// Field names are built only for a failing field: a valid request, the
	// common case, allocates nothing here.
	if checkID("user_id", req.UserID, true) == "" && req.Count >= 1 && req.Count <= maxCount &&
		validChannel(req.Channel) && validText(req.SessionID, maxSessionLen) && validText(req.Page, maxPageLen) &&
		validExclude(req.Exclude) {
		return nil
	}
	var errs []FieldError
	add := func(field, detail string) {
		if detail != "" {
			errs = append(errs, FieldError{Field: field, Detail: detail})
		}
	}
	add("user_id", checkID("user_id", req.UserID, true))
	if req.Count < 1 || req.Count > maxCount {
		add("count", fmt.Sprintf("count must be between 1 and %d, got %d", maxCount, req.Count))
	}
	add(ctxPrefix+"channel", checkChannel(ctxPrefix+"channel", req.Channel))
	add(ctxPrefix+"session_id", checkText(ctxPrefix+"session_id", req.SessionID, maxSessionLen))
	add(ctxPrefix+"page", checkText(ctxPrefix+"page", req.Page, maxPageLen))
	if len(req.Exclude) > maxExclude {
		add("exclude_item_ids", fmt.Sprintf("exclude_item_ids may hold at most %d ids, got %d", maxExclude, len(req.Exclude)))
	} else {
		for i, id := range req.Exclude {
			f := "exclude_item_ids[" + strconv.Itoa(i) + "]"
			if d := checkID(f, id, true); d != "" {
				add(f, d)
				break
			}
		}
	}
	return fieldProblem(errs)
}

// validChannel, validText and validExclude are the checks of checkChannel,
// checkText and checkID over exclude_item_ids without building a detail.
func validChannel(v string) bool {
	if len(v) > maxChannelLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validText(v string, limit int) bool { return len(v) <= limit && printable(v) }

func validExclude(ids []string) bool {
	if len(ids) > maxExclude {
		return false
	}
	for _, id := range ids {
		if id == "" || len(id) > maxIDLen || !printable(id) {
			return false
		}
	}
	return true
}

// fieldProblem turns field errors into one 400 problem whose detail is the
// first error, or nil when there are none.
func fieldProblem(errs []FieldError) *problem {
	if len(errs) == 0 {
		return nil
	}
	p := badRequest(errs[0].Detail)
	if len(errs) > 1 {
		p.errors = errs
	}
	return p
}

// checkID validates an identifier: 1..128 bytes of UTF-8 without control
// characters. It returns what to fix, or "".
func checkID(field, v string, required bool) string {
	if v == "" {
		if required {
			return field + " is required"
		}
		return ""
	}
	if len(v) > maxIDLen {
		return fmt.Sprintf("%s must be at most %d bytes, got %d", field, maxIDLen, len(v))
	}
	if !printable(v) {
		return field + " must be valid UTF-8 without control characters"
	}
	return ""
}

// checkText validates optional free text up to limit bytes.
func checkText(field, v string, limit int) string {
	if len(v) > limit {
		return fmt.Sprintf("%s must be at most %d bytes, got %d", field, limit, len(v))
	}
	if !printable(v) {
		return field + " must be valid UTF-8 without control characters"
	}
	return ""
}

// checkChannel validates an optional channel: at most 64 bytes of
// [a-z0-9_-].
func checkChannel(field, v string) string {
	if len(v) > maxChannelLen {
		return fmt.Sprintf("%s must be at most %d bytes, got %d", field, maxChannelLen, len(v))
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return fmt.Sprintf("%s must contain only lowercase letters, digits, '_' and '-', got %s", field, quote(v))
		}
	}
	return ""
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}

// quote quotes a user-supplied value for a detail, shortened when long.
func quote(s string) string {
	if len(s) > maxDetailValue {
		return strconv.Quote(s[:maxDetailValue]) + "..."
	}
	return strconv.Quote(s)
}

// decodeStrict decodes exactly one JSON value from r into v: unknown fields
// and trailing data are errors.
// The body must be UTF-8 with no lone surrogate escapes (see textReader).
func decodeStrict(r io.Reader, v any) *problem {
	dec := json.NewDecoder(&textReader{r: r})
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonProblem(err, "")
	}
	if _, err := dec.Token(); err != io.EOF {
		return trailingProblem(err, "unexpected data after the JSON value in request body; send exactly one JSON value")
	}
	return nil
}

// trailingProblem explains err, met when reading on after the JSON value
// of a body: detail unless the reader failed.
func trailingProblem(err error, detail string) *problem {
	if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return tooLarge(mbe.Limit)
	}
	if te, ok := errors.AsType[*textError](err); ok {
		return badRequest(te.Error())
	}
	return badRequest(detail)
}

// jsonProblem explains a decoding error. prefix (e.g. "event 3: ") locates
// the value inside the body.
func jsonProblem(err error, prefix string) *problem {
	if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return tooLarge(mbe.Limit)
	}
	if fatal := syntaxDetail(err); fatal != "" {
		return badRequest(fatal)
	}
	if ute, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && ute.Field == "" {
		return badRequest(fmt.Sprintf("%srequest body must be a JSON %s, got %s", prefix, jsonKind(ute.Type), valueKind(ute.Value)))
	}
	return badRequest(prefix + valueDetail(err))
}

// syntaxDetail describes errors after which the body cannot be read on, or
// returns "".
func syntaxDetail(err error) string {
	if te, ok := errors.AsType[*textError](err); ok {
		return te.Error()
	}
	switch {
	case errors.Is(err, io.EOF):
		return "request body is empty; send a JSON value"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: the request body ends before the JSON value is complete"
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("malformed JSON at byte offset %d: %s", se.Offset, se.Error())
	}
	return ""
}

// valueDetail describes an error confined to one value (wrong type, unknown
// field, bad enum or timestamp).
func valueDetail(err error) string {
	if ute, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		want := jsonKind(ute.Type)
		got := valueKind(ute.Value)
		if want == "number" && strings.HasPrefix(ute.Value, "number") {
			return fmt.Sprintf("field %s: expected an integer in range, got %s", ute.Field, ute.Value)
		}
		return fmt.Sprintf("field %s: expected %s, got %s", ute.Field, want, got)
	}
	if pe, ok := errors.AsType[*time.ParseError](err); ok {
		return fmt.Sprintf("field timestamp: expected an RFC 3339 time such as \"2026-01-02T15:04:05Z\", got %s", quote(pe.Value))
	}
	if errors.Is(err, event.ErrUnknownType) {
		return "field type: " + err.Error()
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return "unknown field " + f + " in request body; remove it or check its spelling"
	}
	if strings.HasPrefix(msg, "Time.UnmarshalJSON") {
		return "field timestamp: expected an RFC 3339 time string such as \"2026-01-02T15:04:05Z\""
	}
	return strings.TrimPrefix(msg, "json: ")
}

// jsonKind names the JSON type that decodes into t.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "value"
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) && t.Kind() != reflect.Struct {
		return "string"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "value"
}

// valueKind turns UnmarshalTypeError.Value ("number 1.5", "bool") into a
// JSON type name.
func valueKind(v string) string {
	switch {
	case strings.HasPrefix(v, "number"):
		return "number"
	case v == "bool":
		return "boolean"
	}
	return v
}

// eventsResponse is the body of a 202 answer to POST /v1/events.
type eventsResponse struct {
	Accepted   int         `json:"accepted"`
	Duplicates int         `json:"duplicates"`
	Rejected   []Rejection `json:"rejected"`
}

// Rejection is one invalid event of a batch: its index in the batch and what
// to fix.
type Rejection struct {
	Index int    `json:"index"`
	Error string `json:"error"`
}

// Defaults for [EventTimeLimits], for nodes that bound event times.
const (
	// DefaultEventMaxSkew is how far ahead of the server's clock an event
	// may be stamped: clients' clocks drift, but not by much more.
	DefaultEventMaxSkew = 5 * time.Minute
	// DefaultEventMaxAge is how old an event may be: the event log's
	// default retention (7 days), so nothing is learned from an event older
	// than the log keeps events.
	DefaultEventMaxAge = 7 * 24 * time.Hour
)

// EventTimeLimits bounds the timestamps that POST /v1/events accepts,
// relative to the server's clock when the batch arrives. An event stamped
// outside them is rejected on its own, with the reason, as any other
// invalid event is; an event without a timestamp gets the server's time.
// The zero value sets no bound. The zero time, 0001-01-01T00:00:00Z, is
// rejected always: it is an unset clock, not a time.
type EventTimeLimits struct {
	// MaxSkew is how far in the future a timestamp may be; zero means no
	// bound.
	MaxSkew time.Duration
	// MaxAge is how far in the past a timestamp may be; zero means no
	// bound.
	MaxAge time.Duration
}

// check returns why an event stamped ts is not accepted at now, or "".
func (l EventTimeLimits) check(ts, now time.Time) string {
	const layout = time.RFC3339Nano
	switch {
	case ts.IsZero():
		return "timestamp 0001-01-01T00:00:00Z is the zero time, not when the event happened; send the time of the interaction, or omit timestamp to use the server's time"
	case l.MaxSkew > 0 && ts.After(now.Add(l.MaxSkew)):
		return fmt.Sprintf("timestamp %s is more than %s ahead of the server's clock (%s); check the client's clock, or omit timestamp to use the server's time",
			ts.Format(layout), l.MaxSkew, now.Format(time.RFC3339))
	case l.MaxAge > 0 && ts.Before(now.Add(-l.MaxAge)):
		return fmt.Sprintf("timestamp %s is more than %s before the server's clock (%s); events that old are not accepted",
			ts.Format(layout), l.MaxAge, now.Format(time.RFC3339))
	}
	return ""
}

// absent is the location of the placeholder timestamp each event is
// decoded onto: a timestamp still in it afterwards was not in the body (or
// was null), unlike an explicit 0001-01-01T00:00:00Z.
var absent = time.FixedZone("absent", 0)

// decodeEventsWithin reads a JSON array of events from r, at most maxBatch
// of them. Invalid events, and events stamped outside lim at now, are
// returned as rejections; a body that is not an array of objects, is not
// UTF-8 or is too large is a problem, and so is a batch of one event that
// is rejected (the answer is then the reason, not a list). Events without
// a timestamp get now.
func decodeEventsWithin(r io.Reader, maxBatch int, now time.Time, lim EventTimeLimits) ([]event.Event, []Rejection, *problem) {
	dec := json.NewDecoder(&textReader{r: r})
	dec.DisallowUnknownFields()
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, jsonProblem(err, "")
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, nil, badRequest("request body must be a JSON array of events, got " + tokenKind(tok))
	}
	evs := make([]event.Event, 0, 16)
	var rejected []Rejection
	unset := time.Time{}.In(absent)
	n := 0
	for ; dec.More(); n++ {
		i := n
		if i >= maxBatch {
			return nil, nil, &problem{status: http.StatusRequestEntityTooLarge, slug: slugTooLarge,
				detail: fmt.Sprintf("batch has more than %d events; send at most %d events per request", maxBatch, maxBatch)}
		}
		evs = append(evs, event.Event{Timestamp: unset})
		pe := &evs[len(evs)-1]
		err := dec.Decode(&pe)
		if err == nil && pe == nil {
			return nil, nil, badRequest(fmt.Sprintf("event %d: expected a JSON object, got null", i))
		}
		if err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok || syntaxDetail(err) != "" {
				return nil, nil, jsonProblem(err, "")
			}
			if ute, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && ute.Field == "" {
				return nil, nil, badRequest(fmt.Sprintf("event %d: expected a JSON object, got %s", i, valueKind(ute.Value)))
			}
			rejected = append(rejected, Rejection{Index: i, Error: valueDetail(err)})
			evs = evs[:len(evs)-1]
			continue
		}
		if d := validateEvent(pe); d != "" {
			rejected = append(rejected, Rejection{Index: i, Error: d})
			evs = evs[:len(evs)-1]
			continue
		}
		if pe.Timestamp.Location() == absent {
			pe.Timestamp = now
		} else if d := lim.check(pe.Timestamp, now); d != "" {
			rejected = append(rejected, Rejection{Index: i, Error: d})
			evs = evs[:len(evs)-1]
			continue
		}
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, nil, jsonProblem(err, "")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, trailingProblem(err, "unexpected data after the JSON array in request body; send exactly one array")
	}
	if n == 1 && len(rejected) == 1 {
		return nil, nil, badRequest("event 0: " + rejected[0].Error)
	}
	if rejected == nil {
		rejected = []Rejection{}
	}
	return evs, rejected, nil
}

// validateEvent returns what is wrong with e, or "".
func validateEvent(e *event.Event) string {
	if err := e.Validate(); err != nil {
		msg := err.Error()
		switch {
		case errors.Is(err, event.ErrMissingField):
			return msg + "; set it"
		case errors.Is(err, event.ErrUnknownType):
			return msg + "; set type to impression, click or conversion"
		}
		return msg
	}
	for _, f := range [...]struct{ name, v string }{
		{"event_id", e.ID}, {"user_id", e.UserID}, {"item_id", e.ItemID}, {"request_id", e.RequestID},
	} {
		if d := checkID(f.name, f.v, false); d != "" {
			return d
		}
	}
	return checkChannel("channel", e.Channel)
}

func tokenKind(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			return "object"
		}
		return "array"
	case string:
		return "string"
	case float64, json.Number:
		return "number"
	case bool:
		return "boolean"
	case nil:
		return "null"
	}
	return "a value of another type"
}
