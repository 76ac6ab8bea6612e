package features

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sightline/sightline/internal/event"
)

func newTestMemory(t testing.TB, cfg Config) *Memory {
	t.Helper()
	m, err := NewMemory(cfg)
	if err != nil {
		t.Fatalf("NewMemory(%+v) error = %v", cfg, err)
	}
	return m
}

func TestNewMemoryConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr error
		want    Config // the effective sizes
	}{
		{name: "zero means defaults", want: Config{RecentItems: 20, RecentCategories: 5, ClickedItems: 50, Shards: 64, MaxSymbols: 1 << 22}},
		{name: "shards round up", cfg: Config{Shards: 5}, want: Config{RecentItems: 20, RecentCategories: 5, ClickedItems: 50, Shards: 8, MaxSymbols: 1 << 22}},
		{name: "one shard", cfg: Config{Shards: 1, RecentItems: 1}, want: Config{RecentItems: 1, RecentCategories: 5, ClickedItems: 50, Shards: 1, MaxSymbols: 1 << 22}},
		{name: "negative", cfg: Config{RecentItems: -1}, wantErr: ErrInvalidConfig},
		{name: "list too long", cfg: Config{ClickedItems: 1001}, wantErr: ErrInvalidConfig},
		{name: "too many shards", cfg: Config{Shards: 1<<16 + 1}, wantErr: ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMemory(tt.cfg)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("NewMemory(%+v) error = %v, want %v", tt.cfg, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			got := Config{RecentItems: m.cfg.RecentItems, RecentCategories: m.cfg.RecentCategories,
				ClickedItems: m.cfg.ClickedItems, Shards: m.cfg.Shards, MaxSymbols: m.cfg.MaxSymbols}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("NewMemory(%+v) config mismatch (-want +got):\n%s", tt.cfg, diff)
			}
			if len(m.st.Load().users) != tt.want.Shards {
				t.Errorf("NewMemory(%+v) has %d user shards, want %d", tt.cfg, len(m.st.Load().users), tt.want.Shards)
			}
		})
	}
}

var t0 = time.Date(2026, 3, 1, 12, 30, 0, 123456789, time.UTC)

func TestPutUser(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		puts  []event.User
		id    string
		want  event.User
		known bool
	}{
		{
			name:  "unknown",
			id:    "u1",
			known: false,
		},
		{
			name:  "all attributes",
			puts:  []event.User{{ID: "u1", AgeBucket: "25-34", Segment: "sports", Region: "eu", Device: "ios", Attrs: map[string]string{"plan": "pro"}, UpdatedAt: t0}},
			id:    "u1",
			want:  event.User{ID: "u1", AgeBucket: "25-34", Segment: "sports", Region: "eu", Device: "ios", Attrs: map[string]string{"plan": "pro"}, UpdatedAt: t0},
			known: true,
		},
		{
			name:  "null attributes stay null",
			puts:  []event.User{{ID: "u1", Segment: "news", UpdatedAt: t0}},
			id:    "u1",
			want:  event.User{ID: "u1", Segment: "news", UpdatedAt: t0},
			known: true,
		},
		{
			name: "replace drops old attributes",
			puts: []event.User{
				{ID: "u1", AgeBucket: "18-24", Segment: "news", Attrs: map[string]string{"a": "b"}, UpdatedAt: t0},
				{ID: "u1", Region: "us", UpdatedAt: t0.Add(time.Hour)},
			},
			id:    "u1",
			want:  event.User{ID: "u1", Region: "us", UpdatedAt: t0.Add(time.Hour)},
			known: true,
		},
		{
			name:  "other user",
			puts:  []event.User{{ID: "u1", Segment: "news", UpdatedAt: t0}},
			id:    "u2",
			known: false,
		},
		{
			name:  "time zone normalized to UTC",
			puts:  []event.User{{ID: "u1", UpdatedAt: t0.In(time.FixedZone("X", 3600))}},
			id:    "u1",
			want:  event.User{ID: "u1", UpdatedAt: t0},
			known: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMemory(t, Config{})
			for _, u := range tt.puts {
				if err := m.PutUser(ctx, u); err != nil {
					t.Fatalf("PutUser(%+v) error = %v", u, err)
				}
			}
			got, known, err := m.User(ctx, tt.id)
			if err != nil || known != tt.known {
				t.Fatalf("User(%q) = _, %v, %v, want %v, nil", tt.id, known, err, tt.known)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("User(%q) mismatch (-want +got):\n%s", tt.id, diff)
			}
			if got.UpdatedAt.Location() != time.UTC {
				t.Errorf("User(%q).UpdatedAt location = %v, want UTC", tt.id, got.UpdatedAt.Location())
			}
		})
	}
}

