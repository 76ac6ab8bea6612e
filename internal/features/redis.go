package features

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/sightline/sightline/internal/event"
)

// Defaults for the RedisConfig fields left zero.
const (
	DefaultRedisAddr        = "127.0.0.1:6379"
	DefaultRedisKeyPrefix   = "sightline:"
	DefaultRedisDialTimeout = 100 * time.Millisecond
	DefaultRedisReadTimeout = 50 * time.Millisecond
)

// applyChunk bounds the events sent in one pipeline by Apply, so that one
// pipeline's replies arrive well within ReadTimeout.
const applyChunk = 256

// RedisConfig configures a [Redis]. The zero value connects to
// 127.0.0.1:6379, database 0, with the defaults documented on each field.
type RedisConfig struct {
	// Addr is the host:port of the Redis server. Empty means
	// 127.0.0.1:6379.
	Addr string
	// Password authenticates to the server. Empty means no AUTH.
	Password string
	// DB is the Redis database number, 0..15 on a default server.
	DB int
	// KeyPrefix starts every key the store writes, so that several
	// deployments can share one server. Empty means "sightline:".
	KeyPrefix string
	// PoolSize is the maximum number of connections. Zero means the
	// go-redis default, 10 per GOMAXPROCS.
	PoolSize int
	// DialTimeout bounds establishing a connection. Zero means 100ms.
	DialTimeout time.Duration
	// ReadTimeout bounds waiting for each reply (and each write) when the
	// caller's ctx has no earlier deadline; a ctx deadline always applies.
	// Zero means 50ms: the engine's feature budget (5ms) comes from its ctx.
	ReadTimeout time.Duration
	// ActivityTTL, when positive, expires a user's activity lists that long
	// after the user's last click or conversion. Zero means they never
	// expire.
	ActivityTTL time.Duration
	// RecentItems, RecentCategories and ClickedItems bound the per-user
	// activity lists exactly as the fields of the same names in [Config].
	// Zero means 20, 5 and 50; at most 1000.
	RecentItems      int
	RecentCategories int
	ClickedItems     int
	// Logger receives operational messages. Nil means no logging.
	Logger *slog.Logger
	// Registerer registers the store's metrics. Nil means no metrics are
	// registered.
	Registerer prometheus.Registerer
}

