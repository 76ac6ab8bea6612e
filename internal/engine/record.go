package engine

import (
	"encoding/hex"
	"errors"
	"slices"
	"time"
	"unsafe"

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

// RecordDecoder decodes encoded records into one Decision and model context
// that it reuses from record to record, so that a reader of every decision
// (the Parquet decision log's writer) allocates nothing per record once the
// decoder has warmed up. The zero value is ready to use. A RecordDecoder is
// not safe for concurrent use.
type RecordDecoder struct {
	d Decision
	x model.Context
	// The backing arrays of the slices and the map of d and x, kept while
	// a record has none.
	items    []Item
	pool     []PoolItem
	stages   []StageTiming
	recent   []string
	features map[string]*string
	// vals backs the feature values d.Features points to.
	vals []string
	// names interns the feature names, a small set.
	names map[string]string
}

// maxFeatureNames bounds the decoder's table of feature names; it is reset
// when full.
const maxFeatureNames = 256

// Decode decodes rec, as [DecodeRecord] does, into the decoder's Decision
// and model context, which stay valid until the next call of Decode. Their
// strings, feature names excepted, alias rec: the caller must neither
// change nor reuse rec while it uses them, and must copy what it keeps
// longer. A record that does not decode returns ErrBadRecord.
func (dec *RecordDecoder) Decode(rec []byte) (*Decision, *model.Context, error) {
	if len(rec) == 0 || !knownVersion(rec[0]) {
		return nil, nil, ErrBadRecord
	}
	d, x := &dec.d, &dec.x
	*d = Decision{}
	*x = model.Context{}

	rd := reader{b: rec}
	version := rd.byte()
	d.RequestID = rd.str()
	d.Time = time.Unix(0, rd.varint())
	d.UserHash = rd.str()
	d.KnownUser = rd.byte() == 1
	d.Segment = rd.str()
	d.Channel = rd.str()
	d.Variant = rd.str()
	d.ModelVersion = rd.str()
	if n := rd.countFast(); n > 0 {
		if dec.features == nil {
			dec.features = make(map[string]*string, n)
		}
		clear(dec.features)
		if cap(dec.vals) < n {
			dec.vals = make([]string, n)
		}
		vals := dec.vals[:n]
		for i := range n {
			name := dec.name(rd.bytesFast())
			if rd.byte() == 1 {
				vals[i] = rd.str()
				dec.features[name] = &vals[i]
			} else {
				dec.features[name] = nil
			}
		}
		d.Features = dec.features
	}
	d.Candidates = int(rd.uvarintFast())
	if n := rd.countFast(); n > 0 {
		dec.items = slices.Grow(dec.items[:0], n)[:n]
		for i := range dec.items {
			it := &dec.items[i]
			it.ItemID, it.Category = rd.str(), rd.str()
			it.Score = rd.float()
			it.Reason = rd.str()
			it.Propensity = rd.float()
		}
		d.Items = dec.items
	}
	d.Confidence = rd.float()
	d.Fallback = Reason(rd.str())
	d.FallbackDetail = rd.str()
	if n := rd.countFast(); n > 0 {
		dec.stages = slices.Grow(dec.stages[:0], n)[:n]
		for i := range dec.stages {
			st := &dec.stages[i]
			st.Stage = rd.str()
			st.Duration = time.Duration(rd.varint())
			st.Error = rd.str()
		}
		d.Stages = dec.stages
	}
	d.Duration = time.Duration(rd.varint())
	d.TraceID = rd.str()
	d.SpanID = rd.str()
	d.TraceSampled = rd.byte() == 1
	x.User.AgeBucket = rd.str()
	x.User.Segment = rd.str()
	x.User.Region = rd.str()
	x.User.Device = rd.str()
	x.Channel = rd.str()
	x.Hour = int(rd.varint())
	if n := rd.countFast(); n > 0 {
		dec.recent = slices.Grow(dec.recent[:0], n)[:n]
		for i := range dec.recent {
			dec.recent[i] = rd.str()
		}
		x.RecentCategories = dec.recent
	}
	if version >= 2 {
		d.Eligible = int(rd.uvarintFast())
		d.Explore = rd.float()
		d.ExploreTop = int(rd.uvarintFast())
		if n := rd.countFast(); n > 0 {
			dec.pool = slices.Grow(dec.pool[:0], n)[:n]
			for i := range dec.pool {
				p := &dec.pool[i]
				p.ItemID, p.Category = rd.str(), rd.str()
				p.Score = rd.float()
				p.Popularity = rd.float()
			}
			d.Pool = dec.pool
		}
	}
	if rd.err {
		return nil, nil, ErrBadRecord
	}
	return d, x, nil
}

// name returns the feature name b, interned.
func (dec *RecordDecoder) name(b []byte) string {
	if s, ok := dec.names[string(b)]; ok {
		return s
	}
	if dec.names == nil || len(dec.names) >= maxFeatureNames {
		dec.names = make(map[string]string)
	}
	s := string(b)
	dec.names[s] = s
	return s
}

// The reads below are the reader's (ring.go) with a fast path, small
// enough to be inlined, for the common one-byte length: the decision log's
// writer reads some hundred fields of every decision.

// uvarintFast is uvarint.
func (r *reader) uvarintFast() uint64 {
	b := r.b
	if len(b) == 0 || b[0] >= 0x80 {
		return r.uvarint()
	}
	r.b = b[1:]
	return uint64(b[0])
}

// countFast is count.
func (r *reader) countFast() int {
	b := r.b
	if len(b) == 0 || b[0] >= 0x80 || int(b[0]) >= len(b) {
		return r.count()
	}
	r.b = b[1:]
	return int(b[0])
}

// bytesFast is bytes.
func (r *reader) bytesFast() []byte {
	b := r.b
	if len(b) == 0 || b[0] >= 0x80 || int(b[0]) >= len(b) {
		return r.bytes()
	}
	n := int(b[0]) + 1
	r.b = b[n:]
	return b[1:n:n]
}

// str is bytes as a string aliasing the record.
func (r *reader) str() string {
	b := r.b
	if len(b) < 2 || b[0] >= 0x80 || int(b[0]) >= len(b) {
		return alias(r.bytes())
	}
	n := int(b[0])
	r.b = b[n+1:]
	return unsafe.String(&b[1], n)
}

// alias returns the bytes of b as a string without copying them.
func alias(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
