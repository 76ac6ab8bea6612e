package ingest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/sightline/sightline/internal/event"
)

// On disk a segment is a sequence of frames:
//
//	length(4, LE) crc32c(4, LE) payload(length)
//	payload = offset(8, LE) append_unix_nano(8, LE) AppendRecord encoding
//
// The CRC covers the payload. Offsets inside a segment are contiguous from
// the base offset in the file name.
const (
	frameHeader   = 8
	payloadHeader = 16
	maxFrame      = payloadHeader + MaxRecordBytes
	// indexInterval is the distance in bytes between sparse index entries.
	indexInterval = 4096
	segmentSuffix = ".log"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// appendFrame appends the frame of ev at offset off to dst.
func appendFrame(dst []byte, off uint64, appendNano int64, ev *event.Event) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, frameHeader+payloadHeader)...)
	binary.LittleEndian.PutUint64(dst[start+frameHeader:], off)
	binary.LittleEndian.PutUint64(dst[start+frameHeader+8:], uint64(appendNano))
	dst = AppendRecord(dst, ev)
	payload := dst[start+frameHeader:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(payload, crcTable))
	return dst
}

// segment is one file of the log. The fields below f are guarded by Log.mu;
// the writer goroutine is their only mutator.
type segment struct {
	base uint64
	path string
	f    *os.File

	next     uint64 // one past the last valid offset
	size     int64  // bytes of valid frames
	lastNano int64  // append time of the newest record, 0 if empty
	index    []indexEntry
	// lastIndexed is the position of the last index entry (writer-owned).
	lastIndexed int64
}

// indexEntry maps an offset to the position of its frame.
type indexEntry struct {
	off uint64
	pos int64
}

func segmentName(base uint64) string {
	return fmt.Sprintf("%020d%s", base, segmentSuffix)
}

// listSegments returns the base offsets of the segment files in dir, sorted.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var bases []uint64
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, segmentSuffix) || len(name) != 20+len(segmentSuffix) {
			continue
		}
		b, err := strconv.ParseUint(strings.TrimSuffix(name, segmentSuffix), 10, 64)
		if err != nil {
			continue
		}
		bases = append(bases, b)
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	return bases, nil
}

// addIndex records pos as the frame of off if it is far enough from the
// previous entry.
func (s *segment) addIndex(off uint64, pos int64) {
	if len(s.index) == 0 || pos-s.lastIndexed >= indexInterval {
		s.index = append(s.index, indexEntry{off: off, pos: pos})
		s.lastIndexed = pos
	}
}

// seek returns the position of the last indexed frame at or before off.
func (s *segment) seek(off uint64) int64 {
	i := sort.Search(len(s.index), func(i int) bool { return s.index[i].off > off })
	if i == 0 {
		return 0
	}
	return s.index[i-1].pos
}

// scanProblem describes the first invalid frame found by scan.
type scanProblem struct {
	pos    int64
	reason string
	// torn is true for a frame cut short by the end of the file (or a zero
	// length, as a filesystem leaves after a crash mid-write), false for a
	// complete frame that fails its checks.
	torn bool
}

// scan reads the segment from the start, validating every frame, and sets
// next, size, lastNano and index. It calls fn with the offset and event
// encoding of every valid record. It stops at the first invalid frame and
// reports it; I/O errors are returned as errors.
func (s *segment) scan(fn func(off uint64, rec []byte)) (*scanProblem, error) {
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(s.f, 1<<20)
	var (
		pos  int64
		hdr  [frameHeader]byte
		buf  []byte
		want = s.base
	)
	s.next, s.size, s.lastNano, s.index = s.base, 0, 0, nil
	for {
		n, err := io.ReadFull(r, hdr[:])
		if err == io.EOF {
			return nil, nil
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return &scanProblem{pos: pos, reason: fmt.Sprintf("partial frame header (%d bytes)", n), torn: true}, nil
		}
		if err != nil {
			return nil, err
		}
		length := binary.LittleEndian.Uint32(hdr[:])
		sum := binary.LittleEndian.Uint32(hdr[4:])
		if length == 0 {
			return &scanProblem{pos: pos, reason: "zero frame length", torn: true}, nil
		}
		if length < payloadHeader || length > maxFrame {
			return &scanProblem{pos: pos, reason: fmt.Sprintf("frame length %d out of range", length)}, nil
		}
		if cap(buf) < int(length) {
			buf = make([]byte, length)
		}
		buf = buf[:length]
		if n, err := io.ReadFull(r, buf); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
				return &scanProblem{pos: pos, reason: fmt.Sprintf("partial frame (%d of %d bytes)", n, length), torn: true}, nil
			}
			return nil, err
		}
		if crc32.Checksum(buf, crcTable) != sum {
			return &scanProblem{pos: pos, reason: "crc mismatch"}, nil
		}
		off := binary.LittleEndian.Uint64(buf)
		if off != want {
			return &scanProblem{pos: pos, reason: fmt.Sprintf("offset %d, want %d", off, want)}, nil
		}
		rec := buf[payloadHeader:]
		if _, err := recordID(rec); err != nil {
			return &scanProblem{pos: pos, reason: err.Error()}, nil
		}
		if fn != nil {
			fn(off, rec)
		}
		s.addIndex(off, pos)
		s.lastNano = int64(binary.LittleEndian.Uint64(buf[8:]))
		pos += frameHeader + int64(length)
		want++
		s.next, s.size = want, pos
	}
}

// createSegment creates an empty segment file with base offset base.
func createSegment(dir string, base uint64) (*segment, error) {
	path := filepath.Join(dir, segmentName(base))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	return &segment{base: base, path: path, f: f, next: base}, nil
}

// syncDir fsyncs a directory so that created, renamed or removed entries
// are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
