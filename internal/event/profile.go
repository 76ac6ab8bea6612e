package event

import (
	"fmt"
	"time"
)

// The user attributes the model knows by name. An empty string means the
// attribute is null (unknown); decision records and logs show it as null.
const (
	AttrAgeBucket = "user_age_bucket"
	AttrSegment   = "user_segment"
	AttrRegion    = "user_region"
	AttrDevice    = "user_device"
)

// UserAttributes lists the feature names of the named user attributes in a
// fixed order. Quality monitoring and decision records use these names.
var UserAttributes = []string{AttrAgeBucket, AttrSegment, AttrRegion, AttrDevice}

// MaxFreeAttrs bounds the number of free-form attributes on a user.
const MaxFreeAttrs = 32

// User is a user profile as the feature store holds it. JSON tags are the
// wire format of PUT /v1/users/{id} and of the NDJSON import and ETL files.
type User struct {
	ID        string `json:"user_id,omitempty"`
	AgeBucket string `json:"age_bucket,omitempty"`
	Segment   string `json:"segment,omitempty"`
	Region    string `json:"region,omitempty"`
	Device    string `json:"device,omitempty"`
	// Attrs holds free-form attributes. They are stored and returned but the
	// model does not use them.
	Attrs     map[string]string `json:"attributes,omitempty"`
	UpdatedAt time.Time         `json:"updated_at,omitzero"`
}

// Attr returns the value of the named model attribute (one of
// UserAttributes), or "" when it is null or unknown.
func (u *User) Attr(name string) string {
	switch name {
	case AttrAgeBucket:
		return u.AgeBucket
	case AttrSegment:
		return u.Segment
	case AttrRegion:
		return u.Region
	case AttrDevice:
		return u.Device
	}
	return ""
}

// Validate reports the first problem with u.
func (u *User) Validate() error {
	if err := checkID("user_id", u.ID, true); err != nil {
		return err
	}
	for name, v := range map[string]string{"age_bucket": u.AgeBucket, "segment": u.Segment, "region": u.Region, "device": u.Device} {
		if len(v) > MaxIDLen {
			return fmt.Errorf("%s: %w (max %d bytes)", name, ErrFieldTooLong, MaxIDLen)
		}
	}
	if len(u.Attrs) > MaxFreeAttrs {
		return fmt.Errorf("attributes: %w: at most %d", ErrInvalidValue, MaxFreeAttrs)
	}
	for k, v := range u.Attrs {
		if k == "" || len(k) > MaxIDLen || len(v) > 1024 {
			return fmt.Errorf("attributes: %w: keys 1..%d bytes, values up to 1024 bytes", ErrInvalidValue, MaxIDLen)
		}
	}
	return nil
}

// MaxTags bounds the number of tags on an item.
const MaxTags = 32

// Item is a catalog item. JSON tags are the wire format of PUT
// /v1/items/{id} and of the NDJSON import.
type Item struct {
	ID       string   `json:"item_id,omitempty"`
	Category string   `json:"category"`
	Tags     []string `json:"tags,omitempty"`
	// Available is false for items that must not be recommended.
	Available bool `json:"available"`
}

// Validate reports the first problem with it.
func (it *Item) Validate() error {
	if err := checkID("item_id", it.ID, true); err != nil {
		return err
	}
	if err := checkID("category", it.Category, true); err != nil {
		return err
	}
	if len(it.Tags) > MaxTags {
		return fmt.Errorf("tags: %w: at most %d", ErrInvalidValue, MaxTags)
	}
	return nil
}
