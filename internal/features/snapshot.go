package features

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sightline/sightline/internal/event"
)

// Snapshot format (all integers little-endian or varint):
//
//	magic "SLFEAT\x00\x01" (the last byte is the version)
//	frame*: uvarint len | payload[len] | crc32c
//
// Each frame's CRC-32C (Castagnoli) continues from the previous frame's (the
// first from the CRC of the magic), so a dropped, repeated or reordered frame
// fails the check, as does a flipped bit. A payload is a sequence of records,
// each a tag byte and its fields; strings are uvarint length and bytes:
//
//	recHeader   offset u64
//	recItem     id, category, ntags, tags..., available u8
//	recUser     id, flags u8, [profile: age, segment, region, device,
//	            nattrs, (key, value)..., sec varint, nsec uvarint],
//	            [activity: 3 x (n, ids...)]
//	recEnd      users uvarint, items uvarint (counts of the records above)
//
// The header is the first record and the end the last; nothing follows the
// frame that holds the end record.
const (
	snapMagic   = "SLFEAT\x00\x01"
	frameTarget = 1 << 20  // the writer cuts frames at about this size
	maxFrame    = 16 << 20 // the reader rejects larger frames
	maxSnapStr  = 64 << 10
)

const (
	recHeader byte = 1 + iota
	recItem
	recUser
	recEnd
)

