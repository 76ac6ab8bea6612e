package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// SnapshotMeta describes a snapshot beyond the model state.
type SnapshotMeta struct {
	// Offset is the event-log offset whose events the state includes; a
	// restored consumer resumes after it.
	Offset uint64 `json:"offset"`
	// Created is when the snapshot was taken. WriteSnapshot sets it from
	// Config.Now when it is zero.
	Created time.Time `json:"created"`
	// Updates is the model's update count. WriteSnapshot sets it from the
	// model, ignoring the value passed in.
	Updates uint64 `json:"updates"`
	// Extra carries other components' state that must travel with the model,
	// e.g. training-time feature baselines, by component name.
	Extra map[string]json.RawMessage `json:"extra,omitempty"`
}

// Snapshot format, little-endian:
//
//	magic    8 bytes  "SLFTRL\r\n"
//	version  uint32   snapshotVersion
//	hdrLen   uint32   length of the JSON header
//	header   hdrLen bytes of JSON (snapshotHeader)
//	count    uint64   number of entries
//	entries  count × (index uint32, z float64 bits, n float64 bits), by
//	         strictly increasing index, only coordinates with z or n non-zero
//	checksum 32 bytes SHA-256 of everything before it
const (
	snapshotMagic   = "SLFTRL\r\n"
	snapshotVersion = 1
	entrySize       = 4 + 8 + 8
	maxHeaderLen    = 64 << 20
)

type snapshotHeader struct {
	Name  string  `json:"name"`
	Bits  int     `json:"bits"`
	Alpha float64 `json:"alpha"`
	Beta  float64 `json:"beta"`
	L1    float64 `json:"l1"`
	L2    float64 `json:"l2"`
	// VersionEvery travels with the state so that every node loading a
	// snapshot names it alike.
	VersionEvery uint64       `json:"version_every"`
	Generation   uint64       `json:"generation"`
	Meta         SnapshotMeta `json:"meta"`
	// The scoring options travel with the state they were learned with
	// (absent in snapshots of models without them).
	Positions     bool    `json:"positions,omitempty"`
	Optimism      float64 `json:"optimism,omitempty"`
	OptimismPrior float64 `json:"optimism_prior,omitempty"`
}

// WriteSnapshot writes the model state and meta to w in a checksummed
// binary format that ReadSnapshot reads back.
//
// It holds the writer mutex while it encodes the state into memory (Learn
// waits; Score does not), then writes to w without it. The state is
// consistent: it includes exactly meta.Updates updates.
func (m *Model) WriteSnapshot(w io.Writer, meta SnapshotMeta) error {
	var buf bytes.Buffer
	if err := m.encode(&buf, meta); err != nil {
		return err
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write model snapshot: %w", err)
	}
	return nil
}

// WritePublished is WriteSnapshot for a model that keeps learning after
// it is published: once the snapshot is written, the model takes the
// generation a node restoring the snapshot has (see [VersionOf]), so every
// publication is a version of its own and the next one differs from it
// even when few updates came between. It returns that version.
func (m *Model) WritePublished(w io.Writer, meta SnapshotMeta) (string, error) {
	var buf bytes.Buffer
	if err := m.encode(&buf, meta); err != nil {
		return "", err
	}
	m.mu.Lock()
	m.gen++
	m.setVersion()
	m.mu.Unlock()
	if _, err := w.Write(buf.Bytes()); err != nil {
		return "", fmt.Errorf("write model snapshot: %w", err)
	}
	return VersionOf(buf.Bytes())
}

// optimismPrior is the prior a snapshot header records: none without
// optimism, so that the header of a plain model stays as it was.
func optimismPrior(cfg Config) float64 {
	if cfg.Optimism == 0 {
		return 0
	}
	return cfg.OptimismPrior
}

