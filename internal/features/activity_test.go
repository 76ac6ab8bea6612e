package features

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sightline/sightline/internal/event"
)

func click(user, item string) *event.Event {
	return &event.Event{ID: "e-" + user + "-" + item, Type: event.Click, UserID: user, ItemID: item}
}

// apply applies evs to m, in order. The in-memory store never fails.
func apply(m *Memory, evs ...*event.Event) {
	if err := m.Apply(context.Background(), evs); err != nil {
		panic(err)
	}
}

func TestApplyActivity(t *testing.T) {
	// Catalog: item iN is in category cN%3 ("c0", "c1", "c2"); "x" is unknown.
	cfg := Config{RecentItems: 3, RecentCategories: 2, ClickedItems: 4}
	conv := func(item string) *event.Event {
		return &event.Event{ID: "c", Type: event.Conversion, UserID: "u", ItemID: item}
	}
	imp := func(item string) *event.Event {
		return &event.Event{ID: "i", Type: event.Impression, UserID: "u", ItemID: item}
	}
	tests := []struct {
		name   string
		events []*event.Event
		want   Activity
	}{
		{name: "no events", want: Activity{}},
		{name: "impressions change nothing", events: []*event.Event{imp("i1"), imp("i2")}, want: Activity{}},
		{
			name:   "one click",
			events: []*event.Event{click("u", "i1")},
			want:   Activity{RecentItems: []string{"i1"}, RecentCategories: []string{"c1"}, Clicked: []string{"i1"}},
		},
		{
			name:   "conversion counts like a click",
			events: []*event.Event{conv("i2")},
			want:   Activity{RecentItems: []string{"i2"}, RecentCategories: []string{"c2"}, Clicked: []string{"i2"}},
		},
		{
			name:   "most recent first",
			events: []*event.Event{click("u", "i1"), click("u", "i2"), imp("i4")},
			want:   Activity{RecentItems: []string{"i2", "i1"}, RecentCategories: []string{"c2", "c1"}, Clicked: []string{"i2", "i1"}},
		},
		{
			name:   "repeat moves to front without duplicating",
			events: []*event.Event{click("u", "i1"), click("u", "i2"), conv("i1")},
			want:   Activity{RecentItems: []string{"i1", "i2"}, RecentCategories: []string{"c1", "c2"}, Clicked: []string{"i1", "i2"}},
		},
		{
			name:   "categories distinct",
			events: []*event.Event{click("u", "i1"), click("u", "i4"), click("u", "i7")},
			want:   Activity{RecentItems: []string{"i7", "i4", "i1"}, RecentCategories: []string{"c1"}, Clicked: []string{"i7", "i4", "i1"}},
		},
		{
			name: "lists are bounded, oldest dropped",
			events: []*event.Event{
				click("u", "i0"), click("u", "i1"), click("u", "i2"), click("u", "i3"), click("u", "i4"), click("u", "i5"),
			},
			want: Activity{
				RecentItems:      []string{"i5", "i4", "i3"},
				RecentCategories: []string{"c2", "c1"},
				Clicked:          []string{"i5", "i4", "i3", "i2"},
			},
		},
		{
			name:   "item not in catalog has no category",
			events: []*event.Event{click("u", "i1"), click("u", "x")},
			want:   Activity{RecentItems: []string{"x", "i1"}, RecentCategories: []string{"c1"}, Clicked: []string{"x", "i1"}},
		},
		{
			name: "invalid events are ignored",
			events: []*event.Event{
				nil,
				{Type: event.TypeInvalid, UserID: "u", ItemID: "i1"},
				{Type: event.Click, UserID: "u"},
				{Type: event.Click, UserID: "u", ItemID: string(make([]byte, event.MaxIDLen+1))},
			},
			want: Activity{},
		},
		{
			name:   "other users' events",
			events: []*event.Event{click("v", "i1")},
			want:   Activity{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMemory(t, cfg)
			for i := range 10 {
				if err := m.PutItem(t.Context(), event.Item{ID: fmt.Sprintf("i%d", i), Category: fmt.Sprintf("c%d", i%3)}); err != nil {
					t.Fatal(err)
				}
			}
			for _, ev := range tt.events {
				apply(m, ev)
			}
			got, err := m.Activity(t.Context(), "u")
			if err != nil {
				t.Fatalf("Activity(u) error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Activity(u) mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplyReapplyIsHarmless(t *testing.T) {
	m := newTestMemory(t, Config{})
	evs := []*event.Event{click("u", "a"), click("u", "b"), click("u", "c")}
	for _, ev := range evs {
		apply(m, ev)
	}
	want, _ := m.Activity(t.Context(), "u")
	apply(m, evs[2]) // redelivery of the last event
	got, _ := m.Activity(t.Context(), "u")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Activity(u) after redelivery mismatch (-want +got):\n%s", diff)
	}
}

func TestActivityCopies(t *testing.T) {
	m := newTestMemory(t, Config{})
	if err := m.PutItem(t.Context(), event.Item{ID: "a", Category: "c"}); err != nil {
		t.Fatal(err)
	}
	apply(m, click("u", "a"))
	apply(m, click("u", "b"))
	got, _ := m.Activity(t.Context(), "u")
	got.RecentItems[0] = "changed"
	got.RecentCategories[0] = "changed"
	got.Clicked[1] = "changed"
	_ = append(got.RecentItems, "appended") // must not write into the other lists
	_ = append(got.RecentCategories, "appended")
	again, _ := m.Activity(t.Context(), "u")
	want := Activity{RecentItems: []string{"b", "a"}, RecentCategories: []string{"c"}, Clicked: []string{"b", "a"}}
	if diff := cmp.Diff(want, again); diff != "" {
		t.Errorf("Activity(u) after the caller modified its copy mismatch (-want +got):\n%s", diff)
	}
	// The three lists share one allocation; appending to one must not
	// write into the next.
	if got.RecentCategories[0] != "changed" {
		t.Errorf("after append(RecentItems), RecentCategories[0] = %q, want %q", got.RecentCategories[0], "changed")
	}
	if got.Clicked[0] != "b" {
		t.Errorf("after append(RecentCategories), Clicked[0] = %q, want %q", got.Clicked[0], "b")
	}
}

func TestApplyMaxSymbols(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newTestMemory(t, Config{MaxSymbols: 3, Registerer: reg})
	if err := m.PutItem(t.Context(), event.Item{ID: "a", Category: "ca"}); err != nil {
		t.Fatal(err)
	}
	apply(m, click("u", "a")) // symbols: a, ca
	apply(m, click("u", "b")) // symbols: b (table now full)
	apply(m, click("u", "c")) // dropped
	apply(m, click("v", "a")) // known symbols still work
	got, _ := m.Activity(t.Context(), "u")
	want := Activity{RecentItems: []string{"b", "a"}, RecentCategories: []string{"ca"}, Clicked: []string{"b", "a"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Activity(u) mismatch (-want +got):\n%s", diff)
	}
	if got, _ := m.Activity(t.Context(), "v"); !slices.Equal(got.RecentItems, []string{"a"}) {
		t.Errorf("Activity(v).RecentItems = %q, want [a]", got.RecentItems)
	}
	if got := gather(t, reg)["sightline_features_apply_dropped_total"]; got != 1 {
		t.Errorf("sightline_features_apply_dropped_total = %v, want 1", got)
	}
}

func TestPushFront(t *testing.T) {
	tests := []struct {
		list []uint32
		n    uint32
		v    uint32
		want []uint32
	}{
		{list: []uint32{0, 0, 0}, n: 0, v: 7, want: []uint32{7}},
		{list: []uint32{1, 2, 0}, n: 2, v: 3, want: []uint32{3, 1, 2}},
		{list: []uint32{1, 2, 3}, n: 3, v: 4, want: []uint32{4, 1, 2}},
		{list: []uint32{1, 2, 3}, n: 3, v: 3, want: []uint32{3, 1, 2}},
		{list: []uint32{1, 2, 3}, n: 3, v: 2, want: []uint32{2, 1, 3}},
		{list: []uint32{1, 2, 3}, n: 3, v: 1, want: []uint32{1, 2, 3}},
		{list: []uint32{5}, n: 1, v: 6, want: []uint32{6}},
	}
	for _, tt := range tests {
		in := fmt.Sprint(tt.list[:tt.n], tt.v)
		n := pushFront(tt.list, tt.n, tt.v)
		if got := tt.list[:n]; !slices.Equal(got, tt.want) {
			t.Errorf("pushFront(%s) = %v, want %v", in, got, tt.want)
		}
	}
}

// TestConcurrent runs writers, readers and snapshots at once; with -race it
// checks the locking, and afterwards that every list is bounded and distinct.
func TestConcurrent(t *testing.T) {
	ctx := t.Context()
	cfg := Config{Shards: 4, RecentItems: 5, RecentCategories: 3, ClickedItems: 8}
	m := newTestMemory(t, cfg)
	const users, items, rounds = 50, 40, 400
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range rounds {
				u := fmt.Sprintf("u%d", (i*7+w)%users)
				it := fmt.Sprintf("i%d", (i*13+w)%items)
				switch i % 4 {
				case 0:
					if err := m.PutItem(ctx, event.Item{ID: it, Category: fmt.Sprintf("c%d", i%6)}); err != nil {
						t.Error(err)
					}
				case 1:
					if err := m.PutUser(ctx, event.User{ID: u, Segment: fmt.Sprintf("s%d", i%3)}); err != nil {
						t.Error(err)
					}
				default:
					apply(m, click(u, it))
				}
			}
		})
		wg.Go(func() {
			for i := range rounds {
				u := fmt.Sprintf("u%d", (i*3+w)%users)
				if _, _, err := m.User(ctx, u); err != nil {
					t.Error(err)
				}
				if _, err := m.Activity(ctx, u); err != nil {
					t.Error(err)
				}
				if _, _, err := m.Item(ctx, fmt.Sprintf("i%d", i%items)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			if err := m.WriteSnapshot(discard{}, 1); err != nil {
				t.Error(err)
			}
			if err := m.RangeItems(ctx, func(event.Item) bool { return true }); err != nil {
				t.Error(err)
			}
			if _, _, err := m.Counts(ctx); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()

	for i := range users {
		u := fmt.Sprintf("u%d", i)
		a, err := m.Activity(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range []struct {
			name string
			got  []string
			max  int
		}{
			{"RecentItems", a.RecentItems, cfg.RecentItems},
			{"RecentCategories", a.RecentCategories, cfg.RecentCategories},
			{"Clicked", a.Clicked, cfg.ClickedItems},
		} {
			if len(l.got) > l.max {
				t.Errorf("Activity(%s).%s has %d entries, want at most %d", u, l.name, len(l.got), l.max)
			}
			if c := slices.Compact(slices.Sorted(slices.Values(l.got))); len(c) != len(l.got) {
				t.Errorf("Activity(%s).%s = %q has duplicates", u, l.name, l.got)
			}
		}
	}
	if m.userCount() != users {
		t.Errorf("Users() = %d, want %d", m.userCount(), users)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