const (
	userProfile  byte = 1 << 0
	userActivity byte = 1 << 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameWriter buffers records and writes them as checksummed frames.
type frameWriter struct {
	w    io.Writer
	crc  uint32
	buf  []byte
	cuts []int // record boundaries in buf where a frame ends
	last int   // start of the current frame in buf
	hdr  [binary.MaxVarintLen64]byte
}

// endRecord marks the end of a record, cutting a frame if it is big enough.
func (fw *frameWriter) endRecord() {
	if len(fw.buf)-fw.last >= frameTarget {
		fw.cuts = append(fw.cuts, len(fw.buf))
		fw.last = len(fw.buf)
	}
}

// flush writes the buffered records as frames.
func (fw *frameWriter) flush() error {
	if len(fw.buf) > fw.last {
		fw.cuts = append(fw.cuts, len(fw.buf))
	}
	start := 0
	for _, end := range fw.cuts {
		p := fw.buf[start:end]
		start = end
		n := binary.PutUvarint(fw.hdr[:], uint64(len(p)))
		if _, err := fw.w.Write(fw.hdr[:n]); err != nil {
			return err
		}
		if _, err := fw.w.Write(p); err != nil {
			return err
		}
		fw.crc = crc32.Update(fw.crc, castagnoli, p)
		if _, err := fw.w.Write(binary.LittleEndian.AppendUint32(fw.hdr[:0], fw.crc)); err != nil {
			return err
		}
	}
	fw.buf, fw.cuts, fw.last = fw.buf[:0], fw.cuts[:0], 0
	return nil
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// WriteSnapshot writes the store's users, items and activity to w, with
// offset (the event log position the snapshot covers) in its header.
//
// It encodes a batch of entries at a time under one shard's read lock and
// writes to w without holding a lock, so serving continues while a large store is
// written. The snapshot is therefore not a single point in time: changes
// made while it is written may or may not be in it, which is harmless when
// the caller replays the event log from offset after a restore, because
// [Memory.Apply] tolerates redelivery.
func (m *Memory) WriteSnapshot(w io.Writer, offset uint64) error {
	if _, err := io.WriteString(w, snapMagic); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	fw := &frameWriter{w: w, crc: crc32.Checksum([]byte(snapMagic), castagnoli)}
	fw.buf = append(fw.buf, recHeader)
	fw.buf = binary.LittleEndian.AppendUint64(fw.buf, offset)
	fw.endRecord()

	st := m.st.Load()
	var nItems, nUsers uint64
	for i := range st.items {
		sh := &st.items[i]
		err := eachLocked(&sh.mu, sh.m, fw.flush, func(_ string, it event.Item) {
			fw.buf = append(fw.buf, recItem)
			fw.buf = appendStr(fw.buf, it.ID)
			fw.buf = appendStr(fw.buf, it.Category)
			fw.buf = binary.AppendUvarint(fw.buf, uint64(len(it.Tags)))
			for _, t := range it.Tags {
				fw.buf = appendStr(fw.buf, t)
			}
			var avail byte
			if it.Available {
				avail = 1
			}
			fw.buf = append(fw.buf, avail)
			fw.endRecord()
			nItems++
		})
		if err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
	}
	for i := range st.users {
		sh := &st.users[i]
		err := eachLocked(&sh.mu, sh.m, fw.flush, func(id string, r *userRec) {
			fw.buf = m.appendUser(fw.buf, st, id, r)
			fw.endRecord()
			nUsers++
		})
		if err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
	}
	fw.buf = append(fw.buf, recEnd)
	fw.buf = binary.AppendUvarint(fw.buf, nUsers)
	fw.buf = binary.AppendUvarint(fw.buf, nItems)
	if err := fw.flush(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// snapBatch is how many entries WriteSnapshot encodes under one hold of a
// shard's read lock.
const snapBatch = 1024

// eachLocked calls fn for every entry of sh, holding mu's read lock. Every
// snapBatch entries it releases the lock, lets writers in, and calls between
// (which writes out what was encoded so far), so a large shard never holds
// off writers (and the readers queued behind them) for long. Go maps may be
// changed during a range: entries added meanwhile may or may not be seen,
// none is seen twice. After the shard, it calls between once more.
func eachLocked[V any](mu *sync.RWMutex, sh map[string]V, between func() error, fn func(string, V)) error {
	mu.RLock()
	n := 0
	var err error
	for k, v := range sh {
		fn(k, v)
		if n++; n%snapBatch == 0 {
			mu.RUnlock()
			err = between()
			mu.RLock()
			if err != nil {
				break
			}
		}
	}
	mu.RUnlock()
	if err != nil {
		return err
	}
	return between()
}

// appendUser encodes one user record. The caller holds the shard's lock.
func (m *Memory) appendUser(b []byte, st *state, id string, r *userRec) []byte {
	b = append(b, recUser)
	b = appendStr(b, id)
	var flags byte
	if r.profile {
		flags |= userProfile
	}
	if r.act != nil {
		flags |= userActivity
	}
	b = append(b, flags)
	if r.profile {
		for _, h := range r.attrs {
			b = appendStr(b, unintern(h))
		}
		b = binary.AppendUvarint(b, uint64(len(r.free)))
		for k, v := range r.free {
			b = appendStr(b, k)
			b = appendStr(b, v)
		}
		b = binary.AppendVarint(b, r.sec)
		b = binary.AppendUvarint(b, uint64(r.nsec))
	}
	if r.act != nil {
		for i, l := range m.actLists(r.act) {
			n := r.act[i]
			b = binary.AppendUvarint(b, uint64(n))
			for _, sym := range l[:n] {
				b = appendStr(b, st.syms.name(sym))
			}
		}
	}
	return b
}

// corrupt returns an error wrapping ErrCorruptSnapshot.
func corrupt(format string, args ...any) error {
	return fmt.Errorf("read snapshot: %w: %s", ErrCorruptSnapshot, fmt.Sprintf(format, args...))
}

// payload decodes the fields of records in one frame. The first error
// sticks; later reads return zero values.
type payload struct {
	b   []byte
	err error
}

func (p *payload) fail(what string) {
	if p.err == nil {
		p.err = corrupt("bad %s", what)
	}
	p.b = nil
}

func (p *payload) byte1(what string) byte {
	if len(p.b) < 1 {
		p.fail(what)
		return 0
	}
	v := p.b[0]
	p.b = p.b[1:]
	return v
}

func (p *payload) u64(what string) uint64 {
	if len(p.b) < 8 {
		p.fail(what)
		return 0
	}
	v := binary.LittleEndian.Uint64(p.b)
	p.b = p.b[8:]
	return v
}

func (p *payload) uvarint(what string, limit uint64) uint64 {
	v, n := binary.Uvarint(p.b)
	if n <= 0 || v > limit {
		p.fail(what)
		return 0
	}
	p.b = p.b[n:]
	return v
}

func (p *payload) varint(what string) int64 {
	v, n := binary.Varint(p.b)
	if n <= 0 {
		p.fail(what)
		return 0
	}
	p.b = p.b[n:]
	return v
}

func (p *payload) str(what string) string {
	n := p.uvarint(what, maxSnapStr)
	if p.err != nil {
		return ""
	}
	if uint64(len(p.b)) < n {
		p.fail(what)
		return ""
	}
	s := string(p.b[:n])
	p.b = p.b[n:]
	return s
}

// restore accumulates a decoded snapshot into a fresh state.
type restore struct {
	m             *Memory
	st            *state
	offset        uint64
	header, ended bool
	users, items  uint64
}

// ReadSnapshot replaces the content of the store with the snapshot read
// from r and returns the offset recorded in it. The snapshot is decoded and
// verified completely before anything is replaced: on error the store is
// unchanged. A truncated, altered or undecodable snapshot returns an error
// wrapping [ErrCorruptSnapshot]; other read errors are returned as they are.
//
// Functions registered with OnItemChange are called for every restored item.
// Writes made concurrently with ReadSnapshot may be lost; call it before
// serving or consuming events.
func (m *Memory) ReadSnapshot(r io.Reader) (uint64, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 1<<16)
	}
	readErr := func(err error) error {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return corrupt("truncated")
		}
		return fmt.Errorf("read snapshot: %w", err)
	}
	var magic [len(snapMagic)]byte
	if _, err := io.ReadFull(br, magic[:]); err != nil {
		return 0, readErr(err)
	}
	if string(magic[:]) != snapMagic {
		return 0, corrupt("bad magic or unsupported version")
	}
	rs := &restore{m: m, st: m.newState()}
	crc := crc32.Checksum(magic[:], castagnoli)
	var buf []byte
	for !rs.ended {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return 0, readErr(err)
		}
		if n == 0 || n > maxFrame {
			return 0, corrupt("frame length %d", n)
		}
		if uint64(cap(buf)) < n+4 {
			buf = make([]byte, n+4)
		}
		buf = buf[:n+4]
		if _, err := io.ReadFull(br, buf); err != nil {
			return 0, readErr(err)
		}
		crc = crc32.Update(crc, castagnoli, buf[:n])
		if binary.LittleEndian.Uint32(buf[n:]) != crc {
			return 0, corrupt("checksum mismatch")
		}
		if err := rs.frame(buf[:n]); err != nil {
			return 0, err
		}
	}
	m.notifyMu.Lock()
	defer m.notifyMu.Unlock()
	m.st.Store(rs.st)
	if len(m.callbacks) > 0 {
		for i := range rs.st.items {
			for _, it := range rs.st.items[i].m {
				for _, fn := range m.callbacks {
					fn(it)
				}
			}
		}
	}
	m.cfg.Logger.LogAttrs(context.Background(), slog.LevelInfo, "feature snapshot restored",
		slog.Uint64("offset", rs.offset), slog.Uint64("users", rs.users), slog.Uint64("items", rs.items))
	return rs.offset, nil
}

