package engine

import (
	"encoding/binary"
	"hash/maphash"
	"math"
	"sync"
	"time"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
)

// ring keeps the most recent decisions, with the model context of each, for
// lookup by request id. It is bounded twice: by a number of records and by
// the bytes of its arena; the oldest record is overwritten.
//
// Records are stored encoded in byte arenas and indexed by open-addressing
// tables of integers (slotIndex), so the ring holds no pointers: the garbage collector never scans
// it. Holding tens of thousands of *Decision values instead made every GC
// cycle mark them, and at high request rates those mark phases, not the
// request work, set the tail latency.
//
// The ring is split into shards by the hash of the request id, each with
// its own lock, arena and share of the slots: every request stores its
// decision, and with one lock for the whole ring that lock was half of the
// request path's lock delay at saturation (docs/benchmarks.md, issue 16). A
// lookup goes to the one shard the id hashes to. The oldest record of a
// shard is overwritten first, so the ring as a whole evicts in about the
// order decisions were made. All methods are goroutine-safe.
type ring struct {
	seed   maphash.Seed
	shift  uint // a hash's shard is its top bits: hash >> shift
	shards []ringShard
}

// ringShard is one shard of a ring.
type ringShard struct {
	mu    sync.Mutex
	arena []byte
	head  uint64 // total bytes ever written; the arena holds [head-len, head)
	slots []ringSlot
	next  int
	byID  slotIndex // request-id hash → slot
	// intern holds the few distinct strings Joined returns (categories,
	// attribute values, channels), so joining allocates nothing.
	intern map[string]string
	_      [64]byte // the next shard's lock on another cache line
}

// ringSlot locates one record in the arena.
type ringSlot struct {
	hash uint64
	pos  uint64 // arena position of the record's first byte
	n    uint32 // record length; 0: empty
}

// slotBytes is the arena share of each slot of a ring whose decisions log
// a pool of pool candidates: a decision of 10 items with features and
// stages encodes to about 600 bytes, and each pool candidate adds about 30
// (a node's default pool of 20 doubles a record). With a share below the
// records' size the ring keeps fewer decisions than it has slots: the
// arena's bytes, not Config.DecisionRing, bound it.
func slotBytes(pool int) int { return 640 + 32*max(pool, 0) }

// maxInterned bounds the intern table of a shard; it is reset when full.
const maxInterned = 4096

// Shards of a ring: up to maxRingShards, each of at least minShardSlots
// (a ring of fewer slots has one shard, which evicts in exact order).
const (
	maxRingShards = 16
	minShardSlots = 1024
)

// newRing returns a ring of n slots for decisions that log a pool of pool
// candidates.
func newRing(n, pool int) *ring {
	k := 1
	for k < maxRingShards && n/(2*k) >= minShardSlots {
		k *= 2
	}
	return newRingShards(n, k, pool)
}

// newRingShards returns a ring of n slots in k shards, k a power of two.
func newRingShards(n, k, pool int) *ring {
	r := &ring{seed: maphash.MakeSeed(), shift: 64, shards: make([]ringShard, k)}
	for k > 1 {
		r.shift--
		k /= 2
	}
	for i := range r.shards {
		m := n / len(r.shards)
		if i < n%len(r.shards) {
			m++
		}
		m = max(m, 1)
		r.shards[i] = ringShard{
			arena:  make([]byte, m*slotBytes(pool)),
			slots:  make([]ringSlot, m),
			byID:   newSlotIndex(m),
			intern: make(map[string]string),
		}
	}
	return r
}

// shard returns the shard of the request id and the id's hash.
func (r *ring) shard(id string) (*ringShard, uint64) {
	h := maphash.String(r.seed, id)
	return &r.shards[h>>r.shift], h
}

var recordPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// put stores the encoded record rec of the decision id.
func (r *ring) put(id string, rec []byte) {
	s, h := r.shard(id)
	s.put(h, rec)
}

