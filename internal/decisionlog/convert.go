package decisionlog

import (
	"time"

	"github.com/sightline/sightline/internal/event"
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
