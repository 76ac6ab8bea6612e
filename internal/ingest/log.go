package ingest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/maphash"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/sightline/sightline/internal/event"
)

// maxGroupEvents bounds the events coalesced into one group commit.
const maxGroupEvents = 1 << 16

// Log is the embedded durable event log: a directory of append-only segment
// files (<dir>/<20-digit base offset>.log) with one writer goroutine that
// group-commits concurrent appends.
//
// All methods are safe for concurrent use. [Log.Run] must run for
// FsyncInterval and for retention; [Log.Close] releases the log.
type Log struct {
	dir      string
	cfg      Config
	logger   *slog.Logger
	m        *metrics
	lockFile *os.File

	reqs       chan *appendReq
	closing    chan struct{}
	writerDone chan struct{}
	closeOnce  sync.Once
	closeErr   error

	mu       sync.RWMutex // guards the fields below and segment fields
	segments []*segment
	next     uint64        // next offset to assign, published
	notify   chan struct{} // closed and replaced when next advances
	closed   bool

	w writer // owned by the writer goroutine after Open

	cmu       sync.Mutex // guards consumers
	consumers map[string]*consumer
}

// appendReq is one Append call waiting for the writer.
type appendReq struct {
	evs  []event.Event
	res  AppendResult
	err  error
	done chan struct{}
}

// writer is the state of the writer goroutine.
type writer struct {
	next    uint64
	active  *segment
	buf     []byte
	relPos  []int64 // frame positions in buf of the current group
	failed  error   // sticky: set by the first I/O error that could not be undone
	full    bool    // the last group failed with an undone write (logged once)
	seed    maphash.Seed
	ids     map[uint64]uint64 // hash of event ID -> offset, the dedupe window
	ring    []dedupeEntry     // the window in append order, for eviction
	ringPos int
	window  int
	pending map[uint64]uint64 // hash -> offset for the current group
	groupID []string          // IDs of the current group, by offset - group start
}

type dedupeEntry struct {
	h   uint64
	off uint64
}