func TestPutUserSetsUpdatedAt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newTestMemory(t, Config{})
		time.Sleep(90 * time.Minute)
		want := time.Now().UTC()
		if err := m.PutUser(t.Context(), event.User{ID: "u1"}); err != nil {
			t.Fatalf("PutUser() error = %v", err)
		}
		got, _, _ := m.User(t.Context(), "u1")
		if !got.UpdatedAt.Equal(want) {
			t.Errorf("User().UpdatedAt = %v, want %v", got.UpdatedAt, want)
		}
	})
}

func TestPutUserInvalid(t *testing.T) {
	m := newTestMemory(t, Config{})
	tests := []struct {
		u    event.User
		want error
	}{
		{event.User{}, event.ErrMissingField},
		{event.User{ID: strings.Repeat("x", event.MaxIDLen+1)}, event.ErrFieldTooLong},
		{event.User{ID: "u1", Segment: strings.Repeat("x", event.MaxIDLen+1)}, event.ErrFieldTooLong},
	}
	for _, tt := range tests {
		if err := m.PutUser(t.Context(), tt.u); !errors.Is(err, tt.want) {
			t.Errorf("PutUser(%.20q) error = %v, want %v", tt.u.ID, err, tt.want)
		}
	}
	if m.userCount() != 0 {
		t.Errorf("Users() = %d after invalid puts, want 0", m.userCount())
	}
}

func TestUserCopies(t *testing.T) {
	ctx := t.Context()
	m := newTestMemory(t, Config{})
	in := event.User{ID: "u1", Attrs: map[string]string{"k": "v"}}
	if err := m.PutUser(ctx, in); err != nil {
		t.Fatal(err)
	}
	in.Attrs["k"] = "changed by caller"
	got, _, _ := m.User(ctx, "u1")
	got.Attrs["k"] = "changed by reader"
	again, _, _ := m.User(ctx, "u1")
	if again.Attrs["k"] != "v" {
		t.Errorf("User(u1).Attrs[k] = %q after callers modified their maps, want %q", again.Attrs["k"], "v")
	}
}

