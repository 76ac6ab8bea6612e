// Package registry is the shared state of a Sightline cluster in Redis:
// the trainer lease that makes one trainer active and the others standby,
// the model snapshots the active trainer publishes and the API nodes
// follow, and small state documents (cluster-wide quality) the trainer
// publishes for every node.
//
// # Keys
//
// Under Config.Prefix (the feature store's prefix, so one deployment's keys
// sit together):
//
//	registry:lease   string "holder|token", with the lease's TTL
//	registry:epoch   integer, incremented at each acquisition: the fencing token
//	registry:model   hash: data (the snapshot), meta (JSON Publication), seq
//	registry:state:* string, a JSON document by name
//	registry:rollout string, the rollout controller's state (JSON)
//	registry:challenger hash: data, meta, seq, as registry:model, for a
//	                 rollout's challenger
//	registry:routing string, JSON Routing: who the challenger serves
//
// # Fencing
//
// A trainer that stalls past its lease (a long GC pause, a partition from
// Redis) may wake up after another trainer took over. Every write it makes
// to the registry runs as one Lua script that first checks the lease still
// holds its "holder|token": a write from a trainer that lost the lease is
// refused ([ErrLeaseLost]) and changes nothing.
package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Errors of the registry.
var (
	// ErrLeaseHeld is returned by Acquire while another holder has the
	// lease.
	ErrLeaseHeld = errors.New("registry: trainer lease held by another node")
	// ErrLeaseLost is returned by a fenced write or Renew when the caller
	// no longer holds the lease it names.
	ErrLeaseLost = errors.New("registry: trainer lease lost")
	// ErrCorrupt is returned by Fetch when the stored snapshot does not
	// match its checksum.
	ErrCorrupt = errors.New("registry: published snapshot does not match its checksum")
)

// Defaults of Config.
const (
	DefaultPrefix  = "sightline:"
	DefaultTimeout = 2 * time.Second
)

// Config configures a [Registry].
type Config struct {
	// Addr is the Redis server's host:port.
	Addr     string
	Password string
	DB       int
	// Prefix starts every key (DefaultPrefix when empty).
	Prefix string
	// Timeout bounds each command when the caller's ctx has no earlier
	// deadline (DefaultTimeout when zero). A snapshot of a large model takes
	// a while to transfer: this is not the serving path's budget.
	Timeout time.Duration
}

// Registry is a client of the cluster's shared state. It is safe for
// concurrent use.
type Registry struct {
	c      *redis.Client
	prefix string
}

// Open connects to the Redis server of cfg. It does not dial: the first
// command does.
func Open(cfg Config) (*Registry, error) {
	if cfg.Addr == "" {
		return nil, errors.New("registry: no Redis address")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	c := redis.NewClient(&redis.Options{
		Addr:                  cfg.Addr,
		Password:              cfg.Password,
		DB:                    cfg.DB,
		PoolSize:              4,
		DialTimeout:           min(cfg.Timeout, 500*time.Millisecond),
		ReadTimeout:           cfg.Timeout,
		WriteTimeout:          cfg.Timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1, // callers retry on their own schedule
	})
	return &Registry{c: c, prefix: cfg.Prefix + "registry:"}, nil
}

// Close closes the connections.
func (r *Registry) Close() error { return r.c.Close() }

func (r *Registry) key(name string) string { return r.prefix + name }

// Lease is a held trainer lease: the holder's name and the fencing token
// of this acquisition.
type Lease struct {
	Holder string
	Token  uint64
}

func (l Lease) value() string { return l.Holder + "|" + strconv.FormatUint(l.Token, 10) }

var acquireScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local tok = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. tok, 'PX', ARGV[2])
return tok`)

// Acquire takes the lease for holder for ttl when no one holds it, and
// returns it with a new fencing token; [ErrLeaseHeld] when another holder
// has it.
func (r *Registry) Acquire(ctx context.Context, holder string, ttl time.Duration) (Lease, error) {
	if holder == "" || strings.Contains(holder, "|") {
		return Lease{}, fmt.Errorf("registry: bad lease holder %q", holder)
	}
	tok, err := acquireScript.Run(ctx, r.c, []string{r.key("lease"), r.key("epoch")}, holder, ttl.Milliseconds()).Uint64()
	if err != nil {
		return Lease{}, fmt.Errorf("registry: acquire lease: %w", err)
	}
	if tok == 0 {
		return Lease{}, ErrLeaseHeld
	}
	return Lease{Holder: holder, Token: tok}, nil
}

var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`)

