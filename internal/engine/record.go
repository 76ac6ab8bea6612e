package engine

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
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
// exploration settings and the candidate pool, version 3 a shadow
// challenger's would-be answer.
const RecordVersion byte = 3

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

// NewRing returns a ring of n records (default 50,000 when n ≤ 0) of
// decisions that log a pool of up to pool candidates ([Config].PoolSize),
// which sizes its arena.
func NewRing(n, pool int) *Ring {
	if n <= 0 {
		n = 50_000
	}
	return &Ring{r: newRing(n, pool)}
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
	// flat backs the features DecodeFlat returns.
	flat []RecordFeature
	// shadow, shadowItems and shadowScores back d.Shadow.
	shadow       Shadow
	shadowItems  []string
	shadowScores []float64
}

// RecordFeature is one feature of a record as [RecordDecoder.DecodeFlat]
// returns it: its name and, unless Null, the value the model saw.
type RecordFeature struct {
	Name  string
	Value string
	Null  bool
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
	d, x, _, err := dec.decode(rec, false)
	return d, x, err
}

// decode is Decode, or, when flat, DecodeFlat's slow path.
func (dec *RecordDecoder) decode(rec []byte, flat bool) (*Decision, *model.Context, []RecordFeature, error) {
	if len(rec) == 0 || !knownVersion(rec[0]) {
		return nil, nil, nil, ErrBadRecord
	}
	d, x := &dec.d, &dec.x
	feats := dec.flat[:0]
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
	if n := rd.countFast(); n > 0 && flat {
		feats = slices.Grow(feats, n)[:n]
		for i := range feats {
			f := &feats[i]
			f.Name = rd.str()
			if f.Null = rd.byte() != 1; f.Null {
				f.Value = ""
			} else {
				f.Value = rd.str()
			}
		}
	} else if n > 0 {
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
	if version >= 3 && rd.byte() == 1 {
		s := &dec.shadow
		*s = Shadow{ModelVersion: rd.str()}
		if n := rd.countFast(); n > 0 {
			dec.shadowItems = slices.Grow(dec.shadowItems[:0], n)[:n]
			dec.shadowScores = slices.Grow(dec.shadowScores[:0], n)[:n]
			for i := range dec.shadowItems {
				dec.shadowItems[i] = rd.str()
				dec.shadowScores[i] = rd.float()
			}
			s.Items, s.Scores = dec.shadowItems, dec.shadowScores
		}
		s.Overlap = int(rd.uvarintFast())
		s.Duration = time.Duration(rd.varint())
		s.Error = rd.str()
		d.Shadow = s
	}
	if rd.err {
		return nil, nil, nil, ErrBadRecord
	}
	dec.flat = feats
	return d, x, feats, nil
}

// DecodeFlat is [RecordDecoder.Decode] without the features map: the
// Decision's Features is nil and its features are returned instead, in
// record order (were a name to repeat, the last one stands for it, as in
// the map), valid until the next call. Their names alias rec too. A reader
// that looks for a few known features (the decision log's writer) spares
// the map's cost.
func (dec *RecordDecoder) DecodeFlat(rec []byte) (*Decision, *model.Context, []RecordFeature, error) {
	if d, x, feats, ok := dec.decodeLean(rec); ok {
		return d, x, feats, nil
	}
	return dec.decode(rec, true)
}

// decodeLean is DecodeFlat's fast path, for the records whose strings are
// shorter than 128 bytes and whose counts and lengths, and candidate and
// eligible counts, take one or two bytes (nearly all): it reports false on
// any other record, valid or not, which decode then reads.
func (dec *RecordDecoder) decodeLean(rec []byte) (*Decision, *model.Context, []RecordFeature, bool) {
	if len(rec) == 0 || !knownVersion(rec[0]) {
		return nil, nil, nil, false
	}
	d, x := &dec.d, &dec.x
	*d = Decision{}
	*x = model.Context{}
	version, b := rec[0], rec[1:]
	var u uint64
	var i int64
	var c byte
	d.RequestID, b = leanStr(b)
	i, b = leanVarint(b)
	d.Time = time.Unix(0, i)
	d.UserHash, b = leanStr(b)
	c, b = leanByte(b)
	d.KnownUser = c == 1
	d.Segment, b = leanStr(b)
	d.Channel, b = leanStr(b)
	d.Variant, b = leanStr(b)
	d.ModelVersion, b = leanStr(b)
	n, b := leanCount(b)
	feats := slices.Grow(dec.flat[:0], n)[:n]
	for k := range feats {
		f := &feats[k]
		f.Name, b = leanStr(b)
		c, b = leanByte(b)
		if f.Null = c != 1; f.Null {
			f.Value = ""
		} else {
			f.Value, b = leanStr(b)
		}
	}
	dec.flat = feats
	u, b = leanUvarint(b)
	d.Candidates = int(u)
	if n, b = leanCount(b); n > 0 {
		dec.items = slices.Grow(dec.items[:0], n)[:n]
		for k := range dec.items {
			it := &dec.items[k]
			it.ItemID, b = leanStr(b)
			it.Category, b = leanStr(b)
			it.Score, b = leanFloat(b)
			it.Reason, b = leanStr(b)
			it.Propensity, b = leanFloat(b)
		}
		d.Items = dec.items
	}
	d.Confidence, b = leanFloat(b)
	var fallback string
	fallback, b = leanStr(b)
	d.Fallback = Reason(fallback)
	d.FallbackDetail, b = leanStr(b)
	if n, b = leanCount(b); n > 0 {
		dec.stages = slices.Grow(dec.stages[:0], n)[:n]
		for k := range dec.stages {
			st := &dec.stages[k]
			st.Stage, b = leanStr(b)
			i, b = leanVarint(b)
			st.Duration = time.Duration(i)
			st.Error, b = leanStr(b)
		}
		d.Stages = dec.stages
	}
	i, b = leanVarint(b)
	d.Duration = time.Duration(i)
	d.TraceID, b = leanStr(b)
	d.SpanID, b = leanStr(b)
	c, b = leanByte(b)
	d.TraceSampled = c == 1
	x.User.AgeBucket, b = leanStr(b)
	x.User.Segment, b = leanStr(b)
	x.User.Region, b = leanStr(b)
	x.User.Device, b = leanStr(b)
	x.Channel, b = leanStr(b)
	i, b = leanVarint(b)
	x.Hour = int(i)
	if n, b = leanCount(b); n > 0 {
		dec.recent = slices.Grow(dec.recent[:0], n)[:n]
		for k := range dec.recent {
			dec.recent[k], b = leanStr(b)
		}
		x.RecentCategories = dec.recent
	}
	if version >= 2 {
		u, b = leanUvarint(b)
		d.Eligible = int(u)
		d.Explore, b = leanFloat(b)
		u, b = leanUvarint(b)
		d.ExploreTop = int(u)
		if n, b = leanCount(b); n > 0 {
			dec.pool = slices.Grow(dec.pool[:0], n)[:n]
			for k := range dec.pool {
				p := &dec.pool[k]
				p.ItemID, b = leanStr(b)
				p.Category, b = leanStr(b)
				p.Score, b = leanFloat(b)
				p.Popularity, b = leanFloat(b)
			}
			d.Pool = dec.pool
		}
	}
	if version >= 3 {
		if c, b = leanByte(b); c == 1 {
			// Rare (a challenger in shadow): decode reads it.
			return nil, nil, nil, false
		}
	}
	if b == nil {
		return nil, nil, nil, false
	}
	return d, x, feats, true
}

// The lean reads of decodeLean: each takes the bytes left and returns what
// it read and the bytes after it. A read past the end, of a malformed
// varint or length, or of one longer than the lean reads handle, returns
// nil bytes, on which every later read fails too, so decodeLean checks
// once, at the end (a record's bytes are never nil, nor are the bytes
// after a read that succeeded). Plain functions of a local slice, small
// enough to be inlined, unlike the reader's methods, they let the compiler
// keep the slice in registers: the decision log's writer reads some
// hundred fields of every decision.

// leanStr reads a string of a one-byte length, aliasing the record.
func leanStr(b []byte) (string, []byte) {
	if len(b) < 2 || b[0] >= 0x80 || int(b[0]) >= len(b) {
		return "", nil
	}
	n := int(b[0]) + 1
	return unsafe.String(&b[1], n-1), b[n:]
}

// leanCount reads a count of one byte, bounded by the bytes left.
func leanCount(b []byte) (int, []byte) {
	if len(b) == 0 || b[0] >= 0x80 || int(b[0]) >= len(b) {
		return 0, nil
	}
	return int(b[0]), b[1:]
}

// leanUvarint reads an unsigned varint of one or two bytes.
func leanUvarint(b []byte) (uint64, []byte) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), b[1:]
	}
	if len(b) > 1 && b[1] < 0x80 {
		return uint64(b[0]&0x7f) | uint64(b[1])<<7, b[2:]
	}
	return 0, nil
}

func leanVarint(b []byte) (int64, []byte) {
	v, n := binary.Varint(b)
	if n <= 0 {
		return 0, nil
	}
	return v, b[n:]
}

func leanByte(b []byte) (byte, []byte) {
	if len(b) == 0 {
		return 0, nil
	}
	return b[0], b[1:]
}

func leanFloat(b []byte) (float64, []byte) {
	if len(b) < 8 {
		return 0, nil
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(b)), b[8:]
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