func (m *Model) encode(buf *bytes.Buffer, meta SnapshotMeta) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if meta.Created.IsZero() {
		meta.Created = m.cfg.Now()
	}
	meta.Updates = m.updates.Load()
	hdr, err := json.Marshal(snapshotHeader{
		Name: m.cfg.Name, Bits: m.cfg.Bits,
		Positions: m.cfg.Positions, Optimism: m.cfg.Optimism, OptimismPrior: optimismPrior(m.cfg),
		Alpha: m.alpha, Beta: m.beta, L1: m.l1, L2: m.l2,
		VersionEvery: m.cfg.VersionEvery, Generation: m.gen, Meta: meta,
	})
	if err != nil {
		return fmt.Errorf("encode model snapshot header: %w", err)
	}
	if len(hdr) > maxHeaderLen {
		return fmt.Errorf("encode model snapshot header: %d bytes, max %d", len(hdr), maxHeaderLen)
	}
	var count uint64
	for i := range m.coords {
		if m.coords[i].z.Load() != 0 || m.coords[i].n.Load() != 0 {
			count++
		}
	}
	buf.Grow(len(snapshotMagic) + 16 + len(hdr) + int(count)*entrySize + sha256.Size)
	buf.WriteString(snapshotMagic)
	var b [entrySize]byte
	binary.LittleEndian.PutUint32(b[0:], snapshotVersion)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(hdr)))
	buf.Write(b[:8])
	buf.Write(hdr)
	binary.LittleEndian.PutUint64(b[0:], count)
	buf.Write(b[:8])
	for i := range m.coords {
		z, n := m.coords[i].z.Load(), m.coords[i].n.Load()
		if z == 0 && n == 0 {
			continue
		}
		binary.LittleEndian.PutUint32(b[0:], uint32(i))
		binary.LittleEndian.PutUint64(b[4:], z)
		binary.LittleEndian.PutUint64(b[12:], n)
		buf.Write(b[:])
	}
	sum := sha256.Sum256(buf.Bytes())
	buf.Write(sum[:])
	return nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorruptSnapshot}, args...)...)
}

// ReadSnapshot reads a snapshot written by WriteSnapshot and returns the
// model it holds, built with cfg, and its meta.
//
// Fields of cfg that shape the state come from the snapshot when zero: Bits
// (a non-zero Bits must equal the snapshot's, or the error wraps
// ErrIncompatibleSnapshot), Alpha, Beta, L1, L2, Name and VersionEvery. A non-zero
// learning-rate or regularization field overrides the snapshot's, to go on
// learning with other hyperparameters. The restored model's snapshot
// generation is one more than the snapshot's, and its Eval window is empty.
//
// A truncated or altered snapshot, a bad magic number or an unknown format
// version returns an error wrapping ErrCorruptSnapshot. ReadSnapshot reads r
// to its end.
func ReadSnapshot(r io.Reader, cfg Config) (*Model, SnapshotMeta, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, SnapshotMeta{}, fmt.Errorf("read model snapshot: %w", err)
	}
	if len(data) < len(snapshotMagic) || string(data[:len(snapshotMagic)]) != snapshotMagic {
		return nil, SnapshotMeta{}, corrupt("bad magic number")
	}
	const fixed = len(snapshotMagic) + 8 + 8 + sha256.Size
	if len(data) < fixed {
		return nil, SnapshotMeta{}, corrupt("truncated: %d bytes, want at least %d", len(data), fixed)
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, SnapshotMeta{}, corrupt("checksum mismatch (truncated or altered, %d bytes)", len(data))
	}
	rest := body[len(snapshotMagic):]
	if v := binary.LittleEndian.Uint32(rest); v != snapshotVersion {
		return nil, SnapshotMeta{}, corrupt("format version %d, want %d", v, snapshotVersion)
	}
	hdrLen := uint64(binary.LittleEndian.Uint32(rest[4:]))
	rest = rest[8:]
	if hdrLen > uint64(len(rest)-8) {
		return nil, SnapshotMeta{}, corrupt("header length %d exceeds the %d bytes left", hdrLen, len(rest)-8)
	}
	var hdr snapshotHeader
	if err := json.Unmarshal(rest[:hdrLen], &hdr); err != nil {
		return nil, SnapshotMeta{}, corrupt("header: %v", err)
	}
	rest = rest[hdrLen:]
	count := binary.LittleEndian.Uint64(rest)
	rest = rest[8:]
	if count > uint64(len(rest))/entrySize || uint64(len(rest)) != count*entrySize {
		return nil, SnapshotMeta{}, corrupt("%d entries do not fit in %d bytes", count, len(rest))
	}

	if hdr.Bits < MinBits || hdr.Bits > MaxBits {
		return nil, SnapshotMeta{}, corrupt("header: bits %d out of range %d..%d", hdr.Bits, MinBits, MaxBits)
	}
	hcfg := Config{Name: hdr.Name, Bits: hdr.Bits, Alpha: hdr.Alpha, Beta: hdr.Beta, L1: hdr.L1, L2: hdr.L2, VersionEvery: hdr.VersionEvery}
	if hcfg.L1 == 0 {
		hcfg.L1 = -1 // explicit "none", not the default
	}
	if hcfg.L2 == 0 {
		hcfg.L2 = -1
	}
	if _, err := hcfg.withDefaults(); err != nil {
		return nil, SnapshotMeta{}, corrupt("header: %v", err)
	}
	if cfg.Bits != 0 && cfg.Bits != hdr.Bits {
		return nil, SnapshotMeta{}, fmt.Errorf("%w: snapshot has %d bits, config wants %d", ErrIncompatibleSnapshot, hdr.Bits, cfg.Bits)
	}
	cfg.Bits = hdr.Bits
	if cfg.Name == "" {
		cfg.Name = hcfg.Name
	}
	if cfg.Alpha == 0 {
		cfg.Alpha = hcfg.Alpha
	}
	if cfg.Beta == 0 {
		cfg.Beta = hcfg.Beta
	}
	if cfg.L1 == 0 {
		cfg.L1 = hcfg.L1
	}
	if cfg.L2 == 0 {
		cfg.L2 = hcfg.L2
	}
	if cfg.VersionEvery == 0 {
		cfg.VersionEvery = hcfg.VersionEvery
	}
	if !cfg.Positions {
		cfg.Positions = hdr.Positions
	}
	if cfg.Optimism == 0 {
		cfg.Optimism = hdr.Optimism
	}
	if cfg.OptimismPrior == 0 {
		cfg.OptimismPrior = hdr.OptimismPrior
	}
	m, err := New(cfg)
	if err != nil {
		return nil, SnapshotMeta{}, err
	}

	size := uint64(len(m.coords))
	prev := int64(-1)
	for k := uint64(0); k < count; k++ {
		e := rest[k*entrySize:]
		i := binary.LittleEndian.Uint32(e)
		z := math.Float64frombits(binary.LittleEndian.Uint64(e[4:]))
		n := math.Float64frombits(binary.LittleEndian.Uint64(e[12:]))
		switch {
		case int64(i) <= prev:
			return nil, SnapshotMeta{}, corrupt("entry %d: index %d not after %d", k, i, prev)
		case uint64(i) >= size:
			return nil, SnapshotMeta{}, corrupt("entry %d: index %d out of range for %d bits", k, i, hdr.Bits)
		case math.IsNaN(z) || math.IsInf(z, 0) || math.IsNaN(n) || math.IsInf(n, 0) || n < 0:
			return nil, SnapshotMeta{}, corrupt("entry %d: invalid state z=%v n=%v", k, z, n)
		}
		prev = int64(i)
		m.setState(uint64(i), z, n)
	}
	if m.cfg.Positions {
		m.slots.restored(m)
	}
	m.gen = hdr.Generation + 1
	m.updates.Store(hdr.Meta.Updates)
	m.setVersion()
	return m, hdr.Meta, nil
}

