package event

import (
	"errors"
	"fmt"
	"time"
)

// Type is the kind of an interaction event.
type Type uint8

// The event types. The zero value is invalid so that a forgotten field is
// caught by [Event.Validate].
const (
	TypeInvalid Type = iota
	Impression
	Click
	Conversion
	// Erasure is not an interaction: it is the record DELETE
	// /v1/users/{user_id} puts on the event stream, so that every consumer
	// of the stream drops the user in order with the user's events (the
	// activity writer erases the activity applied before it; a node drops
	// the user's recent decisions). Only UserID, ID and Timestamp are set.
	// Clients cannot send it: ParseType and Validate reject it.
	Erasure
)

// String returns the wire name of t ("impression", "click", "conversion").
func (t Type) String() string {
	switch t {
	case Impression:
		return "impression"
	case Click:
		return "click"
	case Conversion:
		return "conversion"
	case Erasure:
		return "erasure"
	}
	return "invalid"
}

// ParseType returns the Type named s.
func ParseType(s string) (Type, error) {
	switch s {
	case "impression":
		return Impression, nil
	case "click":
		return Click, nil
	case "conversion":
		return Conversion, nil
	}
	return TypeInvalid, fmt.Errorf("%w %q: want impression, click or conversion", ErrUnknownType, s)
}

// MarshalText implements encoding.TextMarshaler.
func (t Type) MarshalText() ([]byte, error) {
	if t == TypeInvalid || t > Conversion {
		return nil, ErrUnknownType
	}
	return []byte(t.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *Type) UnmarshalText(b []byte) error {
	v, err := ParseType(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// Limits on identifier and field sizes, enforced by Validate.
const (
	MaxIDLen      = 128
	MaxChannelLen = 64
	MaxDwell      = 24 * time.Hour
)

// Validation errors. Callers match them with errors.Is.
var (
	// ErrUnknownType reports an event type outside impression, click, conversion.
	ErrUnknownType = errors.New("unknown event type")
	// ErrMissingField reports a required field that is empty.
	ErrMissingField = errors.New("missing required field")
	// ErrFieldTooLong reports an identifier longer than its limit.
	ErrFieldTooLong = errors.New("field too long")
	// ErrInvalidValue reports a field with a value out of range.
	ErrInvalidValue = errors.New("invalid value")
	// ErrCorrupt reports an encoded record that cannot be decoded.
	ErrCorrupt = errors.New("corrupt event encoding")
)

// Event is one user interaction, answering the recommendation identified by
// RequestID. JSON tags are the wire format of POST /v1/events.
type Event struct {
	// ID is the client-chosen idempotency key; events are applied once per ID.
	ID   string `json:"event_id"`
	Type Type   `json:"type"`
	// UserID is the raw user identifier. It never leaves the process in logs
	// or span attributes; use a pseudonymized hash there.
	UserID string `json:"user_id"`
	ItemID string `json:"item_id"`
	// RequestID joins the event to the decision that produced the item. It is
	// optional: organic events have none.
	RequestID string    `json:"request_id,omitempty"`
	Channel   string    `json:"channel,omitempty"`
	Timestamp time.Time `json:"timestamp"`
	DwellMS   int64     `json:"dwell_ms,omitempty"`

	// TraceParent and TraceState carry the W3C trace context of the producer
	// so the consumer's span can link to it. They are set by the server, not
	// the client, and are not part of the JSON wire format.
	TraceParent string `json:"-"`
	TraceState  string `json:"-"`
}

// Validate reports the first problem with e, wrapping one of the
// validation errors above with the name of the field.
func (e *Event) Validate() error {
	if err := checkID("event_id", e.ID, true); err != nil {
		return err
	}
	if e.Type == TypeInvalid || e.Type > Conversion {
		return fmt.Errorf("type: %w", ErrUnknownType)
	}
	if err := checkID("user_id", e.UserID, true); err != nil {
		return err
	}
	if err := checkID("item_id", e.ItemID, true); err != nil {
		return err
	}
	if err := checkID("request_id", e.RequestID, false); err != nil {
		return err
	}
	if len(e.Channel) > MaxChannelLen {
		return fmt.Errorf("channel: %w (max %d bytes)", ErrFieldTooLong, MaxChannelLen)
	}
	if e.DwellMS < 0 || e.DwellMS > MaxDwell.Milliseconds() {
		return fmt.Errorf("dwell_ms: %w: must be between 0 and %d", ErrInvalidValue, MaxDwell.Milliseconds())
	}
	return nil
}

func checkID(field, v string, required bool) error {
	if v == "" {
		if required {
			return fmt.Errorf("%s: %w", field, ErrMissingField)
		}
		return nil
	}
	if len(v) > MaxIDLen {
		return fmt.Errorf("%s: %w (max %d bytes)", field, ErrFieldTooLong, MaxIDLen)
	}
	return nil
}
