package engine

import "github.com/sightline/sightline/internal/event"

// Item returns the catalog item id as the index holds it: the catalog in
// memory, for a reader that would otherwise ask the feature store.
func (ix *Index) Item(id string) (event.Item, bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	s, ok := ix.items[id]
	if !ok {
		return event.Item{}, false
	}
	return s.item, true
}