// Renew extends l by ttl; [ErrLeaseLost] when l expired or another holder
// took the lease since.
func (r *Registry) Renew(ctx context.Context, l Lease, ttl time.Duration) error {
	ok, err := renewScript.Run(ctx, r.c, []string{r.key("lease")}, l.value(), ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("registry: renew lease: %w", err)
	}
	if ok == 0 {
		return ErrLeaseLost
	}
	return nil
}

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1`)

// Release gives l up, so a standby takes over without waiting for the TTL.
// Releasing a lease no longer held does nothing.
func (r *Registry) Release(ctx context.Context, l Lease) error {
	if err := releaseScript.Run(ctx, r.c, []string{r.key("lease")}, l.value()).Err(); err != nil {
		return fmt.Errorf("registry: release lease: %w", err)
	}
	return nil
}

// Holder returns the name of the lease's holder, "" when no one holds it.
func (r *Registry) Holder(ctx context.Context) (string, error) {
	v, err := r.c.Get(ctx, r.key("lease")).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("registry: lease holder: %w", err)
	}
	holder, _, _ := strings.Cut(v, "|")
	return holder, nil
}

// Publication describes a published model snapshot.
type Publication struct {
	// Seq increases with every publication: followers compare it.
	Seq uint64 `json:"seq"`
	// Version is the model version the snapshot restores to.
	Version string `json:"version"`
	// SHA256 is the hex checksum of the snapshot's bytes.
	SHA256 string `json:"sha256"`
	Size   int    `json:"size"`
	// Holder and Token name the trainer and lease that published it.
	Holder    string    `json:"holder"`
	Token     uint64    `json:"token"`
	Published time.Time `json:"published"`
}

var publishScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
local meta = string.gsub(ARGV[2], '"seq":0', '"seq":' .. seq, 1)
redis.call('HSET', KEYS[2], 'meta', meta, 'data', ARGV[3])
return seq`)

// Publish stores data, the snapshot of model version version, as the
// cluster's current model, fenced by l, and returns its publication.
func (r *Registry) Publish(ctx context.Context, l Lease, version string, data []byte, now time.Time) (Publication, error) {
	return r.publish(ctx, l, "model", version, data, now)
}

// publish stores data as the publication of hash key name.
func (r *Registry) publish(ctx context.Context, l Lease, name, version string, data []byte, now time.Time) (Publication, error) {
	sum := sha256.Sum256(data)
	p := Publication{Version: version, SHA256: hex.EncodeToString(sum[:]), Size: len(data), Holder: l.Holder, Token: l.Token, Published: now.UTC()}
	meta, err := json.Marshal(p) // "seq":0, which the script replaces
	if err != nil {
		return Publication{}, err
	}
	seq, err := publishScript.Run(ctx, r.c, []string{r.key("lease"), r.key(name)}, l.value(), meta, data).Uint64()
	if err != nil {
		return Publication{}, fmt.Errorf("registry: publish %s: %w", name, err)
	}
	if seq == 0 {
		return Publication{}, ErrLeaseLost
	}
	p.Seq = seq
	return p, nil
}

// Latest returns the current publication's description without its
// snapshot, for followers to poll; ok is false before the first.
func (r *Registry) Latest(ctx context.Context) (p Publication, ok bool, err error) {
	return r.latest(ctx, "model")
}

func (r *Registry) latest(ctx context.Context, name string) (p Publication, ok bool, err error) {
	raw, err := r.c.HGet(ctx, r.key(name), "meta").Result()
	if errors.Is(err, redis.Nil) {
		return Publication{}, false, nil
	}
	if err != nil {
		return Publication{}, false, fmt.Errorf("registry: latest %s: %w", name, err)
	}
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return Publication{}, false, fmt.Errorf("registry: latest %s: %w", name, err)
	}
	return p, true, nil
}

// Fetch returns the current publication and its snapshot, read together;
// ok is false before the first. A snapshot that does not match its
// checksum is [ErrCorrupt].
func (r *Registry) Fetch(ctx context.Context) (p Publication, data []byte, ok bool, err error) {
	return r.fetch(ctx, "model")
}

