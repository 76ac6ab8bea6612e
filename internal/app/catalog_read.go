package app

import (
	"context"

	"github.com/sightline/sightline/internal/api"
	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/features"
)

// The node's catalog serves the read-back routes, GET /v1/users/{user_id}
// and GET /v1/items/{item_id}, from its feature store (memory or Redis).
var _ api.CatalogReader = catalog{}

// featuresReader is the one-round-trip read of a profile and its activity
// that the Redis store has ([features.Redis.Features]).
type featuresReader interface {
	Features(ctx context.Context, id string) (event.User, bool, features.Activity, error)
}

// UserProfile returns what the feature store holds of the user id: its
// profile and recent activity. ok is false when it holds neither.
func (c catalog) UserProfile(ctx context.Context, id string) (api.UserProfile, bool, error) {
	var (
		u     event.User
		found bool
		act   features.Activity
		err   error
	)
	if fr, isFR := c.n.store.(featuresReader); isFR {
		u, found, act, err = fr.Features(ctx, id)
	} else {
		if u, found, err = c.n.store.User(ctx, id); err == nil {
			act, err = c.n.store.Activity(ctx, id)
		}
	}
	if err != nil {
		return api.UserProfile{}, false, err
	}
	if !found && len(act.RecentItems) == 0 && len(act.RecentCategories) == 0 && len(act.Clicked) == 0 {
		return api.UserProfile{}, false, nil
	}
	return api.UserProfile{User: u, Activity: api.Activity{
		RecentItems: act.RecentItems, RecentCategories: act.RecentCategories, ClickedItems: act.Clicked,
	}}, true, nil
}

// CatalogItem returns the catalog item id from the feature store.
func (c catalog) CatalogItem(ctx context.Context, id string) (event.Item, bool, error) {
	return c.n.store.Item(ctx, id)
}
