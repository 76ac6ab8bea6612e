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
	// Counts returns the numbers of profiles and items, for /v1/stats.
	Counts(ctx context.Context) (users, items int, err error)
	// RangeItems calls fn for every item; OnItemChange registers fn for
	// the items this node puts from now on. The node feeds the engine's
	// candidate index with both.
	RangeItems(ctx context.Context, fn func(event.Item) bool) error
	OnItemChange(fn func(event.Item))
}

// memoryStore adapts the in-memory store, which never fails, to
// featureStore.
type memoryStore struct{ *features.Memory }

var _ featureStore = memoryStore{}

func (m memoryStore) Item(_ context.Context, id string) (event.Item, bool, error) {
	it, ok := m.Memory.Item(id)
	return it, ok, nil
}

func (m memoryStore) Apply(_ context.Context, evs []*event.Event) error {
	for _, ev := range evs {
		m.Memory.Apply(ev)
	}
	return nil
}

func (m memoryStore) Counts(context.Context) (int, int, error) {
	return m.Users(), m.Items(), nil
}

func (m memoryStore) RangeItems(_ context.Context, fn func(event.Item) bool) error {
	m.Memory.RangeItems(fn)
	return nil
}

// redisStore adapts the Redis store to featureStore.
type redisStore struct{ *features.Redis }

var _ featureStore = redisStore{}

func (r redisStore) Apply(ctx context.Context, evs []*event.Event) error {
	return r.Redis.Apply(ctx, evs...)
}

func (r redisStore) Counts(ctx context.Context) (int, int, error) {
	users, err := r.Users(ctx)
	if err != nil {
		return 0, 0, err
	}
	items, err := r.Items(ctx)
	return users, items, err
}

// openStore opens the feature store of cfg.FeatureStore and, for the
// in-memory one, the journal of imports. A Redis that does not answer fails
// the start: without it the node has no catalog to serve.
func (n *Node) openStore(ctx context.Context) error {
	cfg := &n.cfg
	if cfg.FeatureStore == StoreRedis {
		r, err := features.NewRedis(features.RedisConfig{Addr: cfg.RedisAddr, KeyPrefix: cfg.RedisPrefix, Logger: n.logger, Registerer: n.reg})
		if err != nil {
			return fmt.Errorf("redis feature store: %w", err)
		}
		n.redis, n.store = r, redisStore{r}
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
	n.mem, n.store = m, memoryStore{m}
	if n.journal, err = openJournal(filepath.Join(cfg.DataDir, "journal")); err != nil {
		return fmt.Errorf("open journal: %w", err)
	}
	return nil
}
