package engine

import (
	"context"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/features"
)

// UsersReader is a feature source that reads many users' profiles and
// activity in one round trip ([features.Redis]): [Engine.ObserveAll] then
// reads a batch's users at once instead of making two round trips per
// click.
type UsersReader interface {
	ReadUsers(ctx context.Context, ids []string) (map[string]features.UserState, error)
}

// ObserveAll records evs in the candidate index, in order, as Observe does
// one by one: observe(i, record) is called for each event and must call
// record once (a caller wraps it in a span). When the feature source is a
// [UsersReader], the users of the batch's clicks and conversions are read
// first in one go; if that read fails, each event is observed without them
// (as Observe does when its reads fail).
func (e *Engine) ObserveAll(ctx context.Context, evs []*event.Event, observe func(i int, record func())) {
	var users map[string]features.UserState
	if ur, ok := e.fs.(UsersReader); ok {
		var ids []string
		seen := map[string]bool{}
		for _, ev := range evs {
			if ev.Type != event.Impression && !seen[ev.UserID] {
				seen[ev.UserID] = true
				ids = append(ids, ev.UserID)
			}
		}
		if len(ids) > 0 {
			users, _ = ur.ReadUsers(ctx, ids) // nil on error: observed without
			if users == nil {
				users = map[string]features.UserState{}
			}
		}
	}
	for i, ev := range evs {
		observe(i, func() {
			if users == nil {
				e.Observe(ctx, ev)
				return
			}
			var segment string
			var recent []string
			if ev.Type != event.Impression {
				if st, ok := users[ev.UserID]; ok {
					if st.Known {
						segment = st.User.Segment
					}
					recent = st.Activity.RecentItems
				}
			}
			e.index.Observe(ev, segment, recent)
		})
	}
}