func (r *Registry) fetch(ctx context.Context, name string) (p Publication, data []byte, ok bool, err error) {
	vals, err := r.c.HMGet(ctx, r.key(name), "meta", "data").Result()
	if err != nil {
		return Publication{}, nil, false, fmt.Errorf("registry: fetch %s: %w", name, err)
	}
	meta, _ := vals[0].(string)
	blob, _ := vals[1].(string)
	if meta == "" {
		return Publication{}, nil, false, nil
	}
	if err := json.Unmarshal([]byte(meta), &p); err != nil {
		return Publication{}, nil, false, fmt.Errorf("registry: fetch %s: %w", name, err)
	}
	sum := sha256.Sum256([]byte(blob))
	if hex.EncodeToString(sum[:]) != p.SHA256 || len(blob) != p.Size {
		return p, nil, false, fmt.Errorf("%w (seq %d, version %s)", ErrCorrupt, p.Seq, p.Version)
	}
	return p, []byte(blob), true, nil
}

var putStateScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1`)

// PutState stores the document v under name, fenced by l.
func (r *Registry) PutState(ctx context.Context, l Lease, name string, v []byte) error {
	return r.put(ctx, l, "state:"+name, v)
}

// put stores v under key name, fenced by l.
func (r *Registry) put(ctx context.Context, l Lease, name string, v []byte) error {
	ok, err := putStateScript.Run(ctx, r.c, []string{r.key("lease"), r.key(name)}, l.value(), v).Int()
	if err != nil {
		return fmt.Errorf("registry: put %s: %w", name, err)
	}
	if ok == 0 {
		return ErrLeaseLost
	}
	return nil
}

// get returns the string under key name; ok is false when there is none.
func (r *Registry) get(ctx context.Context, name string) (v []byte, ok bool, err error) {
	b, err := r.c.Get(ctx, r.key(name)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("registry: %s: %w", name, err)
	}
	return b, true, nil
}

// State returns the document stored under name; ok is false when there is
// none.
func (r *Registry) State(ctx context.Context, name string) (v []byte, ok bool, err error) {
	return r.get(ctx, "state:"+name)
}

// Lead campaigns for the lease as holder until ctx is done: whenever it
// acquires the lease it calls fn with a context that is canceled, with
// cause [ErrLeaseLost], as soon as the lease cannot be renewed within
// 0.9×ttl (another holder took it, or Redis did not answer), renews it
// every ttl/3 while fn runs, and releases it once fn returns, so a standby
// takes over without waiting for the TTL. While another holder has the
// lease it retries every ttl/6. warn, if not nil, is told of registry
// errors; Lead returns only when ctx is done.
func (r *Registry) Lead(ctx context.Context, holder string, ttl time.Duration, fn func(ctx context.Context, l Lease), warn func(error)) {
	retry := max(ttl/6, 50*time.Millisecond)
	for ctx.Err() == nil {
		l, err := r.Acquire(ctx, holder, ttl)
		switch {
		case err == nil:
			r.hold(ctx, l, ttl, fn, warn)
		case errors.Is(err, ErrLeaseHeld):
		case warn != nil && ctx.Err() == nil:
			warn(err)
		}
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// hold runs fn while l is held, then releases l.
func (r *Registry) hold(ctx context.Context, l Lease, ttl time.Duration, fn func(context.Context, Lease), warn func(error)) {
	lctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		renewed := time.Now()
		t := time.NewTicker(max(ttl/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(lctx, ttl/3)
			err := r.Renew(rctx, l, ttl)
			rcancel()
			switch {
			case err == nil:
				renewed = time.Now()
			case errors.Is(err, ErrLeaseLost):
				cancel(ErrLeaseLost)
				return
			case lctx.Err() != nil:
				return
			case time.Since(renewed) >= ttl*9/10:
				if warn != nil {
					warn(err)
				}
				cancel(ErrLeaseLost)
				return
			}
		}
	}()
	fn(lctx, l)
	cancel(nil)
	<-done
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer rcancel()
	if err := r.Release(rctx, l); err != nil && warn != nil {
		warn(err)
	}
}

// Follow calls fn with each publication newer than from (nil: any) and its
// snapshot, polling the registry every interval until ctx is done; the
// first poll is at once. A publication fn fails on is offered again at the
// next poll. Registry errors go to warn, if not nil.
func (r *Registry) Follow(ctx context.Context, interval time.Duration, from *Publication, fn func(Publication, []byte) error, warn func(error)) {
	var cur Publication
	have := from != nil
	if have {
		cur = *from
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		p, ok, err := r.Latest(ctx)
		switch {
		case err != nil:
			if warn != nil && ctx.Err() == nil {
				warn(err)
			}
		case ok && (!have || p.Seq != cur.Seq || p.SHA256 != cur.SHA256):
			p, data, ok, err := r.Fetch(ctx)
			if err == nil && ok {
				err = fn(p, data)
			}
			if err == nil && ok {
				cur, have = p, true
			} else if err != nil && warn != nil && ctx.Err() == nil {
				warn(err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