func (c RedisConfig) withDefaults() (RedisConfig, error) {
	mc, err := Config{RecentItems: c.RecentItems, RecentCategories: c.RecentCategories, ClickedItems: c.ClickedItems}.withDefaults()
	if err != nil {
		return c, err
	}
	c.RecentItems, c.RecentCategories, c.ClickedItems = mc.RecentItems, mc.RecentCategories, mc.ClickedItems
	if c.Addr == "" {
		c.Addr = DefaultRedisAddr
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultRedisKeyPrefix
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultRedisDialTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultRedisReadTimeout
	}
	switch {
	case c.DB < 0:
		return c, fmt.Errorf("%w: DB = %d, want >= 0", ErrInvalidConfig, c.DB)
	case c.PoolSize < 0:
		return c, fmt.Errorf("%w: PoolSize = %d, want >= 0", ErrInvalidConfig, c.PoolSize)
	case c.DialTimeout < 0 || c.ReadTimeout < 0 || c.ActivityTTL < 0:
		return c, fmt.Errorf("%w: negative timeout or TTL", ErrInvalidConfig)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Redis is the feature and profile store kept in Redis, for deployments
// where the API nodes are stateless: user profiles, the item catalog and
// per-user recent activity, with the same semantics as [Memory].
//
// Keys, under RedisConfig.KeyPrefix P:
//
//	P u:<user>   hash  age_bucket, segment, region, device (absent when
//	                   null), updated_at (RFC 3339), a:<key> per free attribute
//	P ri:<user>  list  recent items, most recent first
//	P rc:<user>  list  recent categories, most recent first
//	P cl:<user>  list  clicked items, most recent first
//	P i:<item>   hash  category, tags (JSON array, absent when none),
//	                   available ("1" or "0")
//	P n:users    int   number of user profiles
//	P n:items    int   number of catalog items
//	P catalog    stream one entry per PutItem: id, then the fields of the
//	                   item hash; capped at about 100,000 entries
//
// Writes that touch several keys run as Lua scripts, so they are atomic.
// The scripts touch a user's keys together with an item's, so the store
// needs a single Redis server (or replicas of one), not Redis Cluster.
//
// Every method that talks to Redis honours ctx's deadline and cancellation
// and returns an error rather than waiting past them; a timeout wraps
// [context.DeadlineExceeded]. All methods are goroutine-safe.
type Redis struct {
	cfg    RedisConfig
	c      *redis.Client
	met    *redisMetrics
	users  string // key of the user counter
	items  string // key of the item counter
	stream string // key of the catalog stream
	ttlArg string // ActivityTTL in ms for the apply script, "0" for none

	tail    catalogTail
	catalog Catalog // item categories for Apply, or nil (UseCatalog)
}

// putHash replaces the hash KEYS[1] by the field/value pairs in ARGV and
// increments the counter KEYS[2] when the hash did not exist.
var putHash = redis.NewScript(`
local existed = redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV))
if existed == 0 then redis.call('INCR', KEYS[2]) end
return existed
`)

// applyScript moves ARGV[1] (an item id) to the front of the lists KEYS[1]
// (recent items, bounded by ARGV[2]) and KEYS[3] (clicked, ARGV[4]), and the
// item's category, read from the item hash KEYS[4], to the front of KEYS[2]
// (bounded by ARGV[3]). ARGV[5] > 0 sets the lists' TTL in milliseconds.
var applyScript = redis.NewScript(`
local ttl = tonumber(ARGV[5])
local function push(k, v, n)
  redis.call('LREM', k, 0, v)
  redis.call('LPUSH', k, v)
  redis.call('LTRIM', k, 0, n - 1)
  if ttl > 0 then redis.call('PEXPIRE', k, ttl) end
end
push(KEYS[1], ARGV[1], tonumber(ARGV[2]))
push(KEYS[3], ARGV[1], tonumber(ARGV[4]))
local cat = redis.call('HGET', KEYS[4], 'category')
if cat then push(KEYS[2], cat, tonumber(ARGV[3])) end
return 0
`)

// NewRedis returns a store that keeps its state in the Redis server of cfg.
// It does not connect: the first command does, and [Redis.Ping] checks the
// server. Close releases the connections.
func NewRedis(cfg RedisConfig) (*Redis, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Redis{
		cfg:    cfg,
		users:  cfg.KeyPrefix + "n:users",
		items:  cfg.KeyPrefix + "n:items",
		stream: cfg.KeyPrefix + "catalog",
		ttlArg: strconv.FormatInt(cfg.ActivityTTL.Milliseconds(), 10),
	}
	r.c = redis.NewClient(&redis.Options{
		Addr:                  cfg.Addr,
		Password:              cfg.Password,
		DB:                    cfg.DB,
		PoolSize:              cfg.PoolSize,
		DialTimeout:           cfg.DialTimeout,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.ReadTimeout,
		PoolTimeout:           cfg.ReadTimeout + cfg.DialTimeout,
		ContextTimeoutEnabled: true,
		// No retries, of commands or dials: the budget of a request is a
		// few milliseconds, and ingest retries a failed batch itself.
		MaxRetries:      -1,
		DialerRetries:   1,
		DisableIdentity: true,
	})
	r.met, err = newRedisMetrics(cfg.Registerer, r.c)
	if err != nil {
		return nil, errors.Join(err, r.c.Close())
	}
	return r, nil
}

// Close closes the connections. Calls after the first return an error.
func (r *Redis) Close() error {
	return r.c.Close()
}

// Ping checks that the server answers, for start-up and readiness checks.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.c.Ping(ctx).Err(); err != nil {
		return r.fail(ctx, opPing, err)
	}
	return nil
}

func (r *Redis) userKey(id string) string { return r.cfg.KeyPrefix + "u:" + id }
func (r *Redis) itemKey(id string) string { return r.cfg.KeyPrefix + "i:" + id }

