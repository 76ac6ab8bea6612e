package model

import (
	"math/bits"

	"github.com/sightline/sightline/internal/event"
)

// MaxRecentCategories bounds the recent categories Prepare uses: the first
// MaxRecentCategories distinct non-empty ones, in order.
const MaxRecentCategories = 16

// Context holds the request-side inputs of the model.
type Context struct {
	// User is the user profile. An attribute equal to "" is null and its
	// features are omitted. User.ID and User.Attrs are not used.
	User event.User
	// Channel is the request channel (e.g. "web", "app"); "" is null.
	Channel string
	// Hour is the local hour of the request, 0..23; any other value is null.
	Hour int
	// RecentCategories are categories of items the user recently engaged
	// with, most recent first. Empty strings and repeats are ignored.
	RecentCategories []string
	// Slot is, when learning from an impression or a click, the 1-based
	// position at which the item was shown; 0 means unknown. Scoring
	// ignores it (see [Model.Learn]).
	Slot int
	// ItemKeys are optional: the keys ([KeyOf]) of the items a scoring
	// call is given, in their order, computed once when the items were
	// indexed, so that scoring does not hash every candidate's id and
	// category again. Scoring uses them only when there is one per item;
	// a caller that sets them must set them for the items it scores.
	// Learning ignores them.
	ItemKeys []ItemKey
}

// ItemKey is an item's identity to every model: the hashes of its id and
// category features, independent of Config.Bits (as [Prepared]'s are).
type ItemKey struct {
	item uint64 // index(itemHash(id)), unmasked
	// cat is categoryHash(category), 0 for a null category (a category
	// whose hash is 0, one in 2⁶⁴, would be scored as null).
	cat uint64
}

// KeyOf returns the key of it: what scoring hashes of it.
func KeyOf(it event.Item) ItemKey {
	k := ItemKey{item: index(itemHash(it.ID))}
	if it.Category != "" {
		k.cat = categoryHash(it.Category)
	}
	return k
}

// IDHash returns the 64-bit hash of the item id k holds: equal ids hash
// alike, and two ids collide about once in 2⁶⁴, so a set of hashes rules
// most ids out without comparing strings.
func (k ItemKey) IDHash() uint64 { return k.item }

// IDHash returns ItemKey.IDHash of any item with this id.
func IDHash(id string) uint64 { return index(itemHash(id)) }

// CategoryHash returns the 64-bit hash of the category k holds, 0 for
// none. Two categories collide about once in 2⁶⁴.
func (k ItemKey) CategoryHash() uint64 { return k.cat }

// CategoryHash returns ItemKey.CategoryHash of any item of category c.
func CategoryHash(c string) uint64 { return KeyOf(event.Item{Category: c}).cat }

// Prepared holds the hashes of the request-side features of one Context, so
// that scoring many items mixes them with each item's hashes only. The hashes
// are full 64-bit values independent of Config.Bits, so a Prepared made by
// one Model can be used with another (e.g. across a hot swap).
//
// The zero value is ready to use. A Prepared is reused across requests to
// avoid allocation (callers pool it); it must not be modified while a Score
// or LearnPrepared call reads it.
type Prepared struct {
	req  []uint64
	keys []ItemKey // Context.ItemKeys
}

// Prepare hashes the request-side features of x into p, replacing what p
// held. It allocates only while p's buffer grows. It is safe for concurrent
// use with distinct p.
func (m *Model) Prepare(x *Context, p *Prepared) {
	p.prepare(x)
}

// Len returns the number of request-side features p holds (the bias not
// counted).
func (p *Prepared) Len() int { return len(p.req) }

func (p *Prepared) prepare(x *Context) {
	p.req = p.req[:0]
	p.keys = x.ItemKeys
	u := &x.User
	if u.AgeBucket != "" {
		p.req = append(p.req, attrHash("user_age_bucket=", u.AgeBucket))
	}
	if u.Segment != "" {
		p.req = append(p.req, attrHash("user_segment=", u.Segment))
	}
	if u.Region != "" {
		p.req = append(p.req, attrHash("user_region=", u.Region))
	}
	if u.Device != "" {
		p.req = append(p.req, attrHash("user_device=", u.Device))
	}
	if x.Channel != "" {
		p.req = append(p.req, attrHash("channel=", x.Channel))
	}
	if x.Hour >= 0 && x.Hour < 24 {
		// Six four-hour buckets: night, early morning, morning, afternoon,
		// evening, late evening.
		h := fnvString(fnvOffset, "hour_bucket=")
		h = fnvByte(h, byte('0'+x.Hour/4))
		p.req = append(p.req, h)
	}
	first := len(p.req)
	for _, c := range x.RecentCategories {
		if len(p.req)-first >= MaxRecentCategories {
			break
		}
		if c == "" {
			continue
		}
		h := attrHash("recent_category=", c)
		dup := false
		for _, o := range p.req[first:] {
			if o == h {
				dup = true
				break
			}
		}
		if !dup {
			p.req = append(p.req, h)
		}
	}
}

// FNV-1a, 64 bit. Fixed constants make feature coordinates the same in every
// process, which snapshots rely on.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func fnvByte(h uint64, b byte) uint64 {
	h ^= uint64(b)
	h *= fnvPrime
	return h
}

// attrHash hashes a feature "<prefix><value>"; prefix ends in "=".
func attrHash(prefix, value string) uint64 {
	return fnvString(fnvString(fnvOffset, prefix), value)
}

// itemPrefix and categoryPrefix are the hashes of the item features'
// prefixes, which every scoring would otherwise hash again for each
// candidate.
var (
	itemPrefix     = fnvString(fnvOffset, "item=")
	categoryPrefix = fnvString(fnvOffset, "category=")
)

// itemHash is attrHash("item=", id).
func itemHash(id string) uint64 { return fnvString(itemPrefix, id) }

// categoryHash is attrHash("category=", c).
func categoryHash(c string) uint64 { return fnvString(categoryPrefix, c) }

// mix64 is the 64-bit finalizer of MurmurHash3: a bijection that spreads
// every input bit over every output bit, so that low bits make a good
// coordinate.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// index returns the unmasked coordinate of a single feature hash.
func index(h uint64) uint64 { return mix64(h) }

// cross returns the unmasked coordinate of the cross of request feature a
// and item feature b. It is not symmetric, and differs from index of either.
func cross(a, b uint64) uint64 {
	return mix64(a ^ bits.RotateLeft64(b, 32) ^ 0x9e3779b97f4a7c15)
}

// biasIndex returns the unmasked coordinate of the bias feature.
func biasIndex() uint64 { return index(fnvString(fnvOffset, "bias")) }
