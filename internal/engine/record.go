package engine

import (
	"encoding/hex"
	"errors"

	"go.opentelemetry.io/otel/trace"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
)

// RecordVersion is the schema version of an encoded decision record, its
// first byte. A record is what the engine keeps of a decision for the event
// path: the decision (request id, time, user pseudonym, variant, model
// version, features seen with nulls as nulls, the shown items with score and
// propensity, confidence, fallback, stage timings, trace) and the model
// context it was scored with. It travels unchanged from an API node to the
// trainer on the decision stream; docs/decision-stream.md documents the
// layout. A new field is appended at the end with a new version; readers
// read every version from [MinRecordVersion] on (a trainer reads the records
// of API nodes not yet upgraded) and reject the others. Version 2 added the
// exploration settings and the candidate pool.
const RecordVersion byte = 2

// MinRecordVersion is the oldest record version readers accept.
const MinRecordVersion byte = 1

// knownVersion reports whether a record's first byte is a version readers
// accept.
func knownVersion(v byte) bool { return v >= MinRecordVersion && v <= RecordVersion }

// ErrBadRecord reports a decision record that is truncated, malformed or of
// an unknown RecordVersion.
var ErrBadRecord = errors.New("engine: malformed decision record")

// Ring keeps the encoded records of recent decisions by request id, bounded
// in count and bytes, oldest overwritten first. The engine keeps one of its
// own ([Engine.Ring]); a trainer fills one from the decision stream with
// Put. All methods are goroutine-safe.
type Ring struct{ r *ring }

// NewRing returns a ring of n records (default 50,000 when n ≤ 0).
func NewRing(n int) *Ring {
	if n <= 0 {
		n = 50_000
	}
	return &Ring{r: newRing(n)}
}

// Put stores an encoded record, as [Config].OnRecord passes it. It copies
// rec. It fails with ErrBadRecord on a record it cannot read.
func (r *Ring) Put(rec []byte) error {
	rd := reader{b: rec}
	if len(rec) == 0 || !knownVersion(rd.byte()) {
		return ErrBadRecord
	}
	id := rd.bytes()
	if rd.err || len(id) == 0 {
		return ErrBadRecord
	}
	r.r.put(string(id), rec)
	return nil
}

// Joined returns what the model saw when decision requestID showed item
// itemID: the model context and the item as shown. ok is false when the
// decision is no longer kept or did not show the item. It does not
// allocate beyond the recent-categories slice; the model updater calls it
// for every impression and click.
func (r *Ring) Joined(requestID, itemID string) (x model.Context, it event.Item, ok bool) {
	j, ok := r.r.joined(requestID, itemID)
	return j.Context, j.Item, ok
}

// TraceOf returns the span context of the recommendation requestID, for
// linking an event of type t to it. The context is marked sampled when the
// recommendation's trace is kept and events of type t follow it: a
// head-sampled recommendation is followed by all its events; one kept only
// by tail retention (a fallback) by its clicks and conversions, so
// impressions, ten per request, do not crowd the flight recorder.
func (r *Ring) TraceOf(requestID string, t event.Type) (trace.SpanContext, bool) {
	d, ok := r.r.trace(requestID)
	if !ok || !d.TraceID.IsValid() || !d.SpanID.IsValid() {
		return trace.SpanContext{}, false
	}
	var flags trace.TraceFlags
	if d.Sampled || (d.Fallback != ReasonNone && t != event.Impression) {
		flags = trace.FlagsSampled
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: d.TraceID, SpanID: d.SpanID, TraceFlags: flags}), true
}

// Decision returns a recent decision by request id, decoded.
func (r *Ring) Decision(requestID string) (*Decision, bool) {
	d, _, ok := r.r.get(requestID)
	return d, ok
}

// DecodeRecord decodes an encoded record into the decision and the model
// context it was scored with.
func DecodeRecord(rec []byte) (*Decision, *model.Context, error) {
	if len(rec) == 0 || !knownVersion(rec[0]) {
		return nil, nil, ErrBadRecord
	}
	d, x, ok := decodeChecked(rec)
	if !ok {
		return nil, nil, ErrBadRecord
	}
	return d, x, nil
}

// traceIDs decodes hex trace and span ids.
func traceIDs(tid, sid []byte) (trace.TraceID, trace.SpanID, bool) {
	var t trace.TraceID
	var s trace.SpanID
	if len(tid) != 2*len(t) || len(sid) != 2*len(s) {
		return t, s, false
	}
	if _, err := hex.Decode(t[:], tid); err != nil {
		return t, s, false
	}
	if _, err := hex.Decode(s[:], sid); err != nil {
		return t, s, false
	}
	return t, s, true
}
