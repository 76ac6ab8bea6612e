package features

import (
	"context"
	"slices"
	"strings"

	"github.com/sightline/sightline/internal/event"
)

// Activity is a user's recent activity. Each list holds distinct values, most
// recent first, and is bounded by the store's Config.
type Activity struct {
	// RecentItems are the items the user most recently clicked or converted on.
	RecentItems []string
	// RecentCategories are the categories of those items.
	RecentCategories []string
	// Clicked are the items the user clicked or converted on, a longer list
	// than RecentItems, for filtering out what the user has already seen.
	Clicked []string
}

// actHeader is the number of leading words of a user's activity buffer that
// hold the lengths of its three lists.
const actHeader = 3

// actLists splits a user's activity buffer into its three fixed-size lists
// and their lengths. The buffer is one pointer-free allocation per active
// user: [len items, len cats, len clicked, items..., cats..., clicked...].
func (m *Memory) actLists(act []uint32) (lists [3][]uint32) {
	ri, rc := m.cfg.RecentItems, m.cfg.RecentCategories
	b := act[actHeader:]
	lists[0] = b[:ri:ri]
	lists[1] = b[ri : ri+rc : ri+rc]
	lists[2] = b[ri+rc:]
	return lists
}

func (m *Memory) actLen() int {
	return actHeader + m.cfg.RecentItems + m.cfg.RecentCategories + m.cfg.ClickedItems
}

// pushFront moves v to the front of list[:n], inserting it if absent and
// dropping the last element when the list is full. It returns the new length.
func pushFront(list []uint32, n uint32, v uint32) uint32 {
	i := slices.Index(list[:n], v)
	if i < 0 {
		if int(n) < len(list) {
			n++
		}
		i = int(n) - 1
	}
	copy(list[1:i+1], list[:i])
	list[0] = v
	return n
}

// Apply updates recent activity from events, in order. Clicks and
// conversions move the item, and its category when the item is in the
// catalog, to the front of the user's recent lists; an erasure record
// ([event.Erasure]) clears the user's activity (what was applied before
// it); impressions, nil and invalid events change nothing. Re-applying a sequence of events that was
// just applied, or any suffix of it, changes nothing, so redelivery after a
// restart is harmless.
//
// Event consumers call Apply concurrently; it locks one user shard per
// event, does not use ctx and never fails.
func (m *Memory) Apply(_ context.Context, evs []*event.Event) error {
	for _, ev := range evs {
		m.apply(ev)
	}
	return nil
}

func (m *Memory) apply(ev *event.Event) {
	if ev != nil && ev.Type == event.Erasure {
		m.eraseActivity(ev.UserID)
		return
	}
	if ev == nil || (ev.Type != event.Click && ev.Type != event.Conversion) ||
		ev.UserID == "" || ev.ItemID == "" || len(ev.UserID) > event.MaxIDLen || len(ev.ItemID) > event.MaxIDLen {
		return
	}
	st := m.st.Load()
	var cat string
	if it, ok := m.itemIn(st, ev.ItemID); ok {
		cat = it.Category
	}
	itemSym, ok := st.syms.intern(ev.ItemID)
	if !ok {
		m.met.dropped.Inc()
		return
	}
	var catSym uint32
	if cat != "" {
		if catSym, ok = st.syms.intern(cat); !ok {
			m.met.dropped.Inc()
		}
	}
	sh := st.userShard(ev.UserID)
	sh.mu.Lock()
	r := sh.m[ev.UserID]
	if r == nil {
		r = &userRec{}
		sh.m[strings.Clone(ev.UserID)] = r
	}
	m.push(r, itemSym, catSym)
	sh.mu.Unlock()
}

func (m *Memory) itemIn(st *state, id string) (event.Item, bool) {
	sh := st.itemShard(id)
	sh.mu.RLock()
	it, ok := sh.m[id]
	sh.mu.RUnlock()
	return it, ok
}

// push records item (and cat, when not 0) on r. The caller holds the lock of
// r's shard.
func (m *Memory) push(r *userRec, item, cat uint32) {
	if r.act == nil {
		r.act = make([]uint32, m.actLen())
	}
	l := m.actLists(r.act)
	r.act[0] = pushFront(l[0], r.act[0], item)
	if cat != 0 {
		r.act[1] = pushFront(l[1], r.act[1], cat)
	}
	r.act[2] = pushFront(l[2], r.act[2], item)
}

// Activity returns the recent activity of the user userID; a user without
// activity has empty lists and no error. The returned slices are copies the
// caller owns.
//
// The engine calls Activity on every request; it does not block beyond a
// shard read lock and does not use ctx.
func (m *Memory) Activity(_ context.Context, userID string) (Activity, error) {
	st := m.st.Load()
	sh := st.userShard(userID)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	r := sh.m[userID]
	if r == nil || r.act == nil {
		return Activity{}, nil
	}
	l := m.actLists(r.act)
	n0, n1, n2 := int(r.act[0]), int(r.act[1]), int(r.act[2])
	out := make([]string, 0, n0+n1+n2) // one allocation for the three lists
	out = st.syms.names(out, l[0][:n0])
	out = st.syms.names(out, l[1][:n1])
	out = st.syms.names(out, l[2][:n2])
	var a Activity
	if n0 > 0 {
		a.RecentItems = out[:n0:n0]
	}
	if n1 > 0 {
		a.RecentCategories = out[n0 : n0+n1 : n0+n1]
	}
	if n2 > 0 {
		a.Clicked = out[n0+n1:]
	}
	return a, nil
}