// put stores the record rec of the request-id hash h.
func (r *ringShard) put(h uint64, rec []byte) {
	if len(rec) > len(r.arena) {
		return // larger than the whole arena: not kept
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.slots[r.next]; old.n > 0 {
		if i, ok := r.byID.get(old.hash); ok && int(i) == r.next {
			r.byID.del(old.hash)
		}
	}
	pos := r.head
	r.copyIn(pos, rec)
	r.head += uint64(len(rec))
	r.slots[r.next] = ringSlot{hash: h, pos: pos, n: uint32(len(rec))}
	r.byID.set(h, uint32(r.next))
	r.next = (r.next + 1) % len(r.slots)
}

func (r *ringShard) copyIn(pos uint64, rec []byte) {
	off := int(pos % uint64(len(r.arena)))
	k := copy(r.arena[off:], rec)
	copy(r.arena, rec[k:])
}

// view returns the bytes of the record of id, whose hash is h, while the
// caller holds r.mu: the arena's own bytes, valid until the caller releases
// r.mu, or a copy in dst for a record that wraps around the arena's end. A
// record whose bytes were overwritten by newer ones, or whose id merely
// shares the hash, is not found. Reading in place matters: a record with a
// logged pool is larger than the stack buffers of joined and trace, which
// every event of a decision reads, and their copies were most of the event
// path's allocation (docs/benchmarks.md, issue 16).
func (r *ringShard) view(id string, h uint64, dst []byte) ([]byte, bool) {
	i, ok := r.byID.get(h)
	if !ok {
		return dst, false
	}
	b, ok := r.slotView(r.slots[i], dst, math.MaxInt)
	if !ok {
		return dst, false
	}
	rd := reader{b: b}
	if !knownVersion(rd.byte()) || string(rd.bytes()) != id {
		return dst, false
	}
	return b, true
}

// slotView returns up to limit of the first bytes of the record in slot
// s, while the caller holds r.mu: the arena's own bytes (valid until the
// caller releases r.mu), or appended to dst when they wrap around its end;
// false when the slot is empty or its bytes were overwritten.
func (r *ringShard) slotView(s ringSlot, dst []byte, limit int) ([]byte, bool) {
	if s.n == 0 || r.head-s.pos > uint64(len(r.arena)) {
		return dst, false
	}
	off := int(s.pos % uint64(len(r.arena)))
	end := off + min(int(s.n), limit)
	if end <= len(r.arena) {
		return r.arena[off:end:end], true
	}
	dst = append(dst, r.arena[off:]...)
	dst = append(dst, r.arena[:end-len(r.arena)]...)
	return dst, true
}

// eraseChunk is how many slots eraseUser scans per hold of the lock, so
// that an erasure delays a decision being stored by microseconds, not by
// the scan of the whole ring.
const eraseChunk = 2048

// recordHeadBytes bounds the bytes of a record before its user hash: the
// version, a request id of up to 128 bytes, the time and the hash.
const recordHeadBytes = 256

// eraseUser drops the decisions of the user pseudonymized as userHash
// made at or before at, overwriting their bytes with zeros, and returns how
// many it dropped. Decisions made after at (the user came back after the
// erasure) are kept, so applying an erasure again drops nothing new.
func (r *ring) eraseUser(userHash string, at time.Time) int {
	if userHash == "" {
		return 0
	}
	n := 0
	for i := range r.shards {
		n += r.shards[i].eraseUser(userHash, at)
	}
	return n
}

// eraseUser is ring.eraseUser on one shard.
func (r *ringShard) eraseUser(userHash string, at time.Time) int {
	atNanos := at.UnixNano()
	var buf [recordHeadBytes]byte
	n := 0
	for lo := 0; lo < len(r.slots); lo += eraseChunk {
		r.mu.Lock()
		for i := lo; i < min(lo+eraseChunk, len(r.slots)); i++ {
			s := r.slots[i]
			b, ok := r.slotView(s, buf[:0], recordHeadBytes)
			if !ok {
				continue
			}
			rd := reader{b: b}
			rd.byte()  // version
			rd.bytes() // request id
			if t := rd.varint(); rd.err || t > atNanos {
				continue // made after the erasure: the user came back
			}
			if h := rd.bytes(); rd.err || string(h) != userHash {
				continue
			}
			if j, ok := r.byID.get(s.hash); ok && int(j) == i {
				r.byID.del(s.hash)
			}
			r.zero(s.pos, int(s.n))
			r.slots[i].n = 0
			n++
		}
		r.mu.Unlock()
	}
	r.mu.Lock()
	r.zeroOrphans()
	r.mu.Unlock()
	return n
}

// zeroOrphans overwrites with zeros the bytes of the arena before its
// oldest record still indexed: records evicted by the slot bound, whose
// bytes stay until the arena wraps over them. The caller holds r.mu.
func (r *ringShard) zeroOrphans() {
	size := uint64(len(r.arena))
	from := uint64(0)
	if r.head > size {
		from = r.head - size
	}
	oldest := r.head
	for _, s := range r.slots {
		if s.n > 0 && s.pos >= from && s.pos < oldest {
			oldest = s.pos
		}
	}
	if oldest > from {
		r.zero(from, int(oldest-from))
	}
}

// zero overwrites n bytes of the arena from position pos with zeros; the
// caller holds r.mu.
func (r *ringShard) zero(pos uint64, n int) {
	off := int(pos % uint64(len(r.arena)))
	clear(r.arena[off:min(off+n, len(r.arena))])
	if rest := off + n - len(r.arena); rest > 0 {
		clear(r.arena[:rest])
	}
}

// get decodes the decision requestID and its model context.
func (r *ring) get(id string) (*Decision, *model.Context, bool) {
	bp := recordPool.Get().(*[]byte)
	defer recordPool.Put(bp)
	s, h := r.shard(id)
	s.mu.Lock()
	rec, ok := s.view(id, h, (*bp)[:0])
	if ok {
		rec = append((*bp)[:0], rec...) // decoded after the lock is released
	}
	s.mu.Unlock()
	*bp = rec
	if !ok {
		return nil, nil, false
	}
	d, x := decodeRecord(rec)
	return d, x, true
}

// joined finds the item itemID of decision id and decodes what training
// needs, without allocating: strings come from the intern table and the
// item id is the caller's.
func (r *ring) joined(id, itemID string) (Join, bool) {
	s, h := r.shard(id)
	return s.joined(id, h, itemID)
}

// joined is ring.joined on the shard of id, whose hash is h.
func (r *ringShard) joined(id string, h uint64, itemID string) (Join, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var buf [1024]byte
	rec, ok := r.view(id, h, buf[:0])
	if !ok {
		return Join{}, false
	}
	rd := reader{b: rec}
	variant := rd.head()
	found := false
	var j Join
	for k := range rd.count() {
		iid, cat := rd.item()
		if !found && string(iid) == itemID {
			found = true
			j.Item = event.Item{ID: itemID, Category: r.str(cat), Available: true}
			j.Context.Slot = int(k) + 1 // where the user saw it: the model learns position bias apart
		}
	}
	if !found || rd.err {
		return Join{}, false
	}
	rd.tail()
	j.Variant = r.str(variant)
	j.Context.User.AgeBucket = r.str(rd.bytes())
	j.Context.User.Segment = r.str(rd.bytes())
	j.Context.User.Region = r.str(rd.bytes())
	j.Context.User.Device = r.str(rd.bytes())
	j.Context.Channel = r.str(rd.bytes())
	j.Context.Hour = int(rd.varint())
	if n := rd.uvarint(); n > 0 && !rd.err {
		j.Context.RecentCategories = make([]string, 0, min(n, 16))
		for range n {
			j.Context.RecentCategories = append(j.Context.RecentCategories, r.str(rd.bytes()))
		}
	}
	return j, !rd.err
}

// head skips the decision fields before the items and returns the variant.
func (r *reader) head() (variant []byte) {
	r.byte()   // record version
	r.bytes()  // request id
	r.varint() // time
	r.bytes()  // user hash
	r.byte()   // known user
	r.bytes()  // segment
	r.bytes()  // channel
	variant = r.bytes()
	r.bytes() // model version
	for range r.count() {
		r.bytes()
		if r.byte() == 1 {
			r.bytes()
		}
	}
	r.uvarint() // candidates
	return variant
}

// item reads one item and returns its id and category.
func (r *reader) item() (id, category []byte) {
	id, category = r.bytes(), r.bytes()
	r.float() // score
	r.bytes() // reason
	r.float() // propensity
	return id, category
}

// tail reads the decision fields after the items, up to the model context.
func (r *reader) tail() (fallback, traceID, spanID []byte, sampled bool) {
	r.float() // confidence
	fallback = r.bytes()
	r.bytes() // fallback detail
	for range r.count() {
		r.bytes()
		r.varint()
		r.bytes()
	}
	r.varint() // duration
	traceID, spanID = r.bytes(), r.bytes()
	return fallback, traceID, spanID, r.byte() == 1
}

// str returns b as an interned string; the caller holds r.mu.
func (r *ringShard) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if s, ok := r.intern[string(b)]; ok {
		return s
	}
	if len(r.intern) >= maxInterned {
		clear(r.intern)
	}
	s := string(b)
	r.intern[s] = s
	return s
}

