package features

import (
	"strings"
	"sync"
	"sync/atomic"
)

const (
	symChunkBits = 12
	symChunkSize = 1 << symChunkBits
	symChunkMask = symChunkSize - 1
)

// symtab interns item ids and category names as dense uint32 symbols so that
// per-user activity lists are small pointer-free arrays. Symbol 0 means
// "none". Symbols are never forgotten; the table is bounded by max.
//
// name is lock-free: symbol names live in fixed-size chunks that are never
// moved, published through an atomic pointer. A reader only ever resolves a
// symbol it obtained, under a shard lock, from a writer that interned it
// first, so the chunk slot write happens before the read.
type symtab struct {
	mu     sync.RWMutex
	ids    map[string]uint32
	next   uint32
	max    uint32
	chunks atomic.Pointer[[]*[symChunkSize]string]
}

func newSymtab(limit int) *symtab {
	s := &symtab{ids: make(map[string]uint32), next: 1, max: uint32(limit)}
	chunks := []*[symChunkSize]string{new([symChunkSize]string)}
	s.chunks.Store(&chunks)
	return s
}

// intern returns the symbol of v, creating it if needed. It returns false
// when v is new and the table is full. v must not be empty.
func (s *symtab) intern(v string) (uint32, bool) {
	s.mu.RLock()
	id, ok := s.ids[v]
	s.mu.RUnlock()
	if ok {
		return id, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.ids[v]; ok {
		return id, true
	}
	if s.next > s.max {
		return 0, false
	}
	id = s.next
	s.next++
	v = strings.Clone(v)
	chunks := *s.chunks.Load()
	c := int(id >> symChunkBits)
	if c == len(chunks) {
		grown := make([]*[symChunkSize]string, len(chunks)+1)
		copy(grown, chunks)
		grown[c] = new([symChunkSize]string)
		s.chunks.Store(&grown)
		chunks = grown
	}
	chunks[c][id&symChunkMask] = v
	s.ids[v] = id
	return id, true
}

// name returns the string of symbol id, or "" for 0.
func (s *symtab) name(id uint32) string {
	if id == 0 {
		return ""
	}
	chunks := *s.chunks.Load()
	return chunks[id>>symChunkBits][id&symChunkMask]
}

// names appends the names of ids to dst, loading the chunk table once.
func (s *symtab) names(dst []string, ids []uint32) []string {
	chunks := *s.chunks.Load()
	for _, id := range ids {
		var v string
		if id != 0 {
			v = chunks[id>>symChunkBits][id&symChunkMask]
		}
		dst = append(dst, v)
	}
	return dst
}
