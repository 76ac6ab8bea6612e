package decisionlog

import (
	"hash/fnv"
	"time"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
)

// Keep reports whether the decision requestID, and every event answering
// it, is kept at store ratio ratio: the FNV-1a 64-bit hash of the request
// id, mixed by the SplitMix64 finalizer, is below ratio × 2^64. The rule is
// part of the file format: it never changes, so a decision and its events
// are kept or dropped together whichever process writes them, and a
// sampled log is a uniform sample of decisions.
func Keep(requestID string, ratio float64) bool {
	if ratio >= 1 {
		return true
	}
	if !(ratio > 0) {
		return false
	}
	h := fnv.New64a()
	h.Write([]byte(requestID)) // never fails
	return mix(h.Sum64()) < uint64(ratio*(1<<64))
}

// mix is the SplitMix64 finalizer: FNV's low bits alone are poorly mixed
// for ids that differ only in their last characters.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// decisionRow converts a decoded decision record into a row. node is the
// serving node.
func decisionRow(d *engine.Decision, x *model.Context, node string) Decision {
	r := Decision{
		RequestID:      d.RequestID,
		Time:           d.Time.UTC(),
		UserHash:       d.UserHash,
		KnownUser:      d.KnownUser,
		Node:           node,
		Channel:        d.Channel,
		Variant:        d.Variant,
		ModelVersion:   d.ModelVersion,
		UserAgeBucket:  d.Features[event.AttrAgeBucket],
		UserSegment:    d.Features[event.AttrSegment],
		UserRegion:     d.Features[event.AttrRegion],
		UserDevice:     d.Features[event.AttrDevice],
		Candidates:     int32(d.Candidates),
		Eligible:       int32(d.Eligible),
		Explore:        d.Explore,
		ExploreTop:     int32(d.ExploreTop),
		Confidence:     d.Confidence,
		FallbackReason: string(d.Fallback),
		DurationNS:     int64(d.Duration),
		TraceID:        d.TraceID,
		TraceSampled:   d.TraceSampled,
	}
	if x != nil {
		r.Hour = int32(x.Hour)
		r.RecentCategories = x.RecentCategories
	}
	if len(d.Items) > 0 {
		r.Items = make([]Slot, len(d.Items))
		for i, it := range d.Items {
			r.Items[i] = Slot{ItemID: it.ItemID, Category: it.Category, Score: it.Score, Reason: it.Reason, Propensity: it.Propensity}
		}
	}
	if len(d.Pool) > 0 {
		r.Pool = make([]Candidate, len(d.Pool))
		for i, p := range d.Pool {
			r.Pool[i] = Candidate{ItemID: p.ItemID, Category: p.Category, Score: p.Score, Popularity: p.Popularity}
		}
	}
	return r
}

// eventRow converts an event into a row; a zero timestamp becomes now.
func eventRow(ev *event.Event, now time.Time) *Event {
	t := ev.Timestamp
	if t.IsZero() {
		t = now
	}
	return &Event{
		RequestID: ev.RequestID,
		EventID:   ev.ID,
		Type:      ev.Type.String(),
		Time:      t.UTC(),
		ItemID:    ev.ItemID,
		DwellMS:   ev.DwellMS,
	}
}
