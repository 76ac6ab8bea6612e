package event

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestEventValidate(t *testing.T) {
	ok := Event{ID: "e1", Type: Click, UserID: "u1", ItemID: "i1"}
	tests := []struct {
		name   string
		mutate func(*Event)
		want   error
		field  string
	}{
		{"valid", func(*Event) {}, nil, ""},
		{"missing id", func(e *Event) { e.ID = "" }, ErrMissingField, "event_id"},
		{"no type", func(e *Event) { e.Type = TypeInvalid }, ErrUnknownType, "type"},
		{"missing user", func(e *Event) { e.UserID = "" }, ErrMissingField, "user_id"},
		{"missing item", func(e *Event) { e.ItemID = "" }, ErrMissingField, "item_id"},
		{"long request id", func(e *Event) { e.RequestID = strings.Repeat("r", MaxIDLen+1) }, ErrFieldTooLong, "request_id"},
		{"long channel", func(e *Event) { e.Channel = strings.Repeat("c", MaxChannelLen+1) }, ErrFieldTooLong, "channel"},
		{"negative dwell", func(e *Event) { e.DwellMS = -1 }, ErrInvalidValue, "dwell_ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := ok
			tc.mutate(&e)
			err := e.Validate()
			if !errors.Is(err, tc.want) || (err != nil && !strings.Contains(err.Error(), tc.field)) {
				t.Errorf("Validate() = %v, want %v naming %q", err, tc.want, tc.field)
			}
		})
	}
}

func TestTypeJSON(t *testing.T) {
	var e Event
	if err := json.Unmarshal([]byte(`{"event_id":"e","type":"conversion","user_id":"u","item_id":"i"}`), &e); err != nil || e.Type != Conversion {
		t.Errorf("Unmarshal conversion = %v, %v", e.Type, err)
	}
	err := json.Unmarshal([]byte(`{"type":"purchase"}`), &e)
	if !errors.Is(err, ErrUnknownType) || !strings.Contains(err.Error(), "purchase") {
		t.Errorf("Unmarshal purchase err = %v, want ErrUnknownType naming the value", err)
	}
	b, err := json.Marshal(Event{ID: "e", Type: Impression})
	if err != nil || !strings.Contains(string(b), `"type":"impression"`) {
		t.Errorf("Marshal = %s, %v", b, err)
	}
}

func TestUserAttrAndValidate(t *testing.T) {
	u := User{ID: "u1", AgeBucket: "25-34", Segment: "new"}
	if u.Attr(AttrAgeBucket) != "25-34" || u.Attr(AttrRegion) != "" || u.Attr("nope") != "" {
		t.Errorf("Attr gave wrong values for %+v", u)
	}
	if err := (&User{}).Validate(); !errors.Is(err, ErrMissingField) {
		t.Errorf("Validate(no id) = %v, want ErrMissingField", err)
	}
	if err := (&Item{ID: "i"}).Validate(); !errors.Is(err, ErrMissingField) || !strings.Contains(err.Error(), "category") {
		t.Errorf("Validate(item without category) = %v", err)
	}
}
