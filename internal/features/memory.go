package features

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unique"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sightline/sightline/internal/event"
)

// Defaults for the Config fields left zero.
const (
	DefaultRecentItems      = 20
	DefaultRecentCategories = 5
	DefaultClickedItems     = 50
	DefaultShards           = 64
	DefaultMaxSymbols       = 1 << 22
)

// Upper bounds NewMemory enforces on Config.
const (
	maxListLen = 1000
	maxShards  = 1 << 16
)

// Errors returned by this package. Callers match them with errors.Is.
var (
	// ErrInvalidConfig reports a Config field out of range.
	ErrInvalidConfig = errors.New("invalid features config")
	// ErrCorruptSnapshot reports a snapshot that is truncated, fails its
	// checksum or cannot be decoded.
	ErrCorruptSnapshot = errors.New("corrupt feature snapshot")
)

// Config configures a [Memory]. The zero value is a valid configuration with
// the defaults documented on each field.
type Config struct {
	// RecentItems is how many distinct recently clicked or converted items
	// are kept per user, most recent first. Zero means 20; at most 1000.
	RecentItems int
	// RecentCategories is how many distinct categories of recently clicked or
	// converted items are kept per user, most recent first. Zero means 5; at
	// most 1000.
	RecentCategories int
	// ClickedItems is how many distinct clicked or converted items are kept
	// per user for seen-filtering, most recent first. Zero means 50; at most
	// 1000.
	ClickedItems int
	// Shards is the number of independently locked shards of the user and
	// item maps. It is rounded up to a power of two. Zero means 64; at most
	// 65536.
	Shards int
	// MaxSymbols bounds how many distinct item ids and category names the
	// activity lists can refer to. They are interned and never forgotten, so
	// the bound keeps ids invented by clients from growing memory without
	// limit; once it is reached, Apply ignores items it has not seen before
	// and counts them in sightline_features_apply_dropped_total. Zero means
	// 4,194,304.
	MaxSymbols int
	// Logger receives operational messages. Nil means no logging.
	Logger *slog.Logger
	// Registerer registers the store's metrics. Nil means no metrics are
	// registered.
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() (Config, error) {
	def := func(v *int, d, limit int, name string) error {
		if *v == 0 {
			*v = d
		}
		if *v < 0 || *v > limit {
			return fmt.Errorf("%w: %s = %d, want 0..%d", ErrInvalidConfig, name, *v, limit)
		}
		return nil
	}
	if err := errors.Join(
		def(&c.RecentItems, DefaultRecentItems, maxListLen, "RecentItems"),
		def(&c.RecentCategories, DefaultRecentCategories, maxListLen, "RecentCategories"),
		def(&c.ClickedItems, DefaultClickedItems, maxListLen, "ClickedItems"),
		def(&c.Shards, DefaultShards, maxShards, "Shards"),
		def(&c.MaxSymbols, DefaultMaxSymbols, 1<<31, "MaxSymbols"),
	); err != nil {
		return c, err
	}
	c.Shards = 1 << bits.Len(uint(c.Shards-1))
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Memory is the in-memory feature and profile store: user profiles, the item
// catalog and per-user recent activity, with snapshots to disk.
//
// All methods are goroutine-safe. Lookups take a read lock on one of
// Config.Shards shards; writes lock one shard.
type Memory struct {
	cfg Config
	met *metrics
	st  atomic.Pointer[state]

	// notifyMu serializes catalog changes with their OnItemChange
	// notifications, so subscribers see changes in store order.
	notifyMu  sync.Mutex
	callbacks []func(event.Item)
}

// state is everything ReadSnapshot replaces at once.
type state struct {
	seed   maphash.Seed
	mask   uint64
	users  []userShard
	items  []itemShard
	syms   *symtab
	nUsers atomic.Int64
	nItems atomic.Int64
}

type userShard struct {
	mu sync.RWMutex
	m  map[string]*userRec
	_  [32]byte // keep neighbouring shard locks off one cache line
}

type itemShard struct {
	mu sync.RWMutex
	m  map[string]event.Item
	_  [32]byte
}

// userRec is one user. The model attributes are interned: most users share
// a handful of values. act is nil until the user's first click.
type userRec struct {
	attrs   [4]unique.Handle[string] // age bucket, segment, region, device; zero handle = null
	free    map[string]string        // never mutated once stored
	sec     int64                    // UpdatedAt
	nsec    int32
	profile bool // a profile was put; false for users known only from events
	act     []uint32
}

// NewMemory returns an empty store configured by cfg.
func NewMemory(cfg Config) (*Memory, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m := &Memory{cfg: cfg}
	m.st.Store(m.newState())
	m.met, err = newMetrics(cfg.Registerer, m)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Memory) newState() *state {
	n := m.cfg.Shards
	st := &state{
		seed:  maphash.MakeSeed(),
		mask:  uint64(n - 1),
		users: make([]userShard, n),
		items: make([]itemShard, n),
		syms:  newSymtab(m.cfg.MaxSymbols),
	}
	for i := range n {
		st.users[i].m = make(map[string]*userRec)
		st.items[i].m = make(map[string]event.Item)
	}
	return st
}

func (st *state) userShard(id string) *userShard {
	return &st.users[maphash.String(st.seed, id)&st.mask]
}

func (st *state) itemShard(id string) *itemShard {
	return &st.items[maphash.String(st.seed, id)&st.mask]
}

var noHandle unique.Handle[string]

func intern(s string) unique.Handle[string] {
	if s == "" {
		return noHandle
	}
	return unique.Make(s)
}

func unintern(h unique.Handle[string]) string {
	if h == noHandle {
		return ""
	}
	return h.Value()
}

// Immediate reports that reads never wait: the store is in memory (the
// engine's Immediate contract).
func (m *Memory) Immediate() bool { return true }

// User returns the profile of the user id and whether the store knows it.
// An unknown user is not an error: it returns the zero User and false. The
// returned Attrs map is a copy the caller owns. UpdatedAt is in UTC.
//
// The engine calls User on every request; it does not block beyond a shard
// read lock and does not use ctx.
func (m *Memory) User(_ context.Context, id string) (event.User, bool, error) {
	st := m.st.Load()
	sh := st.userShard(id)
	sh.mu.RLock()
	r := sh.m[id]
	if r == nil || !r.profile {
		sh.mu.RUnlock()
		m.met.miss.Inc()
		return event.User{}, false, nil
	}
	attrs, free, sec, nsec := r.attrs, r.free, r.sec, r.nsec
	sh.mu.RUnlock()
	m.met.hit.Inc()
	u := event.User{
		ID:        id,
		AgeBucket: unintern(attrs[0]),
		Segment:   unintern(attrs[1]),
		Region:    unintern(attrs[2]),
		Device:    unintern(attrs[3]),
		UpdatedAt: time.Unix(sec, int64(nsec)).UTC(),
	}
	if len(free) > 0 {
		u.Attrs = maps.Clone(free)
	}
	return u, true, nil
}

// PutUser validates u and replaces the stored profile of u.ID with it,
// keeping the user's activity. A zero UpdatedAt is set to the current time.
func (m *Memory) PutUser(_ context.Context, u event.User) error {
	if err := u.Validate(); err != nil {
		return fmt.Errorf("put user: %w", err)
	}
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = time.Now()
	}
	m.st.Load().putUser(u)
	return nil
}

func (st *state) putUser(u event.User) {
	attrs := [4]unique.Handle[string]{intern(u.AgeBucket), intern(u.Segment), intern(u.Region), intern(u.Device)}
	var free map[string]string
	if len(u.Attrs) > 0 {
		free = make(map[string]string, len(u.Attrs))
		for k, v := range u.Attrs {
			free[unique.Make(k).Value()] = strings.Clone(v)
		}
	}
	sh := st.userShard(u.ID)
	sh.mu.Lock()
	r := sh.m[u.ID]
	if r == nil {
		r = &userRec{}
		sh.m[strings.Clone(u.ID)] = r
	}
	if !r.profile {
		r.profile = true
		st.nUsers.Add(1)
	}
	r.attrs, r.free = attrs, free
	r.sec, r.nsec = u.UpdatedAt.Unix(), int32(u.UpdatedAt.Nanosecond())
	sh.mu.Unlock()
}

// Item returns the catalog item id and whether it exists; an unknown item is
// not an error. The returned Tags slice is shared with the store and must
// not be modified.
//
// The model updater calls Item for every event; it does not block beyond a
// shard read lock, does not use ctx and never fails.
func (m *Memory) Item(_ context.Context, id string) (event.Item, bool, error) {
	it, ok := m.itemIn(m.st.Load(), id)
	return it, ok, nil
}

// PutItem validates it, replaces the catalog entry it.ID with it, and then
// calls every function registered with OnItemChange.
func (m *Memory) PutItem(_ context.Context, it event.Item) error {
	if err := it.Validate(); err != nil {
		return fmt.Errorf("put item: %w", err)
	}
	it.ID = strings.Clone(it.ID)
	it.Category = unique.Make(it.Category).Value()
	if len(it.Tags) > 0 {
		it.Tags = slices.Clone(it.Tags)
	} else {
		it.Tags = nil
	}
	m.notifyMu.Lock()
	defer m.notifyMu.Unlock()
	m.st.Load().putItem(it)
	for _, fn := range m.callbacks {
		fn(it)
	}
	return nil
}

func (st *state) putItem(it event.Item) {
	sh := st.itemShard(it.ID)
	sh.mu.Lock()
	_, existed := sh.m[it.ID]
	sh.m[it.ID] = it
	sh.mu.Unlock()
	if !existed {
		st.nItems.Add(1)
	}
}

// Counts returns the number of user profiles (users put with PutUser or
// restored from a snapshot; users known only from their events are not
// counted) and of catalog items. It never fails.
func (m *Memory) Counts(context.Context) (users, items int, err error) {
	return m.userCount(), m.itemCount(), nil
}

func (m *Memory) userCount() int { return int(m.st.Load().nUsers.Load()) }
func (m *Memory) itemCount() int { return int(m.st.Load().nItems.Load()) }

// RangeItems calls fn for each catalog item, in no particular order, until
// fn returns false. It copies one shard at a time and calls fn without
// holding a lock, so fn may call any method of m; items changed during the
// iteration may or may not be seen. It checks ctx between shards and
// returns its error when it is done; otherwise it returns nil.
func (m *Memory) RangeItems(ctx context.Context, fn func(event.Item) bool) error {
	st := m.st.Load()
	var buf []event.Item
	for i := range st.items {
		if err := ctx.Err(); err != nil {
			return err
		}
		sh := &st.items[i]
		sh.mu.RLock()
		buf = slices.AppendSeq(buf[:0], maps.Values(sh.m))
		sh.mu.RUnlock()
		for _, it := range buf {
			if !fn(it) {
				return nil
			}
		}
	}
	return nil
}

// OnItemChange registers fn to be called after each PutItem with the stored
// item, and for each item restored by ReadSnapshot. Calls are serialized and
// in the order of the changes. fn runs on the writer's goroutine: it must be
// cheap and must not block; it may call Item or RangeItems but not PutItem,
// ReadSnapshot or OnItemChange.
func (m *Memory) OnItemChange(fn func(event.Item)) {
	m.notifyMu.Lock()
	defer m.notifyMu.Unlock()
	m.callbacks = append(m.callbacks, fn)
}

// Run returns nil when ctx is done. The in-memory store calls its
// OnItemChange functions synchronously, from PutItem and ReadSnapshot, so
// it has nothing to run; Run exists so that it has the shape of
// [Redis.Run] and a node starts either the same way.
func (m *Memory) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
