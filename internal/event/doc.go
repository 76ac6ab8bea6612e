// Package event defines the domain records that cross package boundaries in
// Sightline: user interaction events (impressions, clicks, conversions), user
// profiles and catalog items, with their validation and their binary encoding
// for the event log.
//
// It is a leaf package: it imports nothing else from Sightline, and every
// other package may import it. Values here are plain data; nothing in this
// package is safe for concurrent mutation, but concurrent reads are fine.
package event
