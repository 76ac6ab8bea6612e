package learn

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/features"
	"github.com/sightline/sightline/internal/ingest"
	"github.com/sightline/sightline/internal/model"
)

// Joiner finds the decision an event answers. [engine.Ring] implements it.
// Its methods are called by the consumers for every event, from their
// goroutines; they must be cheap and goroutine-safe.
type Joiner interface {
	// Joined returns the model context with which decision requestID
	// showed item itemID, and the item as shown; ok is false when the
	// decision is not known (too old, served before a restart, or its
	// record has not arrived) or did not show the item.
	Joined(requestID, itemID string) (x model.Context, it event.Item, ok bool)
	// TraceOf returns the span context of the recommendation requestID,
	// marked sampled when events of type t should be traced with it.
	TraceOf(requestID string, t event.Type) (trace.SpanContext, bool)
}

// FeatureReader reads what the model updater needs to rebuild a context
// when the decision is not known: the feature store. Methods may do I/O;
// an error makes the batch be delivered again.
type FeatureReader interface {
	User(ctx context.Context, id string) (event.User, bool, error)
	Activity(ctx context.Context, userID string) (features.Activity, error)
	Item(ctx context.Context, id string) (event.Item, bool, error)
}

// BatchReader is a FeatureReader that reads the features of many events at
// once ([features.Redis] in one pipeline per chunk). The model updater uses
// it, when the store has it, to read the features of every event of a
// batch that it cannot join to a decision in one go, instead of making
// three round trips per event.
type BatchReader interface {
	FeatureReader
	ReadBatch(ctx context.Context, users, items []string) (features.Batch, error)
}

// Catalog is the catalog in memory ([engine.Index] implements it): the
// model updater takes an event's item from it before asking the feature
// store. It must be goroutine-safe.
type Catalog interface {
	Item(id string) (event.Item, bool)
}

// Learner is the online model. Learn is called by the model updater only,
// one call at a time; it must be safe to call while others score.
type Learner interface {
	Learn(x *model.Context, it event.Item, l model.Label) float64
}

// DefaultDedupeWindow is the number of most recent event ids the model
// updater remembers (in two generations of half as many): an event whose id
// is among them is not learned again. At about 8 bytes of hash and map
// overhead per id, the default costs some 40 MiB.
const DefaultDedupeWindow = 1_000_000

// ModelConfig configures a [ModelUpdater]. Joiner, Features and Learner are
// required.
type ModelConfig struct {
	Joiner   Joiner
	Features FeatureReader
	Learner  Learner
	// Catalog, when set, is where the items of events no decision explains
	// are looked up first: a trainer rebuilding those contexts then reads
	// only users from the feature store.
	Catalog Catalog
	// UserCache, when positive, is how long the features of a user read
	// from a [BatchReader] store are reused for the contexts of later events
	// no decision explains, instead of reading the user again for every
	// batch. A user with a click or conversion in a batch is read again (its
	// recent activity changed; the trainer writes it before it learns the
	// batch), so only a profile written meanwhile is seen up to UserCache
	// late.
	UserCache time.Duration
	// Dedupe is the number of event ids remembered (DefaultDedupeWindow
	// when zero; negative disables).
	Dedupe int
	// Tracing traces each training event as a "ModelUpdate" span.
	Tracing Tracing
	// Registerer receives the event path's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now stamps events without a timestamp (default time.Now).
	Now func() time.Time
	// JoinWait, when positive, is how long an event appended within the
	// last JoinWait waits for its decision to reach the Joiner before its
	// context is rebuilt from current features. A trainer reads decisions
	// from a stream of their own, which may run a little behind the event
	// stream; a single node's joiner is filled before it answers, so it
	// needs no wait.
	JoinWait time.Duration
}

// ModelUpdater trains the model online from impressions (label 0) and
// clicks (label 1), each joined to the decision that showed the item. It
// owns the model's write side. It implements [ingest.PartitionHandler]; the bus
// calls Handle from one goroutine per partition at most, and Pause may be
// called from any goroutine.
type ModelUpdater struct {
	cfg   ModelConfig
	spans spans
	met   *metrics
	seed  maphash.Seed

	mu      sync.Mutex
	applied ingest.Offsets // next offset to apply per partition
	shown   pendingSet
	seen    dedupe
	batch   *features.Batch // features read ahead for the batch in hand, or nil
	users   userCache

	learned, duplicates atomic.Uint64
}