// Open opens or creates the log in dir and recovers it: every retained
// segment is scanned and its CRCs checked, a torn or corrupt tail of the
// last segment is truncated away (logged at WARN), corruption in an older
// segment makes the rest of that segment unreadable (counted and logged at
// ERROR), and the dedupe window is rebuilt. Open starts the writer
// goroutine; Close stops it.
func Open(dir string, cfg Config) (*Log, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	// G703 (path traversal): dir is the operator's data directory, and the
	// names joined to it are constants.
	if err := os.MkdirAll(filepath.Join(dir, offsetsDir), 0o750); err != nil { //nolint:gosec // see above
		return nil, fmt.Errorf("open log: %w", err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o600) //nolint:gosec // see above
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	if err := lockFile(lf); err != nil {
		lf.Close()
		return nil, fmt.Errorf("open log: %w", err)
	}
	l := &Log{
		dir:        dir,
		cfg:        cfg,
		logger:     cfg.Logger,
		lockFile:   lf,
		reqs:       make(chan *appendReq, 1024),
		closing:    make(chan struct{}),
		writerDone: make(chan struct{}),
		notify:     make(chan struct{}),
		consumers:  make(map[string]*consumer),
	}
	l.w.seed = maphash.MakeSeed()
	l.w.ids = make(map[uint64]uint64)
	l.w.pending = make(map[uint64]uint64)
	l.w.window = cfg.DedupeWindow
	l.m = newMetrics()
	if err := l.recover(); err != nil {
		return nil, fmt.Errorf("open log: %w", errors.Join(err, l.closeFiles()))
	}
	if err := l.m.register(cfg.Registerer, l); err != nil {
		return nil, fmt.Errorf("open log: register metrics: %w", errors.Join(err, l.closeFiles()))
	}
	go l.writeLoop()
	return l, nil
}

// recover scans the segments in dir and sets up the writer.
func (l *Log) recover() error {
	bases, err := listSegments(l.dir)
	if err != nil {
		return err
	}
	for i, base := range bases {
		last := i == len(bases)-1
		path := filepath.Join(l.dir, segmentName(base))
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		s := &segment{base: base, path: path, f: f}
		l.segments = append(l.segments, s)
		if i > 0 && base < l.segments[i-1].next {
			l.m.corrupt.Inc()
			l.logger.LogAttrs(context.Background(), slog.LevelError, "event log segments overlap; reads of the overlap use the newer segment",
				slog.String("segment", segmentName(base)), slog.Uint64("previous_next", l.segments[i-1].next))
		}
		prob, err := s.scan(func(off uint64, rec []byte) {
			if id, err := recordID(rec); err == nil {
				l.w.remember(maphash.Bytes(l.w.seed, id), off)
			}
		})
		if err != nil {
			return fmt.Errorf("scan %s: %w", segmentName(base), err)
		}
		if prob == nil {
			continue
		}
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		attrs := []slog.Attr{
			slog.String("segment", segmentName(base)), slog.Int64("position", prob.pos),
			slog.String("reason", prob.reason), slog.Uint64("next_offset", s.next),
			slog.Int64("dropped_bytes", fi.Size()-prob.pos),
		}
		l.m.corrupt.Inc()
		if last {
			l.logger.LogAttrs(context.Background(), slog.LevelWarn, "event log: truncating torn or corrupt tail of the last segment", attrs...)
			if err := f.Truncate(prob.pos); err != nil {
				return fmt.Errorf("truncate %s: %w", segmentName(base), err)
			}
			if err := f.Sync(); err != nil {
				return err
			}
			continue
		}
		l.logger.LogAttrs(context.Background(), slog.LevelError, "event log: corrupt record in a sealed segment; skipping the rest of the segment", attrs...)
	}
	if len(l.segments) == 0 {
		s, err := createSegment(l.dir, 0)
		if err != nil {
			return err
		}
		if err := syncDir(l.dir); err != nil {
			return err
		}
		l.segments = append(l.segments, s)
	}
	l.w.active = l.segments[len(l.segments)-1]
	l.w.next = l.w.active.next
	l.next = l.w.next
	return nil
}

// remember adds an appended event ID to the dedupe window.
func (w *writer) remember(h, off uint64) {
	if w.window <= 0 {
		return
	}
	w.ids[h] = off
	e := dedupeEntry{h: h, off: off}
	if len(w.ring) < w.window {
		w.ring = append(w.ring, e)
		return
	}
	old := w.ring[w.ringPos]
	if o, ok := w.ids[old.h]; ok && o == old.off {
		delete(w.ids, old.h)
	}
	w.ring[w.ringPos] = e
	w.ringPos = (w.ringPos + 1) % w.window
}

// Append writes evs to the log and returns when they are durable according
// to the fsync policy. Events whose ID is in the dedupe window, or repeats
// an earlier event of evs, are skipped and counted as duplicates. Appended
// events get contiguous offsets in the order of evs, and become visible to
// Read and consumers when Append returns.
//
// ctx bounds only the wait to enter the writer's queue; once queued, Append
// waits for the write so that its result is never ambiguous. evs must not
// be modified during the call. Append after Close returns ErrClosed; after
// an I/O error every Append fails with that error.
func (l *Log) Append(ctx context.Context, evs []event.Event) (AppendResult, error) {
	select {
	case <-l.closing:
		return AppendResult{}, ErrClosed
	default:
	}
	if len(evs) == 0 {
		return AppendResult{}, nil
	}
	for i := range evs {
		if encodedSizeBound(&evs[i]) > MaxRecordBytes {
			return AppendResult{}, fmt.Errorf("append event %d of %d: %w", i, len(evs), ErrRecordTooLarge)
		}
	}
	r := &appendReq{evs: evs, done: make(chan struct{})}
	select {
	case l.reqs <- r:
	case <-l.closing:
		return AppendResult{}, ErrClosed
	case <-ctx.Done():
		return AppendResult{}, ctx.Err()
	}
	select {
	case <-r.done:
	case <-l.writerDone:
		select {
		case <-r.done:
		default:
			return AppendResult{}, ErrClosed
		}
	}
	return r.res, r.err
}

// encodedSizeBound is an upper bound of the AppendRecord size of ev.
func encodedSizeBound(ev *event.Event) int {
	return 2 + 7*binary.MaxVarintLen64 + 3*binary.MaxVarintLen64 + len(ev.ID) + len(ev.UserID) + len(ev.ItemID) +
		len(ev.RequestID) + len(ev.Channel) + len(ev.TraceParent) + len(ev.TraceState)
}

// writeLoop is the writer goroutine: it coalesces queued appends into one
// write and one fsync.
func (l *Log) writeLoop() {
	defer close(l.writerDone)
	var group []*appendReq
	for {
		group = group[:0]
		select {
		case r := <-l.reqs:
			group = append(group, r)
		case <-l.closing:
			for {
				select {
				case r := <-l.reqs:
					group = append(group, r)
					continue
				default:
				}
				break
			}
			if len(group) > 0 {
				l.commit(group)
			}
			return
		}
		n := len(group[0].evs)
	coalesce:
		for n < maxGroupEvents {
			select {
			case r := <-l.reqs:
				group = append(group, r)
				n += len(r.evs)
			default:
				break coalesce
			}
		}
		l.commit(group)
		clear(group)
	}
}

// commit writes one group of appends.
func (l *Log) commit(group []*appendReq) {
	w := &l.w
	defer func() {
		for _, r := range group {
			close(r.done)
		}
	}()
	if w.failed != nil {
		for _, r := range group {
			r.err = w.failed
		}
		return
	}
	nowNano := l.cfg.Now().UnixNano()
	start := w.next
	w.buf = w.buf[:0]
	w.relPos = w.relPos[:0]
	w.groupID = w.groupID[:0]
	clear(w.pending)
	dups := 0
	for _, r := range group {
		var res AppendResult
		for i := range r.evs {
			ev := &r.evs[i]
			h := maphash.String(w.seed, ev.ID)
			if l.isDuplicate(h, ev.ID, start) {
				res.Duplicates++
				continue
			}
			off := start + uint64(len(w.groupID))
			w.relPos = append(w.relPos, int64(len(w.buf)))
			w.buf = appendFrame(w.buf, off, nowNano, ev)
			w.pending[h] = off
			w.groupID = append(w.groupID, ev.ID)
			if res.Appended == 0 {
				res.First = off
			}
			res.Last = off
			res.Appended++
		}
		r.res = res
		dups += res.Duplicates
	}
	l.m.duplicates.Add(float64(dups))
	n := len(w.groupID)
	if n == 0 {
		return
	}
	if err := l.writeGroup(start, nowNano); err != nil {
		err = fmt.Errorf("event log write: %w", err)
		if _, ok := errors.AsType[*undoneWriteError](err); ok {
			// Nothing of the group is left in the log (typically a full
			// disk): fail it and try the next group afresh.
			if !w.full {
				w.full = true
				l.logger.LogAttrs(context.Background(), slog.LevelError, "event log write failed and was undone; rejecting appends until a write succeeds",
					slog.Any("err", err))
			}
		} else {
			w.failed = err
			l.logger.LogAttrs(context.Background(), slog.LevelError, "event log write failed; rejecting further appends",
				slog.Any("err", err))
		}
		for _, r := range group {
			r.res, r.err = AppendResult{}, err
		}
		return
	}
	if w.full {
		w.full = false
		l.logger.LogAttrs(context.Background(), slog.LevelInfo, "event log writes succeed again")
	}
	for i, id := range w.groupID {
		w.remember(maphash.String(w.seed, id), start+uint64(i))
	}
	l.m.appended.Add(float64(n))
}

// isDuplicate reports whether the event with ID id and hash h was appended
// before, in the window or earlier in the group starting at offset start.
// A hash match is confirmed by comparing the stored ID, so a hash collision
// never drops an event; a match whose record is no longer retained is
// trusted.
func (l *Log) isDuplicate(h uint64, id string, start uint64) bool {
	w := &l.w
	if off, ok := w.pending[h]; ok {
		return w.groupID[off-start] == id
	}
	off, ok := w.ids[h]
	if !ok {
		return false
	}
	recs, err := l.Read(off, 1, nil)
	if err != nil || len(recs) == 0 || recs[0].Offset != off {
		return true
	}
	return recs[0].Event.ID == id
}

// writeGroup writes w.buf (records start..w.next) to the active segment,
// rolling it first if the group does not fit, fsyncs per policy and
// publishes the records.
func (l *Log) writeGroup(start uint64, nowNano int64) error {
	w := &l.w
	act := w.active
	if act.size > 0 && act.size+int64(len(w.buf)) > l.cfg.SegmentBytes {
		if err := l.roll(start); err != nil {
			return err
		}
		act = w.active
	}
	if _, err := act.f.WriteAt(w.buf, act.size); err != nil {
		// A short write (ENOSPC, EDQUOT, EIO) may have left part of the
		// group in the file: cut it off so that the segment holds only
		// acknowledged frames and the next write starts at a frame
		// boundary. Shrinking needs no space.
		if terr := act.f.Truncate(act.size); terr != nil {
			return errors.Join(err, fmt.Errorf("undo the failed write: %w", terr))
		}
		return &undoneWriteError{err: err}
	}
	if l.cfg.Fsync == FsyncAlways {
		if err := l.sync(act.f); err != nil {
			return err
		}
	}
	n := uint64(len(w.groupID))
	w.next = start + n
	l.mu.Lock()
	for i, p := range w.relPos {
		act.addIndex(start+uint64(i), act.size+p)
	}
	act.size += int64(len(w.buf))
	act.next = w.next
	act.lastNano = nowNano
	l.next = w.next
	close(l.notify)
	l.notify = make(chan struct{})
	l.mu.Unlock()
	return nil
}

// roll seals the active segment and starts a new one at base.
func (l *Log) roll(base uint64) error {
	w := &l.w
	if l.cfg.Fsync != FsyncNever {
		if err := l.sync(w.active.f); err != nil {
			return err
		}
	}
	s, err := createSegment(l.dir, base)
	if err != nil {
		// The active segment is untouched: the next group tries again.
		return &undoneWriteError{err: err}
	}
	if l.cfg.Fsync != FsyncNever {
		if err := syncDir(l.dir); err != nil {
			s.f.Close()
			return err
		}
	}
	l.mu.Lock()
	l.segments = append(l.segments, s)
	l.mu.Unlock()
	w.active = s
	return nil
}

// undoneWriteError is a write of a group that failed without leaving any
// of the group in the log, so the log can take the next group (a full
// disk that may get space back). A failed fsync is not undone: after one,
// what the file holds is unknown, and the log rejects every later append.
type undoneWriteError struct{ err error }

func (e *undoneWriteError) Error() string { return e.err.Error() }
func (e *undoneWriteError) Unwrap() error { return e.err }

// sync fsyncs f and records the duration.
func (l *Log) sync(f *os.File) error {
	t := time.Now()
	err := f.Sync()
	l.m.fsync.Observe(time.Since(t).Seconds())
	return err
}

// Next returns the next offset the log will assign: one past the newest
// record visible to readers.
func (l *Log) Next() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.next
}

