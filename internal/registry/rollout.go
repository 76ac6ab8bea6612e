package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// A guarded model rollout on a cluster (docs/rollouts.md): the active
// trainer runs the rollout controller, keeps its state under
// registry:rollout, publishes the challenger's snapshot under
// registry:challenger as it learns, and says under registry:routing which
// share of the users it serves; API nodes follow the routing and the
// challenger's publications. Every write is fenced by the trainer's lease,
// so a trainer that lost it cannot move a rollout its successor resumed.

// Routing is the cluster's challenger routing, which API nodes apply: the
// challenger publication to serve and to whom.
type Routing struct {
	// Source names the challenger (its snapshot file on the trainer) and
	// Version is its model version when it was registered.
	Source  string `json:"source,omitempty"`
	Version string `json:"version,omitempty"`
	// Seq is the challenger publication this routing was written with;
	// followers serve that one or a later one (the challenger learns and
	// is published again).
	Seq uint64 `json:"seq,omitempty"`
	// Share is the share (0..1) of the champion's users the challenger
	// serves; Shadow makes it score the others' requests without being
	// shown.
	Share  float64 `json:"share"`
	Shadow bool    `json:"shadow,omitempty"`
	// Holder and Token name the trainer and lease that wrote it.
	Holder  string    `json:"holder"`
	Token   uint64    `json:"token"`
	Updated time.Time `json:"updated"`
}

// Active reports a routing that puts a challenger in play.
func (rt Routing) Active() bool { return rt.Seq > 0 && (rt.Share > 0 || rt.Shadow) }

// PublishChallenger stores data, the snapshot of a rollout's challenger of
// model version version, fenced by l, and returns its publication; its Seq
// increases with every challenger publication.
func (r *Registry) PublishChallenger(ctx context.Context, l Lease, version string, data []byte, now time.Time) (Publication, error) {
	return r.publish(ctx, l, "challenger", version, data, now)
}

// LatestChallenger returns the current challenger publication without its
// snapshot; ok is false before the first.
func (r *Registry) LatestChallenger(ctx context.Context) (Publication, bool, error) {
	return r.latest(ctx, "challenger")
}

// FetchChallenger returns the current challenger publication and its
// snapshot, read together; ok is false before the first. A snapshot that
// does not match its checksum is [ErrCorrupt].
func (r *Registry) FetchChallenger(ctx context.Context) (Publication, []byte, bool, error) {
	return r.fetch(ctx, "challenger")
}

// PutRouting stores rt as the cluster's challenger routing, fenced by l
// (which it records in rt's Holder and Token).
func (r *Registry) PutRouting(ctx context.Context, l Lease, rt Routing) error {
	rt.Holder, rt.Token = l.Holder, l.Token
	b, err := json.Marshal(rt)
	if err != nil {
		return fmt.Errorf("registry: encode routing: %w", err)
	}
	return r.put(ctx, l, "routing", b)
}

// Routing returns the cluster's challenger routing; ok is false when no
// rollout ever ran.
func (r *Registry) Routing(ctx context.Context) (rt Routing, ok bool, err error) {
	b, ok, err := r.get(ctx, "routing")
	if err != nil || !ok {
		return Routing{}, false, err
	}
	if err := json.Unmarshal(b, &rt); err != nil {
		return Routing{}, false, fmt.Errorf("registry: routing: %w", err)
	}
	return rt, true, nil
}

// PutRollout stores state, the rollout controller's encoded state, fenced
// by l.
func (r *Registry) PutRollout(ctx context.Context, l Lease, state []byte) error {
	return r.put(ctx, l, "rollout", state)
}

// Rollout returns the rollout controller's encoded state; ok is false when
// no rollout ever ran.
func (r *Registry) Rollout(ctx context.Context) (state []byte, ok bool, err error) {
	return r.get(ctx, "rollout")
}
