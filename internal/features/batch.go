package features

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/sightline/sightline/internal/event"
)

// UserFeatures is a user's profile (Known false when there is none) and
// most recent categories: what a model context holds of the user.
type UserFeatures struct {
	User             event.User
	Known            bool
	RecentCategories []string
}

// Batch is the features of many users and items, read at once. Items
// absent from the catalog are absent from Items.
type Batch struct {
	Users map[string]UserFeatures
	Items map[string]event.Item
}

// batchChunk bounds the keys of one pipeline, so that its replies arrive
// well within the client's read timeout.
const batchChunk = 1024

// ReadBatch reads the profiles and activity of users and the catalog
// entries of items, in a few round trips (pipelines of batchChunk keys)
// instead of one per key: the trainer rebuilds the context of a batch of
// events it could not join to a decision this way.
func (r *Redis) ReadBatch(ctx context.Context, users, items []string) (Batch, error) {
	b := Batch{Users: make(map[string]UserFeatures, len(users)), Items: make(map[string]event.Item, len(items))}
	for len(users) > 0 {
		chunk := users[:min(len(users), batchChunk)]
		users = users[len(chunk):]
		hcs := make([]*redis.MapStringStringCmd, len(chunk))
		cats := make([]*redis.StringSliceCmd, len(chunk))
		_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range chunk {
				hcs[i] = p.HGetAll(ctx, r.userKey(id))
				cats[i] = p.LRange(ctx, r.activityKeys(id)[1], 0, int64(r.cfg.RecentCategories-1))
			}
			return nil
		})
		if err != nil {
			return Batch{}, r.fail(ctx, opFeatures, err)
		}
		for i, id := range chunk {
			u, ok, err := r.decodeUser(id, hcs[i].Val())
			if err != nil {
				return Batch{}, err
			}
			var rc []string
			if v := cats[i].Val(); len(v) > 0 {
				rc = v
			}
			b.Users[id] = UserFeatures{User: u, Known: ok, RecentCategories: rc}
		}
	}
	for len(items) > 0 {
		chunk := items[:min(len(items), batchChunk)]
		items = items[len(chunk):]
		hcs := make([]*redis.MapStringStringCmd, len(chunk))
		_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range chunk {
				hcs[i] = p.HGetAll(ctx, r.itemKey(id))
			}
			return nil
		})
		if err != nil {
			return Batch{}, r.fail(ctx, opItem, err)
		}
		for i, id := range chunk {
			if h := hcs[i].Val(); len(h) > 0 {
				it, err := decodeItem(id, h)
				if err != nil {
					r.met.errors.WithLabelValues(opItem, "corrupt").Inc()
					return Batch{}, err
				}
				b.Items[id] = it
			}
		}
	}
	return b, nil
}

// ReadBatch is [Redis.ReadBatch] for the in-memory store: a loop, since
// every read is local.
func (m *Memory) ReadBatch(ctx context.Context, users, items []string) (Batch, error) {
	b := Batch{Users: make(map[string]UserFeatures, len(users)), Items: make(map[string]event.Item, len(items))}
	for _, id := range users {
		u, ok, _ := m.User(ctx, id)
		act, _ := m.Activity(ctx, id)
		b.Users[id] = UserFeatures{User: u, Known: ok, RecentCategories: act.RecentCategories}
	}
	for _, id := range items {
		if it, ok, _ := m.Item(ctx, id); ok {
			b.Items[id] = it
		}
	}
	return b, nil
}

// UserState is a user's profile (Known false when there is none) and
// recent activity.
type UserState struct {
	User     event.User
	Known    bool
	Activity Activity
}

// ReadUsers reads the profile and recent activity of each of ids, in
// pipelines of batchChunk users (one round trip each) instead of a round
// trip per user: a serving node's candidate index observes a batch of
// clicks this way.
func (r *Redis) ReadUsers(ctx context.Context, ids []string) (map[string]UserState, error) {
	out := make(map[string]UserState, len(ids))
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), batchChunk)]
		ids = ids[len(chunk):]
		hcs := make([]*redis.MapStringStringCmd, len(chunk))
		acts := make([][3]*redis.StringSliceCmd, len(chunk))
		_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range chunk {
				hcs[i] = p.HGetAll(ctx, r.userKey(id))
				acts[i] = r.queueActivity(ctx, p, id)
			}
			return nil
		})
		if err != nil {
			return nil, r.fail(ctx, opFeatures, err)
		}
		for i, id := range chunk {
			u, ok, err := r.decodeUser(id, hcs[i].Val())
			if err != nil {
				return nil, err
			}
			out[id] = UserState{User: u, Known: ok, Activity: activityOf(acts[i])}
		}
	}
	return out, nil
}