func (r *Redis) activityKeys(id string) [3]string {
	p := r.cfg.KeyPrefix
	return [3]string{p + "ri:" + id, p + "rc:" + id, p + "cl:" + id}
}

// Hash fields of a user profile.
const (
	fieldAgeBucket = "age_bucket"
	fieldSegment   = "segment"
	fieldRegion    = "region"
	fieldDevice    = "device"
	fieldUpdatedAt = "updated_at"
	fieldAttrPfx   = "a:"
)

// User returns the profile of the user id and whether the store knows it.
// An unknown user is not an error: it returns the zero User and false. The
// returned Attrs map is the caller's. UpdatedAt is in UTC.
//
// The engine calls User on every request; it makes one round trip.
func (r *Redis) User(ctx context.Context, id string) (event.User, bool, error) {
	h, err := r.c.HGetAll(ctx, r.userKey(id)).Result()
	if err != nil {
		return event.User{}, false, r.fail(ctx, opUser, err)
	}
	return r.decodeUser(id, h)
}

// Activity returns the recent activity of the user userID; a user without
// activity has empty lists and no error. It makes one round trip.
func (r *Redis) Activity(ctx context.Context, userID string) (Activity, error) {
	var cmds [3]*redis.StringSliceCmd
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		cmds = r.queueActivity(ctx, p, userID)
		return nil
	})
	if err != nil {
		return Activity{}, r.fail(ctx, opActivity, err)
	}
	return activityOf(cmds), nil
}

// Features returns the profile and recent activity of the user id in one
// round trip, with the results of [Redis.User] and [Redis.Activity]. The
// engine calls it instead of the two when its feature source has it.
func (r *Redis) Features(ctx context.Context, id string) (event.User, bool, Activity, error) {
	var (
		hc   *redis.MapStringStringCmd
		cmds [3]*redis.StringSliceCmd
	)
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		hc = p.HGetAll(ctx, r.userKey(id))
		cmds = r.queueActivity(ctx, p, id)
		return nil
	})
	if err != nil {
		return event.User{}, false, Activity{}, r.fail(ctx, opFeatures, err)
	}
	u, ok, err := r.decodeUser(id, hc.Val())
	if err != nil {
		return event.User{}, false, Activity{}, err
	}
	return u, ok, activityOf(cmds), nil
}

func (r *Redis) queueActivity(ctx context.Context, p redis.Pipeliner, id string) [3]*redis.StringSliceCmd {
	k := r.activityKeys(id)
	return [3]*redis.StringSliceCmd{
		p.LRange(ctx, k[0], 0, int64(r.cfg.RecentItems-1)),
		p.LRange(ctx, k[1], 0, int64(r.cfg.RecentCategories-1)),
		p.LRange(ctx, k[2], 0, int64(r.cfg.ClickedItems-1)),
	}
}

func activityOf(cmds [3]*redis.StringSliceCmd) Activity {
	nonEmpty := func(s []string) []string {
		if len(s) == 0 {
			return nil
		}
		return s
	}
	return Activity{
		RecentItems:      nonEmpty(cmds[0].Val()),
		RecentCategories: nonEmpty(cmds[1].Val()),
		Clicked:          nonEmpty(cmds[2].Val()),
	}
}

func (r *Redis) decodeUser(id string, h map[string]string) (event.User, bool, error) {
	if len(h) == 0 {
		r.met.miss.Inc()
		return event.User{}, false, nil
	}
	u := event.User{ID: id}
	for k, v := range h {
		switch k {
		case fieldAgeBucket:
			u.AgeBucket = v
		case fieldSegment:
			u.Segment = v
		case fieldRegion:
			u.Region = v
		case fieldDevice:
			u.Device = v
		case fieldUpdatedAt:
			if err := u.UpdatedAt.UnmarshalText([]byte(v)); err != nil {
				r.met.errors.WithLabelValues(opUser, "corrupt").Inc()
				return event.User{}, false, fmt.Errorf("redis user: decode updated_at: %w", err)
			}
			u.UpdatedAt = u.UpdatedAt.UTC()
		default:
			if name, ok := strings.CutPrefix(k, fieldAttrPfx); ok {
				if u.Attrs == nil {
					u.Attrs = make(map[string]string)
				}
				u.Attrs[name] = v
			}
		}
	}
	r.met.hit.Inc()
	return u, true, nil
}