// Oldest returns the oldest retained offset. It equals Next when the log is
// empty.
func (l *Log) Oldest() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.oldestLocked()
}

func (l *Log) oldestLocked() uint64 {
	for _, s := range l.segments {
		if s.next > s.base {
			return s.base
		}
	}
	return l.next
}

// Read appends to dst[:0] up to limit records starting at offset from and
// returns it. It returns fewer records (possibly none) when the log has no
// more; offsets lost to corruption are skipped. It returns an
// [*OutOfRangeError] when from is below the oldest retained offset, and
// ErrClosed after Close. Read does not block waiting for records.
func (l *Log) Read(from uint64, limit int, dst []Record) ([]Record, error) {
	dst = dst[:0]
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return dst, ErrClosed
	}
	if oldest := l.oldestLocked(); from < oldest {
		return dst, &OutOfRangeError{Offset: from, Oldest: oldest}
	}
	if from >= l.next || limit <= 0 {
		return dst, nil
	}
	segs := l.segments
	i := sort.Search(len(segs), func(i int) bool { return segs[i].next > from })
	var buf []byte
	for ; i < len(segs) && len(dst) < limit; i++ {
		s := segs[i]
		if i+1 < len(segs) && from >= segs[i+1].base {
			continue // overlapping segments: the newer one wins
		}
		var err error
		dst, buf, err = l.readSegment(s, from, limit, dst, buf)
		if err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// readSegment appends records of s with offset >= from to dst, up to limit.
func (l *Log) readSegment(s *segment, from uint64, limit int, dst []Record, buf []byte) ([]Record, []byte, error) {
	pos := s.seek(from)
	chunk := 64 << 10
	for pos < s.size && len(dst) < limit {
		n := int(min(int64(chunk), s.size-pos))
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := s.f.ReadAt(buf, pos); err != nil {
			return dst, buf, fmt.Errorf("read %s: %w", segmentName(s.base), err)
		}
		p := 0
		for p+frameHeader <= n && len(dst) < limit {
			length := int(binary.LittleEndian.Uint32(buf[p:]))
			if length < payloadHeader || length > maxFrame {
				return dst, buf, fmt.Errorf("read %s at %d: frame length %d: %w", segmentName(s.base), pos+int64(p), length, event.ErrCorrupt)
			}
			if p+frameHeader+length > n {
				break
			}
			payload := buf[p+frameHeader : p+frameHeader+length]
			if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(buf[p+4:]) {
				return dst, buf, fmt.Errorf("read %s at %d: crc mismatch: %w", segmentName(s.base), pos+int64(p), event.ErrCorrupt)
			}
			p += frameHeader + length
			off := binary.LittleEndian.Uint64(payload)
			if off < from {
				continue
			}
			ev, err := DecodeRecord(payload[payloadHeader:])
			if err != nil {
				return dst, buf, fmt.Errorf("read %s offset %d: %w", segmentName(s.base), off, err)
			}
			dst = append(dst, Record{
				Offset:     off,
				AppendTime: time.Unix(0, int64(binary.LittleEndian.Uint64(payload[8:]))),
				Event:      ev,
			})
		}
		if p == 0 {
			if int64(n) == s.size-pos {
				return dst, buf, fmt.Errorf("read %s at %d: frame past end of segment: %w", segmentName(s.base), pos, event.ErrCorrupt)
			}
			// One frame larger than the chunk: read it whole.
			chunk = frameHeader + int(binary.LittleEndian.Uint32(buf))
			continue
		}
		pos += int64(p)
	}
	return dst, buf, nil
}

// Run performs the log's background work until ctx is done or the log is
// closed: the periodic fsync under FsyncInterval and retention. The owner
// runs it in an errgroup. It returns nil on shutdown.
func (l *Log) Run(ctx context.Context) error {
	var syncC <-chan time.Time
	if l.cfg.Fsync == FsyncInterval {
		t := time.NewTicker(l.cfg.FsyncInterval)
		defer t.Stop()
		syncC = t.C
	}
	rt := time.NewTicker(l.cfg.RetentionCheckInterval)
	defer rt.Stop()
	l.enforceRetention(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.closing:
			return nil
		case <-syncC:
			l.mu.RLock()
			f := l.segments[len(l.segments)-1].f
			l.mu.RUnlock()
			if err := l.sync(f); err != nil && !errors.Is(err, os.ErrClosed) {
				l.logger.LogAttrs(ctx, slog.LevelError, "event log fsync failed", slog.Any("err", err))
			}
		case <-rt.C:
			l.enforceRetention(ctx)
		}
	}
}

