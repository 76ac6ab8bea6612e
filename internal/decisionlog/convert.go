package decisionlog

import (
	"strings"
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
	return mix(fnv64a(requestID)) < uint64(ratio*(1<<64))
}

// fnv64a is the FNV-1a 64-bit hash of s, as hash/fnv's New64a computes it,
// without allocating.
func fnv64a(s string) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime
	}
	return h
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

// maxAttrs bounds the writer's table of user attribute values; it is
// reset when full.
const maxAttrs = 4096

// fillDecision sets row r to the decoded decision record d, x, served by
// node, reusing r's slices. The strings of d and x alias the queued record
// (see [engine.RecordDecoder]), and so do r's, until the record's buffer is
// released after the row was handed to the encoder; the user attributes,
// which the row holds by pointer, are interned copies.
func (w *Writer) fillDecision(r *Decision, d *engine.Decision, x *model.Context, node string) {
	items, pool, recent := r.Items[:0], r.Pool[:0], r.RecentCategories[:0]
	*r = Decision{
		RequestID:      d.RequestID,
		Time:           d.Time.UTC(),
		UserHash:       d.UserHash,
		KnownUser:      d.KnownUser,
		Node:           node,
		Channel:        d.Channel,
		Variant:        d.Variant,
		ModelVersion:   d.ModelVersion,
		UserAgeBucket:  w.attr(d.Features[event.AttrAgeBucket]),
		UserSegment:    w.attr(d.Features[event.AttrSegment]),
		UserRegion:     w.attr(d.Features[event.AttrRegion]),
		UserDevice:     w.attr(d.Features[event.AttrDevice]),
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
		if len(x.RecentCategories) > 0 {
			r.RecentCategories = append(recent, x.RecentCategories...)
		}
	}
	if len(d.Items) > 0 {
		for _, it := range d.Items {
			items = append(items, Slot{ItemID: it.ItemID, Category: it.Category, Score: it.Score, Reason: it.Reason, Propensity: it.Propensity})
		}
		r.Items = items
	}
	if len(d.Pool) > 0 {
		for _, p := range d.Pool {
			pool = append(pool, Candidate{ItemID: p.ItemID, Category: p.Category, Score: p.Score, Popularity: p.Popularity})
		}
		r.Pool = pool
	}
}

// attr returns a pointer to an interned copy of *v, nil for nil.
func (w *Writer) attr(v *string) *string {
	if v == nil {
		return nil
	}
	if p, ok := w.attrs[*v]; ok {
		return p
	}
	if w.attrs == nil || len(w.attrs) >= maxAttrs {
		w.attrs = make(map[string]*string)
	}
	s := strings.Clone(*v)
	w.attrs[s] = &s
	return &s
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
