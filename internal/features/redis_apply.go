package features

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/sightline/sightline/internal/event"
)

// Catalog is the catalog in memory (the engine's candidate index): where
// [Redis.Apply] takes the category of a clicked item instead of reading it
// from Redis in a script.
type Catalog interface {
	Item(id string) (event.Item, bool)
}

// UseCatalog makes Apply take items' categories from c. A batch whose
// items c all knows is then applied as plain list commands in one
// MULTI/EXEC transaction, without the activity script, whose per-call
// cost in Redis is several times that of its commands; a batch with an
// item c does not know yet runs the script, which reads the category from
// the item's hash. Call it before the store is used.
func (r *Redis) UseCatalog(c Catalog) { r.catalog = c }

// categories returns the category of each event's item from the catalog,
// and false when there is no catalog or it lacks one of the items.
func (r *Redis) categories(evs []*event.Event) ([]string, bool) {
	if r.catalog == nil {
		return nil, false
	}
	cats := make([]string, len(evs))
	for i, ev := range evs {
		if ev.Type == event.Erasure {
			continue
		}
		it, ok := r.catalog.Item(ev.ItemID)
		if !ok {
			return nil, false
		}
		cats[i] = it.Category
	}
	return cats, true
}

// applyKnown applies evs, whose items' categories are cats, as
// applyScript does, in one transaction.
func (r *Redis) applyKnown(ctx context.Context, evs []*event.Event, cats []string) error {
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		push := func(k, v string, n int) {
			p.LRem(ctx, k, 0, v)
			p.LPush(ctx, k, v)
			p.LTrim(ctx, k, 0, int64(n-1))
			if r.cfg.ActivityTTL > 0 {
				p.PExpire(ctx, k, r.cfg.ActivityTTL)
			}
		}
		for i, ev := range evs {
			k := r.activityKeys(ev.UserID)
			if ev.Type == event.Erasure {
				p.Del(ctx, k[0], k[1], k[2])
				continue
			}
			push(k[0], ev.ItemID, r.cfg.RecentItems)
			push(k[2], ev.ItemID, r.cfg.ClickedItems)
			if cats[i] != "" {
				push(k[1], cats[i], r.cfg.RecentCategories)
			}
		}
		return nil
	})
	if err != nil {
		return r.fail(ctx, opApply, err)
	}
	return nil
}
