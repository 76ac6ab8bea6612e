package app

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/features"
)

// Feature store kinds, the values of Config.FeatureStore.
const (
	StoreMemory = "memory"
	StoreRedis  = "redis"
)

// featureStore is what the node needs of its feature store: the in-memory
// store ([features.Memory]) or Redis ([features.Redis]). Every method that
// may do I/O takes ctx and returns an error; all are safe for concurrent
// use.
type featureStore interface {
	// User and Activity are the engine's feature source, called on the
	// request path under the feature budget (through faultyStore), and by
	// the model updater to rebuild the context of an event.
	User(ctx context.Context, id string) (event.User, bool, error)
	Activity(ctx context.Context, userID string) (features.Activity, error)
	// PutUser and PutItem replace a profile or catalog item: imports and
	// PUT routes call them.
	PutUser(ctx context.Context, u event.User) error
	PutItem(ctx context.Context, it event.Item) error
	// Item returns a catalog item; the model updater calls it.
	Item(ctx context.Context, id string) (event.Item, bool, error)
	// Apply records events in users' recent activity, in order. Applying
	// again a suffix of what was applied changes nothing, so the feature
	// updater may be redelivered records.
	Apply(ctx context.Context, evs []*event.Event) error
	// EraseUser deletes the profile and activity of a user: DELETE
	// /v1/users/{user_id} and the journal's replay call it.
	EraseUser(ctx context.Context, id string) (features.Erased, error)
	// Counts returns the numbers of profiles and items, for /v1/stats.
	Counts(ctx context.Context) (users, items int, err error)
	// RangeItems calls fn for every item; OnItemChange registers fn for
	// the items this node puts from now on. The node feeds the engine's
	// candidate index with both.
	RangeItems(ctx context.Context, fn func(event.Item) bool) error
	OnItemChange(fn func(event.Item))
	// Run delivers the item changes of other nodes (Redis's catalog
	// stream) to the OnItemChange functions until ctx is done.
	Run(ctx context.Context) error
}

var (
	_ featureStore = (*features.Memory)(nil)
	_ featureStore = (*features.Redis)(nil)
)

// openStore opens the feature store of cfg.FeatureStore and, for the
// in-memory one, the journal of imports. A Redis that does not answer fails
// the start: without it the node has no catalog to serve.
func (n *Node) openStore(ctx context.Context) error {
	cfg := &n.cfg
	if cfg.FeatureStore == StoreRedis {
		r, err := features.NewRedis(features.RedisConfig{Addr: cfg.RedisAddr, KeyPrefix: cfg.RedisPrefix, ReadTimeout: cfg.RedisTimeout, Logger: n.logger, Registerer: n.reg})
		if err != nil {
			return fmt.Errorf("redis feature store: %w", err)
		}
		n.redis, n.store = r, r
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := r.Ping(ctx); err != nil {
			return fmt.Errorf("redis feature store at %s: %w", cfg.RedisAddr, err)
		}
		return nil
	}
	m, err := features.NewMemory(features.Config{Logger: n.logger, Registerer: n.reg})
	if err != nil {
		return err
	}
	n.mem, n.store = m, m
	if n.journal, err = features.OpenJournal(filepath.Join(cfg.DataDir, "journal")); err != nil {
		return fmt.Errorf("open journal: %w", err)
	}
	return nil
}
