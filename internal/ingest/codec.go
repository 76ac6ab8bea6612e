package ingest

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/sightline/sightline/internal/event"
)

// recordVersion is the first byte of every encoded event. A future change of
// the layout bumps it so old logs stay readable.
const recordVersion = 1

// AppendRecord appends the binary encoding of ev to dst and returns the
// extended buffer. The layout is a version byte, the type byte, then the
// fields as length-prefixed strings and varints:
//
//	version(1) type(1) id user item request channel
//	ts_seconds(varint) ts_nanos(uvarint) dwell_ms(varint) traceparent tracestate
//
// where each string is a uvarint length followed by its bytes. The timestamp
// keeps the instant, not the location: [DecodeRecord] returns it in UTC.
func AppendRecord(dst []byte, ev *event.Event) []byte {
	dst = append(dst, recordVersion, byte(ev.Type))
	dst = appendString(dst, ev.ID)
	dst = appendString(dst, ev.UserID)
	dst = appendString(dst, ev.ItemID)
	dst = appendString(dst, ev.RequestID)
	dst = appendString(dst, ev.Channel)
	dst = binary.AppendVarint(dst, ev.Timestamp.Unix())
	dst = binary.AppendUvarint(dst, uint64(ev.Timestamp.Nanosecond()))
	dst = binary.AppendVarint(dst, ev.DwellMS)
	dst = appendString(dst, ev.TraceParent)
	dst = appendString(dst, ev.TraceState)
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// DecodeRecord decodes an event encoded by [AppendRecord]. It checks every
// length against the input and rejects trailing bytes; on malformed input it
// returns an error wrapping [event.ErrCorrupt] and never panics. The decoded
// strings do not alias b.
func DecodeRecord(b []byte) (event.Event, error) {
	var ev event.Event
	d := decoder{b: b}
	if v := d.byte(); v != recordVersion {
		if d.err != nil {
			return ev, d.err
		}
		return ev, fmt.Errorf("decode record: unknown version %d: %w", v, event.ErrCorrupt)
	}
	ev.Type = event.Type(d.byte())
	ev.ID = d.string()
	ev.UserID = d.string()
	ev.ItemID = d.string()
	ev.RequestID = d.string()
	ev.Channel = d.string()
	sec := d.varint()
	nsec := d.uvarint()
	ev.DwellMS = d.varint()
	ev.TraceParent = d.string()
	ev.TraceState = d.string()
	if d.err != nil {
		return event.Event{}, d.err
	}
	if nsec >= uint64(time.Second) {
		return event.Event{}, fmt.Errorf("decode record: timestamp nanoseconds %d: %w", nsec, event.ErrCorrupt)
	}
	if len(d.b) != 0 {
		return event.Event{}, fmt.Errorf("decode record: %d trailing bytes: %w", len(d.b), event.ErrCorrupt)
	}
	ev.Timestamp = time.Unix(sec, int64(nsec)).UTC()
	return ev, nil
}

// recordID returns the event ID of an encoded event without decoding the
// rest. The result aliases b.
func recordID(b []byte) ([]byte, error) {
	d := decoder{b: b}
	if v := d.byte(); v != recordVersion && d.err == nil {
		return nil, fmt.Errorf("decode record: unknown version %d: %w", v, event.ErrCorrupt)
	}
	d.byte()
	id := d.bytes()
	return id, d.err
}

// decoder reads from b, remembering the first error; after an error every
// read returns a zero value.
type decoder struct {
	b   []byte
	err error
}

var (
	errShort   = fmt.Errorf("decode record: unexpected end of input: %w", event.ErrCorrupt)
	errVarint  = fmt.Errorf("decode record: malformed varint: %w", event.ErrCorrupt)
	errTooLong = fmt.Errorf("decode record: string longer than input: %w", event.ErrCorrupt)
)

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errShort
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		if n == 0 {
			d.err = errShort
		} else {
			d.err = errVarint
		}
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	// A signed varint is a zig-zag encoded unsigned one (encoding/binary).
	u := d.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errTooLong
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

func (d *decoder) string() string {
	return string(d.bytes())
}