// frame decodes the records of one verified frame into rs.st.
func (rs *restore) frame(b []byte) error {
	p := &payload{b: b}
	for len(p.b) > 0 && p.err == nil {
		if rs.ended {
			return corrupt("data after end record")
		}
		tag := p.byte1("record tag")
		if !rs.header && tag != recHeader {
			return corrupt("missing header")
		}
		switch tag {
		case recHeader:
			if rs.header {
				return corrupt("duplicate header")
			}
			rs.header = true
			rs.offset = p.u64("offset")
		case recItem:
			if err := rs.item(p); err != nil {
				return err
			}
		case recUser:
			if err := rs.user(p); err != nil {
				return err
			}
		case recEnd:
			users, items := p.uvarint("user count", math.MaxInt64), p.uvarint("item count", math.MaxInt64)
			if p.err == nil && (users != rs.users || items != rs.items) {
				return corrupt("record counts %d users, %d items; end record says %d, %d", rs.users, rs.items, users, items)
			}
			rs.ended = true
		default:
			return corrupt("unknown record tag %d", tag)
		}
	}
	return p.err
}

func (rs *restore) item(p *payload) error {
	it := event.Item{ID: p.str("item id"), Category: p.str("item category")}
	n := p.uvarint("tag count", event.MaxTags)
	for range n {
		it.Tags = append(it.Tags, p.str("item tag"))
	}
	it.Available = p.byte1("item available") == 1
	if p.err != nil {
		return p.err
	}
	if err := it.Validate(); err != nil {
		return corrupt("invalid item: %v", err)
	}
	rs.st.putItem(it)
	rs.items++
	return nil
}