// PutUser validates u and replaces the stored profile of u.ID with it,
// keeping the user's activity. A zero UpdatedAt is set to the current time.
// Null attributes are not stored.
func (r *Redis) PutUser(ctx context.Context, u event.User) error {
	if err := u.Validate(); err != nil {
		return fmt.Errorf("put user: %w", err)
	}
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = time.Now()
	}
	ts, err := u.UpdatedAt.UTC().MarshalText()
	if err != nil {
		return fmt.Errorf("put user: updated_at: %w", err)
	}
	args := make([]any, 0, 10+2*len(u.Attrs))
	args = append(args, fieldUpdatedAt, ts)
	for _, f := range [...]struct{ name, v string }{
		{fieldAgeBucket, u.AgeBucket}, {fieldSegment, u.Segment}, {fieldRegion, u.Region}, {fieldDevice, u.Device},
	} {
		if f.v != "" {
			args = append(args, f.name, f.v)
		}
	}
	for k, v := range u.Attrs {
		args = append(args, fieldAttrPfx+k, v)
	}
	if err := r.run(ctx, putHash, []string{r.userKey(u.ID), r.users}, args); err != nil {
		return r.fail(ctx, opPutUser, err)
	}
	return nil
}

// Counts returns the number of user profiles (users put with PutUser; users
// known only from their events are not counted) and of catalog items, in
// one round trip.
func (r *Redis) Counts(ctx context.Context) (users, items int, err error) {
	vals, err := r.c.MGet(ctx, r.users, r.items).Result()
	if err != nil {
		return 0, 0, r.fail(ctx, opCount, err)
	}
	var n [2]int
	for i, v := range vals {
		if v == nil {
			continue // no profile or item yet
		}
		s, _ := v.(string)
		if n[i], err = strconv.Atoi(s); err != nil {
			r.met.errors.WithLabelValues(opCount, "corrupt").Inc()
			return 0, 0, fmt.Errorf("redis count: %w", err)
		}
	}
	return n[0], n[1], nil
}

// Apply updates recent activity from events, in order, exactly as
// [Memory.Apply] does: clicks and conversions move the item, and
// its category when the item is in the catalog, to the front of the user's
// recent lists; an erasure record deletes the user's lists; impressions
// and invalid events change nothing. Each event is
// applied atomically; the events go in pipelines of up to 256, one round
// trip each.
//
// Re-applying a sequence of events that was just applied, or any suffix of
// it, changes nothing, so an ingest consumer may retry a batch whose Apply
// failed part-way. Event consumers call Apply concurrently.
func (r *Redis) Apply(ctx context.Context, evs []*event.Event) error {
	batch := evs[:0:0]
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := r.applyBatch(ctx, batch)
		batch = batch[:0]
		return err
	}
	for _, ev := range evs {
		if !appliable(ev) {
			continue
		}
		batch = append(batch, ev)
		if len(batch) == applyChunk {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// appliable reports whether Apply changes anything for ev: a valid click,
// conversion or erasure.
func appliable(ev *event.Event) bool {
	if ev == nil || ev.UserID == "" || len(ev.UserID) > event.MaxIDLen {
		return false
	}
	if ev.Type == event.Erasure {
		return true
	}
	return (ev.Type == event.Click || ev.Type == event.Conversion) && ev.ItemID != "" && len(ev.ItemID) <= event.MaxIDLen
}

func (r *Redis) applyBatch(ctx context.Context, evs []*event.Event) error {
	if cats, ok := r.categories(evs); ok {
		return r.applyKnown(ctx, evs, cats)
	}
	ri, rc, cl := strconv.Itoa(r.cfg.RecentItems), strconv.Itoa(r.cfg.RecentCategories), strconv.Itoa(r.cfg.ClickedItems)
	exec := func() error {
		_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, ev := range evs {
				k := r.activityKeys(ev.UserID)
				if ev.Type == event.Erasure {
					p.Del(ctx, k[0], k[1], k[2])
					continue
				}
				applyScript.EvalSha(ctx, p, []string{k[0], k[1], k[2], r.itemKey(ev.ItemID)},
					ev.ItemID, ri, rc, cl, r.ttlArg)
			}
			return nil
		})
		return err
	}
	err := exec()
	if isNoScript(err) {
		// The server lost its script cache (restart, SCRIPT FLUSH): no
		// event was applied, only erasures ran, and running them again
		// in order with the events changes nothing.
		if err = applyScript.Load(ctx, r.c).Err(); err == nil {
			r.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "loaded redis activity script")
			err = exec()
		}
	}
	if err != nil {
		return r.fail(ctx, opApply, err)
	}
	return nil
}