// appendRecord encodes d and x. The layout is read back by decodeRecord and
// ring.joined, field by field in this order.
func appendRecord(b []byte, d *Decision, x *model.Context) []byte {
	b = append(b, RecordVersion)
	b = appendString(b, d.RequestID)
	b = binary.AppendVarint(b, d.Time.UnixNano())
	b = appendString(b, d.UserHash)
	b = appendBool(b, d.KnownUser)
	b = appendString(b, d.Segment)
	b = appendString(b, d.Channel)
	b = appendString(b, d.Variant)
	b = appendString(b, d.ModelVersion)
	b = binary.AppendUvarint(b, uint64(len(d.Features)))
	for name, v := range d.Features {
		b = appendString(b, name)
		b = appendBool(b, v != nil)
		if v != nil {
			b = appendString(b, *v)
		}
	}
	b = binary.AppendUvarint(b, uint64(d.Candidates))
	b = binary.AppendUvarint(b, uint64(len(d.Items)))
	for _, it := range d.Items {
		b = appendString(b, it.ItemID)
		b = appendString(b, it.Category)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(it.Score))
		b = appendString(b, it.Reason)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(it.Propensity))
	}
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(d.Confidence))
	b = appendString(b, string(d.Fallback))
	b = appendString(b, d.FallbackDetail)
	b = binary.AppendUvarint(b, uint64(len(d.Stages)))
	for _, st := range d.Stages {
		b = appendString(b, st.Stage)
		b = binary.AppendVarint(b, int64(st.Duration))
		b = appendString(b, st.Error)
	}
	b = binary.AppendVarint(b, int64(d.Duration))
	b = appendString(b, d.TraceID)
	b = appendString(b, d.SpanID)
	b = appendBool(b, d.TraceSampled)
	// The model context: what the model saw (User.ID and Attrs are unused).
	b = appendString(b, x.User.AgeBucket)
	b = appendString(b, x.User.Segment)
	b = appendString(b, x.User.Region)
	b = appendString(b, x.User.Device)
	b = appendString(b, x.Channel)
	b = binary.AppendVarint(b, int64(x.Hour))
	b = binary.AppendUvarint(b, uint64(len(x.RecentCategories)))
	for _, c := range x.RecentCategories {
		b = appendString(b, c)
	}
	// Version 2: the exploration settings and the candidate pool.
	b = binary.AppendUvarint(b, uint64(d.Eligible))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(d.Explore))
	b = binary.AppendUvarint(b, uint64(d.ExploreTop))
	b = binary.AppendUvarint(b, uint64(len(d.Pool)))
	for _, p := range d.Pool {
		b = appendString(b, p.ItemID)
		b = appendString(b, p.Category)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.Score))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.Popularity))
	}
	// Version 3: a shadow challenger's would-be answer, when there is one.
	s := d.Shadow
	b = appendBool(b, s != nil)
	if s != nil {
		b = appendString(b, s.ModelVersion)
		b = binary.AppendUvarint(b, uint64(len(s.Items)))
		for i, id := range s.Items {
			var p float64
			if i < len(s.Scores) {
				p = s.Scores[i]
			}
			b = appendString(b, id)
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p))
		}
		b = binary.AppendUvarint(b, uint64(s.Overlap))
		b = binary.AppendVarint(b, int64(s.Duration))
		b = appendString(b, s.Error)
	}
	return b
}

