package ingest

import "maps"

// Offsets are consumer positions by partition: the next offset to read in
// each. The embedded log has partition 0 only.
type Offsets map[int32]uint64

// Sum adds the positions up: for the embedded log the offset itself; for
// Kafka a figure comparable only with another sum over the same topic.
func (o Offsets) Sum() uint64 {
	var s uint64
	for _, v := range o {
		s += v
	}
	return s
}

// Clone copies o (an empty map for nil), so an updater's positions and a
// snapshot's do not share a map.
func (o Offsets) Clone() Offsets {
	if o == nil {
		return Offsets{}
	}
	return maps.Clone(o)
}