// run runs a script once, loading it when the server does not have it.
func (r *Redis) run(ctx context.Context, s *redis.Script, keys []string, args []any) error {
	err := s.EvalSha(ctx, r.c, keys, args...).Err()
	if isNoScript(err) {
		err = s.Eval(ctx, r.c, keys, args...).Err()
	}
	return err
}

func isNoScript(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}

// Item returns the catalog item id and whether it exists; an unknown item is
// not an error. It makes one round trip.
//
// The engine does not call it: its candidate index keeps its own copy of
// the catalog, fed by [Redis.RangeItems] and [Redis.OnItemChange].
func (r *Redis) Item(ctx context.Context, id string) (event.Item, bool, error) {
	h, err := r.c.HGetAll(ctx, r.itemKey(id)).Result()
	if err != nil {
		return event.Item{}, false, r.fail(ctx, opItem, err)
	}
	if len(h) == 0 {
		return event.Item{}, false, nil
	}
	it, err := decodeItem(id, h)
	if err != nil {
		r.met.errors.WithLabelValues(opItem, "corrupt").Inc()
		return event.Item{}, false, err
	}
	return it, true, nil
}

func decodeItem(id string, h map[string]string) (event.Item, error) {
	it := event.Item{ID: id, Category: h["category"], Available: h["available"] == "1"}
	if t, ok := h["tags"]; ok {
		if err := json.Unmarshal([]byte(t), &it.Tags); err != nil {
			return event.Item{}, fmt.Errorf("redis item: decode tags: %w", err)
		}
		if len(it.Tags) == 0 {
			it.Tags = nil
		}
	}
	return it, nil
}

// PutItem validates it and replaces the catalog entry it.ID with it. In the
// same atomic step it appends the item to the catalog stream, from which
// [Redis.Run], on this node and on every other node sharing the key
// prefix, calls the functions registered with OnItemChange. It makes one
// round trip.
func (r *Redis) PutItem(ctx context.Context, it event.Item) error {
	if err := it.Validate(); err != nil {
		return fmt.Errorf("put item: %w", err)
	}
	avail := "0"
	if it.Available {
		avail = "1"
	}
	args := []any{catalogStreamLen, it.ID, "category", it.Category, "available", avail}
	if len(it.Tags) > 0 {
		tags, err := json.Marshal(it.Tags)
		if err != nil {
			return fmt.Errorf("put item: tags: %w", err)
		}
		args = append(args, "tags", tags)
	}
	if err := r.run(ctx, putItemScript, []string{r.itemKey(it.ID), r.items, r.stream}, args); err != nil {
		return r.fail(ctx, opPutItem, err)
	}
	return nil
}

