package features

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Erased says what an erasure found and removed of a user.
type Erased struct {
	// Profile reports that a profile was stored and is now deleted.
	Profile bool
	// Activity reports that recent activity was stored and is now deleted.
	Activity bool
}

// EraseUser deletes the profile and the recent activity of the user id:
// the store answers for it as for a user it never knew. Erasing a user the
// store does not know is not an error (erasure is idempotent). It does not
// block beyond a shard lock and never fails.
//
// Activity applied after the erasure is kept: events the user sends later
// are new data. An event accepted before the erasure but applied after it
// is erased by the [event.Erasure] record that follows it on the stream
// (see Apply).
func (m *Memory) EraseUser(_ context.Context, id string) (Erased, error) {
	st := m.st.Load()
	sh := st.userShard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r := sh.m[id]
	if r == nil {
		return Erased{}, nil
	}
	e := Erased{Profile: r.profile, Activity: r.act != nil}
	if r.profile {
		st.nUsers.Add(-1)
	}
	delete(sh.m, id)
	return e, nil
}

// eraseActivity deletes the recent activity of the user id, keeping its
// profile.
func (m *Memory) eraseActivity(id string) {
	st := m.st.Load()
	sh := st.userShard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r := sh.m[id]
	switch {
	case r == nil:
	case r.profile:
		r.act = nil
	default:
		delete(sh.m, id)
	}
}

// eraseScript deletes the profile hash KEYS[1], decrementing the user
// counter KEYS[2] when it existed, and the activity lists KEYS[3..5]. It
// returns {profile deleted, activity lists deleted}.
var eraseScript = redis.NewScript(`
local p = redis.call('DEL', KEYS[1])
if p == 1 then redis.call('DECR', KEYS[2]) end
local a = redis.call('DEL', KEYS[3], KEYS[4], KEYS[5])
return {p, a}
`)

// EraseUser deletes the profile and the recent activity of the user id in
// one atomic step, as [Memory.EraseUser] does; erasing a user the store
// does not know is not an error. Every node sharing the key prefix sees the
// user gone at once. It makes one round trip.
func (r *Redis) EraseUser(ctx context.Context, id string) (Erased, error) {
	k := r.activityKeys(id)
	res, err := eraseScript.Run(ctx, r.c, []string{r.userKey(id), r.users, k[0], k[1], k[2]}).Int64Slice()
	if err != nil {
		return Erased{}, r.fail(ctx, opErase, err)
	}
	if len(res) != 2 {
		r.met.errors.WithLabelValues(opErase, "corrupt").Inc()
		return Erased{}, fmt.Errorf("redis erase: %d results, want 2", len(res))
	}
	return Erased{Profile: res[0] > 0, Activity: res[1] > 0}, nil
}
