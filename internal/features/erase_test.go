package features

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/event"
)

// eraseStore is what the erasure tests need of either store.
type eraseStore interface {
	PutUser(ctx context.Context, u event.User) error
	PutItem(ctx context.Context, it event.Item) error
	User(ctx context.Context, id string) (event.User, bool, error)
	Activity(ctx context.Context, id string) (Activity, error)
	Apply(ctx context.Context, evs []*event.Event) error
	Counts(ctx context.Context) (users, items int, err error)
	EraseUser(ctx context.Context, id string) (Erased, error)
}

// TestEraseUser erases users from the memory store and from Redis (with
// and without a catalog in memory, which changes how Apply writes): the
// profile and activity of the erased user are gone and the user counter
// drops, other users keep theirs, erasing again (or an unknown user) finds
// nothing and is no error, and an erasure record in a batch of events
// clears the activity applied before it and keeps what follows it.
func TestEraseUser(t *testing.T) {
	stores := map[string]func(t *testing.T) eraseStore{
		"memory": func(t *testing.T) eraseStore { return newTestMemory(t, Config{}) },
		"redis": func(t *testing.T) eraseStore {
			return newTestRedis(t, RedisConfig{})
		},
		"redis with catalog": func(t *testing.T) eraseStore {
			r := newTestRedis(t, RedisConfig{})
			r.UseCatalog(testCatalog{"i1": {ID: "i1", Category: "books"}, "i2": {ID: "i2", Category: "music"}, "i3": {ID: "i3", Category: "games"}})
			return r
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			s := open(t)
			for _, it := range []event.Item{{ID: "i1", Category: "books"}, {ID: "i2", Category: "music"}, {ID: "i3", Category: "games"}} {
				if err := s.PutItem(ctx, it); err != nil {
					t.Fatal(err)
				}
			}
			for _, id := range []string{"alice", "bob"} {
				if err := s.PutUser(ctx, event.User{ID: id, Segment: "s1", AgeBucket: "25-34"}); err != nil {
					t.Fatal(err)
				}
			}
			click := func(user, item string) *event.Event {
				return &event.Event{ID: user + item, Type: event.Click, UserID: user, ItemID: item}
			}
			if err := s.Apply(ctx, []*event.Event{click("alice", "i1"), click("bob", "i2"), click("carol", "i1")}); err != nil {
				t.Fatal(err)
			}

			for _, tc := range []struct {
				id   string
				want Erased
			}{
				{"alice", Erased{Profile: true, Activity: true}},
				{"alice", Erased{}}, // again: idempotent
				{"carol", Erased{Activity: true}},
				{"nobody", Erased{}},
			} {
				got, err := s.EraseUser(ctx, tc.id)
				if err != nil || got != tc.want {
					t.Errorf("EraseUser(%s) = %+v, %v; want %+v", tc.id, got, err, tc.want)
				}
			}
			for _, id := range []string{"alice", "carol"} {
				if u, ok, err := s.User(ctx, id); ok || err != nil {
					t.Errorf("User(%s) after erasure = %+v, %v, %v; want not found", id, u, ok, err)
				}
				if a, err := s.Activity(ctx, id); err != nil || !cmp.Equal(a, Activity{}) {
					t.Errorf("Activity(%s) after erasure = %+v, %v; want none", id, a, err)
				}
			}
			if users, _, err := s.Counts(ctx); err != nil || users != 1 {
				t.Errorf("Counts users after erasing alice = %d, %v; want 1 (bob)", users, err)
			}
			if u, ok, _ := s.User(ctx, "bob"); !ok || u.Segment != "s1" {
				t.Errorf("User(bob) = %+v, %v; want kept", u, ok)
			}
			if a, _ := s.Activity(ctx, "bob"); !cmp.Equal(a.RecentItems, []string{"i2"}) {
				t.Errorf("Activity(bob).RecentItems = %v, want [i2] kept", a.RecentItems)
			}

			// An erasure record on the stream, between bob's events.
			erase := &event.Event{ID: "erasure-1", Type: event.Erasure, UserID: "bob"}
			batch := []*event.Event{click("bob", "i1"), erase, click("bob", "i3"), click("alice", "i3")}
			for range 2 { // applying the batch again changes nothing
				if err := s.Apply(ctx, batch); err != nil {
					t.Fatal(err)
				}
				want := Activity{RecentItems: []string{"i3"}, RecentCategories: []string{"games"}, Clicked: []string{"i3"}}
				if a, err := s.Activity(ctx, "bob"); err != nil || !cmp.Equal(a, want) {
					t.Errorf("Activity(bob) after [click i1, erasure, click i3] = %+v, %v; want %+v", a, err, want)
				}
			}
			if u, ok, _ := s.User(ctx, "bob"); !ok || u.Segment != "s1" {
				t.Errorf("User(bob) after an erasure record = %+v, %v; want the profile kept (the record erases activity only)", u, ok)
			}
			if a, _ := s.Activity(ctx, "alice"); !cmp.Equal(a.RecentItems, []string{"i3"}) {
				t.Errorf("Activity(alice) = %v, want [i3]: activity after an erasure is new data", a.RecentItems)
			}
		})
	}
}