// RangeItems calls fn for each catalog item, in no particular order, until
// fn returns false. It walks the keys with SCAN, so it does not block the
// server and items changed during the iteration may or may not be seen (or,
// rarely, seen twice). fn runs without any lock held and may call any method
// of r. It returns the first Redis error; ctx bounds the whole walk.
func (r *Redis) RangeItems(ctx context.Context, fn func(event.Item) bool) error {
	pfx := r.itemKey("")
	match := escapeGlob(pfx) + "*"
	var cursor uint64
	for {
		keys, next, err := r.c.Scan(ctx, cursor, match, 512).Result()
		if err != nil {
			return r.fail(ctx, opRangeItems, err)
		}
		cmds := make([]*redis.MapStringStringCmd, len(keys))
		if len(keys) > 0 {
			_, err = r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i, k := range keys {
					cmds[i] = p.HGetAll(ctx, k)
				}
				return nil
			})
			if err != nil {
				return r.fail(ctx, opRangeItems, err)
			}
		}
		for i, k := range keys {
			h := cmds[i].Val()
			if len(h) == 0 {
				continue // deleted meanwhile
			}
			it, err := decodeItem(strings.TrimPrefix(k, pfx), h)
			if err != nil {
				r.met.errors.WithLabelValues(opRangeItems, "corrupt").Inc()
				return err
			}
			if !fn(it) {
				return nil
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// escapeGlob escapes the characters special in a Redis MATCH pattern.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch c {
		case '*', '?', '[', ']', '\\', '^', '-':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Operations, the values of the op label of the error counter.
const (
	opPing       = "ping"
	opUser       = "user"
	opActivity   = "activity"
	opFeatures   = "features"
	opPutUser    = "put_user"
	opApply      = "apply"
	opItem       = "item"
	opPutItem    = "put_item"
	opRangeItems = "range_items"
	opCount      = "count"
	opErase      = "erase"
	opTail       = "catalog_tail"
)

// fail counts err and returns it wrapped with the operation. Timeouts,
// whether of ctx or of the socket, wrap context.DeadlineExceeded so the
// engine reports them as feature-store timeouts. The messages of go-redis
// carry no keys, so no user id reaches the error.
func (r *Redis) fail(ctx context.Context, op string, err error) error {
	ne, isNet := errors.AsType[net.Error](err)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		r.met.errors.WithLabelValues(op, "timeout").Inc()
		return fmt.Errorf("redis %s: %w", op, err)
	case ctx.Err() != nil:
		r.met.errors.WithLabelValues(op, "timeout").Inc()
		return fmt.Errorf("redis %s: %w: %w", op, ctx.Err(), err)
	case isNet && ne.Timeout(), errors.Is(err, redis.ErrPoolTimeout):
		r.met.errors.WithLabelValues(op, "timeout").Inc()
		return fmt.Errorf("redis %s: %w: %w", op, context.DeadlineExceeded, err)
	}
	r.met.errors.WithLabelValues(op, "error").Inc()
	return fmt.Errorf("redis %s: %w", op, err)
}

// redisMetrics are the Redis store's Prometheus metrics. The lookup counter
// has the name and labels of [Memory]'s, so dashboards work with either.
type redisMetrics struct {
	hit, miss prometheus.Counter
	errors    *prometheus.CounterVec
	changes   prometheus.Counter // catalog stream entries delivered
	resyncs   prometheus.Counter // catalog reloads of a tail that lost entries
}

func newRedisMetrics(reg prometheus.Registerer, c *redis.Client) (*redisMetrics, error) {
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sightline_features_lookups_total",
		Help: "User profile lookups, by result: hit for a known user, miss for an unknown one.",
	}, []string{"result"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sightline_features_redis_errors_total",
		Help: "Failed Redis feature-store operations, by operation (catalog_tail for the catalog stream tail) and kind (timeout, error, corrupt).",
	}, []string{"op", "kind"})
	changes := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sightline_features_catalog_changes_total",
		Help: "Catalog changes read from the Redis catalog stream (puts by any node) and passed to the node's candidate index.",
	})
	resyncs := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sightline_features_catalog_resyncs_total",
		Help: "Times the catalog stream tail fell so far behind that unread changes were trimmed, and the whole catalog was reloaded instead.",
	})
	met := &redisMetrics{hit: lookups.WithLabelValues("hit"), miss: lookups.WithLabelValues("miss"), errors: errs, changes: changes, resyncs: resyncs}
	if reg == nil {
		return met, nil
	}
	conns := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sightline_features_redis_connections",
		Help: "Open connections to Redis in the feature store's pool.",
	}, func() float64 { return float64(c.PoolStats().TotalConns) })
	for _, col := range []prometheus.Collector{lookups, errs, changes, resyncs, conns} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("register redis features metrics: %w", err)
		}
	}
	return met, nil
}