// enforceRetention deletes the oldest sealed segments that are older than
// Retention or beyond RetentionBytes.
func (l *Log) enforceRetention(ctx context.Context) {
	now := l.cfg.Now()
	var victims []*segment
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	var total int64
	for _, s := range l.segments {
		total += s.size
	}
	for len(l.segments) > 1 {
		s := l.segments[0]
		expired := l.cfg.Retention > 0 && now.Sub(time.Unix(0, s.lastNano)) > l.cfg.Retention
		over := l.cfg.RetentionBytes > 0 && total > l.cfg.RetentionBytes
		if !expired && !over {
			break
		}
		victims = append(victims, s)
		l.segments = l.segments[1:]
		total -= s.size
	}
	l.mu.Unlock()
	for _, s := range victims {
		err := errors.Join(s.f.Close(), os.Remove(s.path))
		if err != nil {
			l.logger.LogAttrs(ctx, slog.LevelError, "event log: delete segment", slog.String("segment", segmentName(s.base)), slog.Any("err", err))
			continue
		}
		l.logger.LogAttrs(ctx, slog.LevelInfo, "event log: deleted segment by retention",
			slog.String("segment", segmentName(s.base)), slog.Uint64("next_offset", s.next), slog.Int64("bytes", s.size))
	}
	if len(victims) > 0 {
		if err := syncDir(l.dir); err != nil {
			l.logger.LogAttrs(ctx, slog.LevelError, "event log: sync dir", slog.Any("err", err))
		}
	}
}

// Close stops the writer after it has written every queued append, fsyncs
// the active segment, and closes the files. Running Consume calls return
// ErrClosed (Close does not wait for them). Close is idempotent.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		close(l.closing)
		<-l.writerDone
		var err error
		l.mu.Lock()
		l.closed = true
		if len(l.segments) > 0 {
			err = l.sync(l.segments[len(l.segments)-1].f)
		}
		l.mu.Unlock()
		l.closeErr = errors.Join(err, l.closeFiles())
	})
	return l.closeErr
}

// closeFiles closes the segment files and releases the directory lock.
func (l *Log) closeFiles() error {
	var errs []error
	for _, s := range l.segments {
		errs = append(errs, s.f.Close())
	}
	errs = append(errs, l.lockFile.Close())
	return errors.Join(errs...)
}
