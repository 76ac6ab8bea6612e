package engine

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/features"
)

// usersStore reads many users at once, counting its calls, and fails the
// test when a user is read one by one.
type usersStore struct {
	fakeStore
	t       *testing.T
	batches [][]string
}

func (s *usersStore) ReadUsers(_ context.Context, ids []string) (map[string]features.UserState, error) {
	s.batches = append(s.batches, ids)
	out := map[string]features.UserState{}
	for _, id := range ids {
		u, ok := s.users[id]
		out[id] = features.UserState{User: u, Known: ok, Activity: s.act[id]}
	}
	return out, nil
}

func (s *usersStore) User(ctx context.Context, id string) (event.User, bool, error) {
	s.t.Errorf("User(%s) read one by one", id)
	return s.fakeStore.User(ctx, id)
}

// ObserveAll leaves the index as Observe one event at a time does, reading
// the users of the batch's clicks in one call.
func TestObserveAllMatchesObserve(t *testing.T) {
	act := map[string]features.Activity{"alice": {RecentItems: []string{"i01-001", "i02-003"}}}
	batched := &usersStore{fakeStore: fakeStore{users: knownUsers(), act: act}, t: t}
	one := &fakeStore{users: knownUsers(), act: act}
	sc := &fakeScorer{score: func(event.Item) float64 { return 0.3 }}
	eb, e1 := newEngineFor(t, batched, sc, nil), newEngineFor(t, one, sc, nil)

	now := time.Now()
	var evs []*event.Event
	for i := range 12 {
		ev := &event.Event{ID: fmt.Sprint(i), Type: event.Impression, UserID: "newbie", ItemID: "i03-004", Timestamp: now}
		switch i % 3 {
		case 1:
			ev.Type, ev.UserID, ev.ItemID = event.Click, "alice", "i07-019"
		case 2:
			ev.Type, ev.UserID, ev.ItemID = event.Conversion, "newbie", "i05-010"
		}
		evs = append(evs, ev)
	}
	var order []int
	eb.ObserveAll(t.Context(), evs, func(i int, record func()) {
		order = append(order, i)
		record()
	})
	for _, ev := range evs {
		e1.Observe(t.Context(), ev)
	}
	if diff := cmp.Diff([][]string{{"alice", "newbie"}}, batched.batches); diff != "" {
		t.Errorf("batch reads (-want +got):\n%s", diff)
	}
	if len(order) != len(evs) || order[0] != 0 || order[len(order)-1] != len(evs)-1 {
		t.Errorf("observed in order %v, want 0..%d", order, len(evs)-1)
	}
	top := func(e *Engine, segment string) []string {
		e.Index().Refresh()
		var ids []string
		e.Index().Popular(segment, func(it event.Item, score float64) bool {
			ids = append(ids, fmt.Sprintf("%s %.6f", it.ID, score))
			return len(ids) < 5
		})
		return ids
	}
	for _, seg := range []string{"", "regular", "new"} {
		if diff := cmp.Diff(top(e1, seg), top(eb, seg)); diff != "" {
			t.Errorf("popular for segment %q (-one by one +batched):\n%s", seg, diff)
		}
	}
	var c1, cb candidateSet
	e1.Index().Candidates(&c1, []string{"i01-001"}, nil)
	eb.Index().Candidates(&cb, []string{"i01-001"}, nil)
	if fmt.Sprint(c1) != fmt.Sprint(cb) {
		t.Errorf("co-visitation candidates differ:\none by one %v\nbatched    %v", c1, cb)
	}
}