// SaveFile writes a snapshot to path atomically: it writes a temporary file
// in the same directory, syncs it, renames it over path and syncs the
// directory, so that path holds either the old or the new snapshot, whole.
func (m *Model) SaveFile(path string, meta SnapshotMeta) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("save model snapshot: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := m.WriteSnapshot(f, meta); err != nil {
		return fmt.Errorf("save model snapshot: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("save model snapshot: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save model snapshot: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("save model snapshot: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("save model snapshot: sync dir: %w", err)
	}
	if err := d.Sync(); err != nil {
		return errors.Join(fmt.Errorf("save model snapshot: sync dir: %w", err), d.Close())
	}
	return d.Close()
}

// LoadFile reads the snapshot at path, as ReadSnapshot does.
func LoadFile(path string, cfg Config) (*Model, SnapshotMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, SnapshotMeta{}, fmt.Errorf("load model snapshot: %w", err)
	}
	defer f.Close()
	m, meta, err := ReadSnapshot(f, cfg)
	if err != nil {
		return nil, SnapshotMeta{}, fmt.Errorf("load model snapshot %s: %w", filepath.Base(path), err)
	}
	return m, meta, nil
}

// VersionOf returns the Version of the model that ReadSnapshot would
// restore from data, reading only the snapshot's header (no checksum check,
// no state): a trainer names the version it publishes as the nodes that
// load it will serve it.
func VersionOf(data []byte) (string, error) {
	const head = len(snapshotMagic) + 8
	if len(data) < head || string(data[:len(snapshotMagic)]) != snapshotMagic {
		return "", corrupt("bad magic number")
	}
	rest := data[len(snapshotMagic):]
	if v := binary.LittleEndian.Uint32(rest); v != snapshotVersion {
		return "", corrupt("format version %d, want %d", v, snapshotVersion)
	}
	hdrLen := uint64(binary.LittleEndian.Uint32(rest[4:]))
	rest = rest[8:]
	if hdrLen > uint64(len(rest)) {
		return "", corrupt("header length %d exceeds the %d bytes left", hdrLen, len(rest))
	}
	var hdr snapshotHeader
	if err := json.Unmarshal(rest[:hdrLen], &hdr); err != nil {
		return "", corrupt("header: %v", err)
	}
	if hdr.VersionEvery == 0 {
		hdr.VersionEvery = DefaultVersionEvery
	}
	name := hdr.Name
	if name == "" {
		name = DefaultName
	}
	return name + "-v" + strconv.FormatUint(hdr.Generation+1, 10) + "." + strconv.FormatUint(hdr.Meta.Updates/hdr.VersionEvery, 10), nil
}
