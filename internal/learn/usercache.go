package learn

import (
	"time"

	"github.com/sightline/sightline/internal/features"
)

// userCacheLimit bounds each of the user cache's two generations: at some
// 250 bytes a user, the cache holds at most about 64 MiB.
const userCacheLimit = 1 << 17

// userCache keeps the features of users read from the feature store for a
// while, so that a trainer rebuilding the contexts of events no decision
// explains reads an active user once per ttl instead of once per batch. It
// holds two generations of at most limit users; a full current generation
// becomes the previous one, whose users are dropped at the next turn. Its
// owner guards it.
type userCache struct {
	ttl       time.Duration
	limit     int
	cur, prev map[string]cachedUser
}

type cachedUser struct {
	f  features.UserFeatures
	at time.Time
}

// get returns the features of id read within ttl of now.
func (c *userCache) get(id string, now time.Time) (features.UserFeatures, bool) {
	e, ok := c.cur[id]
	if !ok {
		e, ok = c.prev[id]
	}
	if !ok || now.Sub(e.at) >= c.ttl {
		return features.UserFeatures{}, false
	}
	return e.f, true
}

// put remembers the features of id, read at now.
func (c *userCache) put(id string, f features.UserFeatures, now time.Time) {
	if c.cur == nil {
		c.cur = make(map[string]cachedUser)
	}
	if _, ok := c.cur[id]; !ok && len(c.cur) >= c.limit {
		c.prev, c.cur = c.cur, make(map[string]cachedUser, c.limit)
	}
	c.cur[id] = cachedUser{f: f, at: now}
}

// forget drops id: its activity changed.
func (c *userCache) forget(id string) {
	delete(c.cur, id)
	delete(c.prev, id)
}