func (rs *restore) user(p *payload) error {
	u := event.User{ID: p.str("user id")}
	flags := p.byte1("user flags")
	if flags&^(userProfile|userActivity) != 0 {
		p.fail("user flags")
	}
	if flags&userProfile != 0 {
		u.AgeBucket, u.Segment = p.str("age bucket"), p.str("segment")
		u.Region, u.Device = p.str("region"), p.str("device")
		n := p.uvarint("attribute count", event.MaxFreeAttrs)
		if n > 0 {
			u.Attrs = make(map[string]string, n)
		}
		for range n {
			k := p.str("attribute key")
			u.Attrs[k] = p.str("attribute value")
		}
		sec, nsec := p.varint("updated_at"), p.uvarint("updated_at", 999_999_999)
		u.UpdatedAt = time.Unix(sec, int64(nsec))
	}
	var lists [3][]string
	if flags&userActivity != 0 {
		for i := range lists {
			n := p.uvarint("activity length", maxListLen)
			for range n {
				lists[i] = append(lists[i], p.str("activity id"))
			}
		}
	}
	if p.err != nil {
		return p.err
	}
	if err := u.Validate(); err != nil {
		return corrupt("invalid user: %v", err)
	}
	st := rs.st
	if flags&userProfile != 0 {
		st.putUser(u)
	}
	if flags&userActivity != 0 {
		sh := st.userShard(u.ID)
		r := sh.m[u.ID]
		if r == nil {
			r = &userRec{}
			sh.m[u.ID] = r
		}
		rs.m.restoreActivity(st, r, lists)
	}
	rs.users++
	return nil
}

// restoreActivity sets r's activity lists to lists (most recent first),
// truncated to this store's Config. Only the restoring goroutine sees r.
func (m *Memory) restoreActivity(st *state, r *userRec, lists [3][]string) {
	r.act = make([]uint32, m.actLen())
	for i, l := range m.actLists(r.act) {
		// Push oldest first so that the most recent ends up in front and
		// duplicates collapse.
		src := lists[i]
		if len(src) > len(l) {
			src = src[:len(l)]
		}
		for j := len(src) - 1; j >= 0; j-- {
			if src[j] == "" {
				continue
			}
			if sym, ok := st.syms.intern(src[j]); ok {
				r.act[i] = pushFront(l, r.act[i], sym)
			}
		}
	}
}

// SaveFile writes a snapshot with offset to path atomically: it writes a
// temporary file in the same directory, syncs it, renames it over path and
// syncs the directory, so path holds either the old or the new snapshot.
// The file is readable by its owner only.
func (m *Memory) SaveFile(path string, offset uint64) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	tmp, closed := f.Name(), false
	defer func() {
		if err != nil {
			if !closed {
				_ = f.Close() // the write error is the one to report
			}
			_ = os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := m.WriteSnapshot(bw, offset); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	closed = true
	if err := f.Close(); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	if d, derr := os.Open(dir); derr == nil {
		derr = d.Sync()
		if cerr := d.Close(); derr == nil {
			derr = cerr
		}
		if derr != nil {
			return fmt.Errorf("save snapshot: sync directory: %w", derr)
		}
	}
	return nil
}

// LoadFile replaces the content of the store with the snapshot in the file
// at path, as ReadSnapshot does, and returns its offset. A missing file
// returns an error wrapping fs.ErrNotExist.
func (m *Memory) LoadFile(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("load snapshot: %w", err)
	}
	defer f.Close()
	off, err := m.ReadSnapshot(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("load snapshot: %w", err)
	}
	return off, nil
}