// NewModelUpdater returns an updater whose state includes every record
// before applied (per partition). Records below those offsets that the bus
// delivers are not applied, but their event ids enter the dedupe window: a
// consumer started some way before applied rebuilds the window of a
// snapshot's state.
func NewModelUpdater(applied ingest.Offsets, cfg ModelConfig) (*ModelUpdater, error) {
	if cfg.Joiner == nil || cfg.Features == nil || cfg.Learner == nil {
		return nil, errors.New("learn: model updater needs a joiner, a feature reader and a learner")
	}
	if cfg.Dedupe == 0 {
		cfg.Dedupe = DefaultDedupeWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	met, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	u := &ModelUpdater{cfg: cfg, met: met, spans: newSpans(cfg.Tracing, cfg.Joiner), seed: maphash.MakeSeed(), applied: applied.Clone()}
	u.shown.limit = 500_000
	u.seen.limit = max(cfg.Dedupe/2, 1)
	u.users = userCache{ttl: cfg.UserCache, limit: userCacheLimit}
	return u, nil
}

// HandlePartition applies the records of partition p it has not applied yet. A
// feature-store error stops the batch there; the bus delivers it again and
// the records already applied are skipped.
func (u *ModelUpdater) HandlePartition(ctx context.Context, p int32, recs []ingest.Record) error {
	// The features the batch needs are read outside the lock, so that the
	// partitions wait for the feature store at once, not in turn.
	u.mu.Lock()
	known, users, items := u.toRead(recs, u.applied[p])
	u.mu.Unlock()
	read, err := u.readAhead(ctx, users, items)
	if err != nil {
		return fmt.Errorf("model update: %w", err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if read != nil {
		now := u.cfg.Now()
		for id, f := range read.Users {
			known.Users[id] = f
			if u.cfg.UserCache > 0 {
				u.users.put(id, f, now)
			}
		}
		for id, it := range read.Items {
			known.Items[id] = it
		}
	}
	next := u.applied[p]
	defer func() { u.applied[p] = next }()
	u.batch = known
	defer func() { u.batch = nil }()
	for i := range recs {
		r := &recs[i]
		if r.Offset < next {
			u.remember(&r.Event) // redelivered or before the snapshot: already applied
			continue
		}
		if err := u.apply(ctx, r); err != nil {
			return err
		}
		next = r.Offset + 1
	}
	return nil
}

// batchReadTimeout bounds one read-ahead of a batch's features.
const batchReadTimeout = 5 * time.Second

// toRead prepares, when the feature store can read in batches, the
// features of the training events of recs from next on that no decision
// known now explains (their contexts are rebuilt from them): known holds
// those the user cache and the catalog have, and users and items list the
// others, to read. Without batch reads known is nil. It is called with u.mu
// held.
func (u *ModelUpdater) toRead(recs []ingest.Record, next uint64) (known *features.Batch, users, items []string) {
	if _, ok := u.cfg.Features.(BatchReader); !ok {
		return nil, nil, nil
	}
	known = &features.Batch{Users: map[string]features.UserFeatures{}, Items: map[string]event.Item{}}
	seenU, seenI := map[string]bool{}, map[string]bool{}
	var now time.Time
	if u.cfg.UserCache > 0 {
		now = u.cfg.Now()
		for i := range recs {
			// A click changes the user's activity; an erasure deletes the
			// user: either way the cached features are stale.
			if ev := &recs[i].Event; ev.Type == event.Click || ev.Type == event.Conversion || ev.Type == event.Erasure {
				u.users.forget(ev.UserID)
			}
		}
	}
	for i := range recs {
		r := &recs[i]
		ev := &r.Event
		if r.Offset < next || ev.Type != event.Impression && ev.Type != event.Click {
			continue
		}
		// Duplicates are not looked up here: they are rare, and reading
		// their features costs less than a lookup in the dedupe window per
		// event (a map of up to a million ids).
		if ev.RequestID != "" {
			if _, _, ok := u.cfg.Joiner.Joined(ev.RequestID, ev.ItemID); ok {
				continue
			}
		}
		if !seenU[ev.UserID] {
			seenU[ev.UserID] = true
			if f, ok := u.users.get(ev.UserID, now); ok && u.cfg.UserCache > 0 {
				known.Users[ev.UserID] = f
			} else {
				users = append(users, ev.UserID)
			}
		}
		if !seenI[ev.ItemID] {
			seenI[ev.ItemID] = true
			if it, ok := u.item(ev.ItemID); ok {
				known.Items[ev.ItemID] = it
			} else {
				items = append(items, ev.ItemID)
			}
		}
	}
	return known, users, items
}

// readAhead reads the features of users and items in one batch, nil when
// there are none to read. Records applied meanwhile by other partitions
// only make some of it unneeded: it is a cache that apply consults.
func (u *ModelUpdater) readAhead(ctx context.Context, users, items []string) (*features.Batch, error) {
	if len(users) == 0 && len(items) == 0 {
		return nil, nil
	}
	br := u.cfg.Features.(BatchReader) // toRead listed none otherwise
	// A batch read takes longer than a request's feature budget: its own
	// deadline, so the store's short default read timeout does not apply.
	rctx, cancel := context.WithTimeout(ctx, batchReadTimeout)
	defer cancel()
	b, err := br.ReadBatch(rctx, users, items)
	if err != nil {
		return nil, err
	}
	return &b, nil
}

// hash returns the dedupe key of ev, and false when ev is not deduplicated.
func (u *ModelUpdater) hash(ev *event.Event) (uint64, bool) {
	if u.cfg.Dedupe < 0 || ev.ID == "" {
		return 0, false
	}
	return maphash.String(u.seed, ev.ID), true
}

// remember enters ev's id into the dedupe window.
func (u *ModelUpdater) remember(ev *event.Event) {
	if h, ok := u.hash(ev); ok {
		u.seen.add(h)
	}
}

func (u *ModelUpdater) apply(ctx context.Context, r *ingest.Record) error {
	ev := &r.Event
	var label model.Label
	switch ev.Type {
	case event.Impression:
		label = model.Negative
	case event.Click:
		label = model.Positive
	default:
		u.met.ignored.Inc()
		return nil
	}
	h, dedupe := u.hash(ev)
	if dedupe && u.seen.has(h) {
		u.duplicates.Add(1)
		u.met.duplicate.Inc()
		return nil
	}
	_, span := u.spans.start(ctx, "ModelUpdate", r)
	defer span.End()
	x, it, ok, err := u.context(ctx, r)
	if err != nil { // nothing changed: the bus delivers the record again
		span.RecordError(err)
		return fmt.Errorf("model update: %w", err)
	}
	if dedupe {
		u.seen.insert(h) // absent: looked up above, under the same lock
	}
	if !ok {
		span.SetAttributes(attribute.Bool("sightline.join.skipped", true))
		u.met.unjoined.Inc()
		return nil
	}
	if ev.RequestID != "" {
		key := ev.RequestID + "\x00" + ev.ItemID
		if label == model.Negative {
			u.shown.add(key)
		} else if u.shown.take(key) {
			label = model.Flip // the click corrects the negative its impression taught
		}
	}
	u.cfg.Learner.Learn(&x, it, label)
	u.learned.Add(1)
	u.met.learned.Inc()
	return nil
}

// context returns what the model saw when it showed the item: from the
// joiner when the decision is known, else rebuilt from the current
// features. It fails only when the feature store does.
func (u *ModelUpdater) context(ctx context.Context, r *ingest.Record) (model.Context, event.Item, bool, error) {
	ev := &r.Event
	if ev.RequestID != "" {
		if x, it, ok := u.joined(ctx, r); ok {
			u.met.joinDecision.Inc()
			return x, it, true, nil
		}
	}
	it, user, act, ok, err := u.features(ctx, ev)
	if err != nil || !ok {
		return model.Context{}, event.Item{}, false, err
	}
	u.met.joinRebuilt.Inc()
	ts := ev.Timestamp
	if ts.IsZero() {
		ts = u.cfg.Now()
	}
	return model.Context{User: user, Channel: ev.Channel, Hour: ts.Hour(), RecentCategories: act.RecentCategories}, it, true, nil
}

// features returns the item, user and activity of ev: from the batch read
// ahead when it has them, else from the store.
func (u *ModelUpdater) features(ctx context.Context, ev *event.Event) (event.Item, event.User, features.Activity, bool, error) {
	if b := u.batch; b != nil {
		if uf, ok := b.Users[ev.UserID]; ok {
			// Prepared with the user: absent means not in the catalog.
			it, ok := b.Items[ev.ItemID]
			return it, uf.User, features.Activity{RecentCategories: uf.RecentCategories}, ok, nil
		}
	}
	it, ok := u.item(ev.ItemID)
	if !ok {
		var err error
		if it, ok, err = u.cfg.Features.Item(ctx, ev.ItemID); err != nil || !ok {
			return event.Item{}, event.User{}, features.Activity{}, false, err
		}
	}
	user, _, err := u.cfg.Features.User(ctx, ev.UserID)
	if err != nil {
		return event.Item{}, event.User{}, features.Activity{}, false, err
	}
	act, err := u.cfg.Features.Activity(ctx, ev.UserID)
	if err != nil {
		return event.Item{}, event.User{}, features.Activity{}, false, err
	}
	return it, user, act, true, nil
}

// item returns an item from the catalog in memory, when there is one.
func (u *ModelUpdater) item(id string) (event.Item, bool) {
	if u.cfg.Catalog == nil {
		return event.Item{}, false
	}
	return u.cfg.Catalog.Item(id)
}

// joined returns the decision context of r's event, waiting up to
// JoinWait for a fresh event's decision to arrive.
func (u *ModelUpdater) joined(ctx context.Context, r *ingest.Record) (model.Context, event.Item, bool) {
	ev := &r.Event
	x, it, ok := u.cfg.Joiner.Joined(ev.RequestID, ev.ItemID)
	if ok || u.cfg.JoinWait <= 0 {
		return x, it, ok
	}
	deadline := r.AppendTime.Add(u.cfg.JoinWait)
	for !ok && u.cfg.Now().Before(deadline) {
		t := time.NewTimer(2 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return x, it, false
		case <-t.C:
		}
		x, it, ok = u.cfg.Joiner.Joined(ev.RequestID, ev.ItemID)
	}
	return x, it, ok
}

// Pause runs fn while no record is applied, with the positions the model
// state includes: a snapshot taken in fn matches them exactly.
func (u *ModelUpdater) Pause(fn func(applied ingest.Offsets) error) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return fn(u.applied.Clone())
}

// Applied returns the next offset to apply per partition.
func (u *ModelUpdater) Applied() ingest.Offsets {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.applied.Clone()
}

// Learned is the number of events learned since New.
func (u *ModelUpdater) Learned() uint64 { return u.learned.Load() }

// Duplicates is the number of events not learned because their id was seen
// within the dedupe window, since New.
func (u *ModelUpdater) Duplicates() uint64 { return u.duplicates.Load() }

// pendingSet remembers recent (request, item) impressions in two
// generations, so memory stays bounded and a click within the last
// generation finds its impression.
type pendingSet struct {
	cur, prev map[string]struct{}
	limit     int
}

func (p *pendingSet) add(k string) {
	if p.cur == nil {
		p.cur = make(map[string]struct{})
	}
	if len(p.cur) >= p.limit {
		p.prev, p.cur = p.cur, make(map[string]struct{}, p.limit)
	}
	p.cur[k] = struct{}{}
}

func (p *pendingSet) take(k string) bool {
	if _, ok := p.cur[k]; ok {
		delete(p.cur, k)
		return true
	}
	if _, ok := p.prev[k]; ok {
		delete(p.prev, k)
		return true
	}
	return false
}

// dedupe remembers recent event-id hashes in two generations of limit each.
type dedupe struct {
	cur, prev map[uint64]struct{}
	limit     int
}

// has reports whether h is in the window.
func (d *dedupe) has(h uint64) bool {
	if _, ok := d.cur[h]; ok {
		return true
	}
	_, ok := d.prev[h]
	return ok
}

// add records h and reports whether it was already there.
func (d *dedupe) add(h uint64) bool {
	if d.has(h) {
		return true
	}
	d.insert(h)
	return false
}

// insert records h, which is not in the window. Each generation is sized
// for limit ids at once, so that filling it never rehashes.
func (d *dedupe) insert(h uint64) {
	if d.cur == nil || len(d.cur) >= d.limit {
		d.prev, d.cur = d.cur, make(map[uint64]struct{}, d.limit)
	}
	d.cur[h] = struct{}{}
}