func TestUsersCount(t *testing.T) {
	ctx := t.Context()
	m := newTestMemory(t, Config{Shards: 4})
	for _, id := range []string{"a", "b", "c", "a"} {
		if err := m.PutUser(ctx, event.User{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	// Users known only from events are not profiles.
	apply(m, &event.Event{ID: "e", Type: event.Click, UserID: "d", ItemID: "i"})
	if got := m.userCount(); got != 3 {
		t.Errorf("Users() = %d, want 3", got)
	}
	if _, known, _ := m.User(ctx, "d"); known {
		t.Errorf("User(d) known = true for a user seen only in events, want false")
	}
	// A profile put later for that user counts once.
	if err := m.PutUser(ctx, event.User{ID: "d"}); err != nil {
		t.Fatal(err)
	}
	if got := m.userCount(); got != 4 {
		t.Errorf("Users() = %d, want 4", got)
	}
}

func TestItems(t *testing.T) {
	ctx := t.Context()
	m := newTestMemory(t, Config{Shards: 2})
	var changed []event.Item
	m.OnItemChange(func(it event.Item) { changed = append(changed, it) })

	tags := []string{"new", "sale"}
	puts := []event.Item{
		{ID: "i1", Category: "shoes", Tags: tags, Available: true},
		{ID: "i2", Category: "hats"},
		{ID: "i1", Category: "boots", Available: true},
	}
	for _, it := range puts {
		if err := m.PutItem(ctx, it); err != nil {
			t.Fatalf("PutItem(%+v) error = %v", it, err)
		}
	}
	tags[0] = "changed by caller"

	wantChanged := []event.Item{
		{ID: "i1", Category: "shoes", Tags: []string{"new", "sale"}, Available: true},
		{ID: "i2", Category: "hats"},
		{ID: "i1", Category: "boots", Available: true},
	}
	if diff := cmp.Diff(wantChanged, changed); diff != "" {
		t.Errorf("OnItemChange calls mismatch (-want +got):\n%s", diff)
	}
	tests := []struct {
		id   string
		want event.Item
		ok   bool
	}{
		{"i1", event.Item{ID: "i1", Category: "boots", Available: true}, true},
		{"i2", event.Item{ID: "i2", Category: "hats"}, true},
		{"i3", event.Item{}, false},
	}
	for _, tt := range tests {
		got, ok, err := m.Item(ctx, tt.id)
		if ok != tt.ok || err != nil {
			t.Errorf("Item(%q) ok = %v, %v, want %v, nil", tt.id, ok, err, tt.ok)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Item(%q) mismatch (-want +got):\n%s", tt.id, diff)
		}
	}
	if users, items, err := m.Counts(ctx); users != 0 || items != 2 || err != nil {
		t.Errorf("Counts() = %d, %d, %v, want 0, 2, nil", users, items, err)
	}
	if err := m.PutItem(ctx, event.Item{ID: "i3"}); !errors.Is(err, event.ErrMissingField) {
		t.Errorf("PutItem(no category) error = %v, want %v", err, event.ErrMissingField)
	}
	if err := m.PutItem(ctx, event.Item{ID: "i4", Category: "c", Tags: tags}); err != nil {
		t.Fatal(err)
	}
	if it, _, _ := m.Item(ctx, "i4"); it.Tags[0] != "changed by caller" || len(it.Tags) != 2 {
		t.Errorf("Item(i4).Tags = %q, want %q", it.Tags, tags)
	}
	tags[1] = "changed again"
	if it, _, _ := m.Item(ctx, "i4"); it.Tags[1] != "sale" {
		t.Errorf("Item(i4).Tags[1] = %q after the caller changed its slice, want %q", it.Tags[1], "sale")
	}
}

func TestRangeItems(t *testing.T) {
	ctx := t.Context()
	m := newTestMemory(t, Config{Shards: 4})
	want := map[string]string{}
	for i := range 50 {
		id := "item-" + string(rune('A'+i))
		want[id] = "cat"
		if err := m.PutItem(ctx, event.Item{ID: id, Category: "cat"}); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]string{}
	err := m.RangeItems(ctx, func(it event.Item) bool {
		got[it.ID] = it.Category
		// fn runs without locks: calling back into the store must not deadlock.
		if err := m.PutItem(ctx, event.Item{ID: it.ID, Category: it.Category}); err != nil {
			t.Error(err)
		}
		return true
	})
	if err != nil {
		t.Fatalf("RangeItems() = %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RangeItems() mismatch (-want +got):\n%s", diff)
	}
	n := 0
	if err := m.RangeItems(ctx, func(event.Item) bool { n++; return n < 7 }); err != nil || n != 7 {
		t.Errorf("RangeItems() called fn %d times after it returned false on call 7, err %v, want 7, nil", n, err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := m.RangeItems(canceled, func(event.Item) bool { return true }); !errors.Is(err, context.Canceled) {
		t.Errorf("RangeItems(canceled ctx) = %v, want context.Canceled", err)
	}
}

func TestMetrics(t *testing.T) {
	ctx := t.Context()
	reg := prometheus.NewRegistry()
	m := newTestMemory(t, Config{Registerer: reg})
	for _, id := range []string{"a", "b"} {
		if err := m.PutUser(ctx, event.User{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.PutItem(ctx, event.Item{ID: "i", Category: "c"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "a", "nobody"} {
		if _, _, err := m.User(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]float64{
		"sightline_features_items":                        1,
		"sightline_features_users":                        2,
		`sightline_features_lookups_total{result="hit"}`:  3,
		`sightline_features_lookups_total{result="miss"}`: 1,
		"sightline_features_apply_dropped_total":          0,
	}
	if diff := cmp.Diff(want, gather(t, reg)); diff != "" {
		t.Errorf("metrics mismatch (-want +got):\n%s", diff)
	}
	// A second store on the same registry is a configuration error.
	if _, err := NewMemory(Config{Registerer: reg}); err == nil {
		t.Errorf("NewMemory() on a registry that already has the metrics error = nil, want an error")
	}
}

// gather returns the registry's samples by name{label="value",...}.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather() error = %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			name := mf.GetName()
			if len(mt.GetLabel()) > 0 {
				var ls []string
				for _, l := range mt.GetLabel() {
					ls = append(ls, l.GetName()+"="+strconv.Quote(l.GetValue()))
				}
				name += "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case mt.Gauge != nil:
				out[name] = mt.GetGauge().GetValue()
			case mt.Counter != nil:
				out[name] = mt.GetCounter().GetValue()
			}
		}
	}
	return out
}
