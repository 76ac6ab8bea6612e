package engine

// slotIndex maps the request-id hashes of a ring shard to its slots. It is
// what a map[uint64]uint32 would be, without the map's cost on the request
// path, where every decision stores one entry and deletes the one it
// evicts: open addressing with linear probing over a power-of-two table at
// most half full, and deletion by backward shift, so no tombstones build
// up. It holds no pointers. It is not goroutine-safe: the shard's lock
// guards it.
type slotIndex struct {
	ents []slotEnt
	mask uint64
}

// slotEnt is one entry of a slotIndex.
type slotEnt struct {
	hash uint64
	slot uint32 // the slot + 1; 0: an empty entry
}

// newSlotIndex returns an index for at most n entries.
func newSlotIndex(n int) slotIndex {
	size := 8
	for size < 2*n {
		size *= 2
	}
	return slotIndex{ents: make([]slotEnt, size), mask: uint64(size - 1)}
}

// find returns the position of h's entry, or of the empty entry where it
// would go.
func (x *slotIndex) find(h uint64) uint64 {
	i := h & x.mask
	for x.ents[i].slot != 0 && x.ents[i].hash != h {
		i = (i + 1) & x.mask
	}
	return i
}

// get returns the slot of h.
func (x *slotIndex) get(h uint64) (uint32, bool) {
	e := x.ents[x.find(h)]
	return e.slot - 1, e.slot != 0
}

// set maps h to slot, replacing what h mapped to.
func (x *slotIndex) set(h uint64, slot uint32) {
	x.ents[x.find(h)] = slotEnt{hash: h, slot: slot + 1}
}

// del removes h's entry, if any. The entries after it in its probe run
// that may move back do, so that every entry stays reachable from its
// home position without an empty entry between.
func (x *slotIndex) del(h uint64) {
	i := x.find(h)
	if x.ents[i].slot == 0 {
		return
	}
	for j := (i + 1) & x.mask; x.ents[j].slot != 0; j = (j + 1) & x.mask {
		// The entry at j stays when its home lies cyclically in (i, j]:
		// moving it to i would put it before its home.
		k := x.ents[j].hash & x.mask
		if (i < j && i < k && k <= j) || (i > j && (i < k || k <= j)) {
			continue
		}
		x.ents[i] = x.ents[j]
		i = j
	}
	x.ents[i] = slotEnt{}
}