// decodeRecord decodes a record of appendRecord into fresh values.
func decodeRecord(rec []byte) (*Decision, *model.Context) {
	d, x, _ := decodeChecked(rec)
	return d, x
}

// decodeChecked is decodeRecord reporting whether the record read whole.
func decodeChecked(rec []byte) (*Decision, *model.Context, bool) {
	rd := reader{b: rec}
	d := &Decision{}
	version := rd.byte()
	d.RequestID = string(rd.bytes())
	d.Time = time.Unix(0, rd.varint())
	d.UserHash = string(rd.bytes())
	d.KnownUser = rd.byte() == 1
	d.Segment = string(rd.bytes())
	d.Channel = string(rd.bytes())
	d.Variant = string(rd.bytes())
	d.ModelVersion = string(rd.bytes())
	if n := rd.count(); n > 0 {
		d.Features = make(map[string]*string, n)
		for range n {
			name := string(rd.bytes())
			if rd.byte() == 1 {
				v := string(rd.bytes())
				d.Features[name] = &v
			} else {
				d.Features[name] = nil
			}
		}
	}
	d.Candidates = int(rd.uvarint())
	if n := rd.count(); n > 0 {
		d.Items = make([]Item, n)
		for i := range d.Items {
			it := &d.Items[i]
			it.ItemID, it.Category = string(rd.bytes()), string(rd.bytes())
			it.Score = rd.float()
			it.Reason = string(rd.bytes())
			it.Propensity = rd.float()
		}
	}
	d.Confidence = rd.float()
	d.Fallback = Reason(rd.bytes())
	d.FallbackDetail = string(rd.bytes())
	if n := rd.count(); n > 0 {
		d.Stages = make([]StageTiming, n)
		for i := range d.Stages {
			st := &d.Stages[i]
			st.Stage = string(rd.bytes())
			st.Duration = time.Duration(rd.varint())
			st.Error = string(rd.bytes())
		}
	}
	d.Duration = time.Duration(rd.varint())
	d.TraceID = string(rd.bytes())
	d.SpanID = string(rd.bytes())
	d.TraceSampled = rd.byte() == 1
	x := &model.Context{}
	x.User.AgeBucket = string(rd.bytes())
	x.User.Segment = string(rd.bytes())
	x.User.Region = string(rd.bytes())
	x.User.Device = string(rd.bytes())
	x.Channel = string(rd.bytes())
	x.Hour = int(rd.varint())
	if n := rd.count(); n > 0 {
		x.RecentCategories = make([]string, n)
		for i := range x.RecentCategories {
			x.RecentCategories[i] = string(rd.bytes())
		}
	}
	if version >= 2 {
		d.Eligible = int(rd.uvarint())
		d.Explore = rd.float()
		d.ExploreTop = int(rd.uvarint())
		if n := rd.count(); n > 0 {
			d.Pool = make([]PoolItem, n)
			for i := range d.Pool {
				p := &d.Pool[i]
				p.ItemID, p.Category = string(rd.bytes()), string(rd.bytes())
				p.Score = rd.float()
				p.Popularity = rd.float()
			}
		}
	}
	if version >= 3 && rd.byte() == 1 {
		s := &Shadow{ModelVersion: string(rd.bytes())}
		if n := rd.count(); n > 0 {
			s.Items, s.Scores = make([]string, n), make([]float64, n)
			for i := range s.Items {
				s.Items[i] = string(rd.bytes())
				s.Scores[i] = rd.float()
			}
		}
		s.Overlap = int(rd.uvarint())
		s.Duration = time.Duration(rd.varint())
		s.Error = string(rd.bytes())
		d.Shadow = s
	}
	return d, x, !rd.err
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// reader decodes a record; past the end or on a malformed length it sets
// err and returns zero values, so callers check err once at the end.
type reader struct {
	b   []byte
	err bool
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a length, bounded by the bytes left (each element takes at
// least one byte).
func (r *reader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err, r.b = true, nil
		return 0
	}
	return int(n)
}

func (r *reader) bytes() []byte {
	n := r.count()
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.err = true
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) float() float64 {
	if len(r.b) < 8 {
		r.err, r.b = true, nil
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

// trace reads the trace of decision id without allocating.
func (r *ring) trace(id string) (DecisionTrace, bool) {
	s, h := r.shard(id)
	return s.trace(id, h)
}

// trace is ring.trace on the shard of id, whose hash is h.
func (r *ringShard) trace(id string, h uint64) (DecisionTrace, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var buf [1024]byte
	rec, ok := r.view(id, h, buf[:0])
	if !ok {
		return DecisionTrace{}, false
	}
	rd := reader{b: rec}
	rd.head()
	for range rd.count() {
		rd.item()
	}
	var t DecisionTrace
	fb, tid, sid, sampled := rd.tail()
	t.Fallback, t.Sampled = Reason(r.str(fb)), sampled
	var ok2 bool
	t.TraceID, t.SpanID, ok2 = traceIDs(tid, sid)
	if rd.err || !ok2 {
		return DecisionTrace{}, false
	}
	return t, true
}

// EraseUser drops from the ring the decisions of the user whose pseudonym
// is userHash ([Decision].UserHash) made at or before at, and returns how
// many it dropped: they are no longer found by request id, and their bytes
// are overwritten. Decisions made after at are kept, so an erasure applied
// again (a node replaying the erasure record of DELETE /v1/users/{id})
// drops nothing new. It scans the whole ring in short holds of its lock.
func (r *Ring) EraseUser(userHash string, at time.Time) int {
	return r.r.eraseUser(userHash, at)
}
