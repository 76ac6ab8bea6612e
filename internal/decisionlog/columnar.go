package decisionlog

import (
	"encoding/binary"
	"math"
	"strings"

	"github.com/parquet-go/parquet-go/format"
)

// The decisions files are written by a columnar encoder of their own
// rather than by parquet-go's row writer: each queued record is decoded
// once and its fields appended straight to typed column buffers, which are
// cut into data pages (version 2: RLE/bit-packed levels; PLAIN numbers and
// booleans, DELTA_LENGTH_BYTE_ARRAY strings as parquet-go writes them, and
// RLE_DICTIONARY for the columns tagged dict), compressed with fastSnappy
// and kept in memory until the row group is full, then written out column
// by column, each dictionary page first. The footer (schema, row groups,
// statistics, page index) is parquet-go's format structs in its Thrift
// compact encoding, the schema the one parquet-go writes for Decision.
// Rows of parquet-go's generic writer cost the writer about twice the CPU
// per decision (copying each record into a row, then each row's values
// into parquet-go's column buffers).

// colType is how a column's values are buffered and encoded.
type colType uint8

const (
	colBytes  colType = iota // BYTE_ARRAY, DELTA_LENGTH_BYTE_ARRAY
	colDict                  // BYTE_ARRAY, RLE_DICTIONARY with a PLAIN dictionary page
	colInt32                 // INT32, PLAIN
	colInt64                 // INT64, PLAIN
	colDouble                // DOUBLE, PLAIN
	colBool                  // BOOLEAN, PLAIN (bit-packed)
)

// physical is the Parquet type of the column's values.
func (t colType) physical() format.Type {
	switch t {
	case colInt32:
		return format.Int32
	case colInt64:
		return format.Int64
	case colDouble:
		return format.Double
	case colBool:
		return format.Boolean
	default:
		return format.ByteArray
	}
}

// encoding is the encoding of the column's data pages.
func (t colType) encoding() format.Encoding {
	switch t {
	case colBytes:
		return format.DeltaLengthByteArray
	case colDict:
		return format.RLEDictionary
	default:
		return format.Plain
	}
}

// columnSpec describes one leaf column of a file.
type columnSpec struct {
	path []string
	typ  colType
	// optional columns have a definition level of 1 per row; list columns
	// (list != 0) take their levels from their list's levels.
	optional bool
	list     int // 1 + the index of the list the column belongs to, 0 for none
	// stats: the column's pages and chunks carry min/max statistics.
	stats bool
}

// defaultPageSize is the size of the values past which a column's page is
// cut (at the end of a row), as parquet-go's default page buffer.
const defaultPageSize = 256 << 10

// pageCheck is how often, in rows, endRow checks the pages' sizes: a page
// ends up to pageCheck-1 rows past pageSize.
const pageCheck = 8

// maxPageSize bounds a page: its sizes are int32 in the page header.
const maxPageSize = 1 << 30

// columnIndexTruncate is the length past which byte array bounds are
// truncated in the column index, as parquet-go does.
const columnIndexTruncate = 16

// levels are the repetition and definition levels of a list's columns in
// the page being filled: one entry per element, one for an empty list.
type levels struct {
	rep, def []uint8
	empty    int // entries of empty lists (nulls)
	// Encoded levels of the page being flushed, shared by the list's
	// columns.
	repEnc, defEnc []byte
}

// ones is a run of 1 levels, and zeroOnes a 0 then 1s, appended by the
// slice.
var ones, zeroOnes = func() (a, b [64]uint8) {
	for i := range a {
		a[i], b[i] = 1, 1
	}
	b[0] = 0
	return a, b
}()

// add appends the levels of a list of n elements.
func (l *levels) add(n int) {
	if n == 0 {
		l.rep = append(l.rep, 0)
		l.def = append(l.def, 0)
		l.empty++
		return
	}
	if n <= len(ones) {
		l.rep = append(l.rep, zeroOnes[:n]...)
		l.def = append(l.def, ones[:n]...)
		return
	}
	l.rep = append(l.rep, zeroOnes[:]...)
	l.def = append(l.def, ones[:]...)
	for i := len(ones); i < n; i++ {
		l.rep = append(l.rep, 1)
		l.def = append(l.def, 1)
	}
}

// dictionary maps a dict column's values of the row group being filled to
// their indexes. Its strings are its own copies.
type dictionary struct {
	ids  map[string]int32
	vals []string
}

// smallDict is the size up to which a dictionary is searched linearly
// rather than through its map: the log's dictionaries are mostly that
// small, and comparing a few short strings is cheaper than hashing one.
const smallDict = 8

// id returns the index of s, adding a copy of it when new.
func (d *dictionary) id(s string) int32 {
	if len(d.vals) <= smallDict {
		for i, v := range d.vals {
			if len(v) == len(s) && v == s {
				return int32(i)
			}
		}
		if len(d.vals) < smallDict {
			return d.add(s)
		}
	}
	if id, ok := d.ids[s]; ok {
		return id
	}
	return d.add(s)
}

// add adds a copy of s, a new value, and returns its index.
func (d *dictionary) add(s string) int32 {
	if d.ids == nil {
		d.ids = make(map[string]int32)
	}
	s = strings.Clone(s)
	id := int32(len(d.vals))
	d.vals = append(d.vals, s)
	d.ids[s] = id
	return id
}

// reset empties d for the next row group.
func (d *dictionary) reset() {
	clear(d.ids)
	clear(d.vals)
	d.vals = d.vals[:0]
}

// column is one leaf column of an open file: the values of the page being
// filled, and the pages of the row group's column chunk.
type column struct {
	columnSpec
	lv *levels // a list column's levels, nil otherwise

	// The page being filled.
	vals []byte  // PLAIN values (colInt32, colInt64, colDouble), the bytes of colBytes
	lens []int32 // colBytes: the values' lengths
	b    []byte  // colBool: one byte, 0 or 1, per value
	idx  []int32 // colDict: dictionary indexes
	def  []uint8 // optional columns: the definition level of each row
	dict dictionary

	// The column chunk of the row group being filled: the data pages,
	// headers included, the dictionary page apart.
	chunk        []byte
	pages        []pageLoc
	bounds       []pageBounds
	numValues    int64
	nulls        int64
	uncompressed int64 // data pages, headers included
	hasLevels    bool  // a page had levels (the RLE encoding)
}

// size is how many bytes the page being filled holds, roughly as encoded.
func (c *column) size() int {
	return len(c.vals) + len(c.lens) + len(c.b)/8 + len(c.idx)/2
}

// Appenders: the page takes a copy of every value.

func (c *column) appendString(s string) {
	c.lens = append(c.lens, int32(len(s)))
	c.vals = append(c.vals, s...)
}

func (c *column) appendDict(s string) {
	c.idx = append(c.idx, c.dict.id(s))
}

// appendOptionalDict appends a value of an optional dict column, null when
// !ok.
func (c *column) appendOptionalDict(s string, ok bool) {
	if !ok {
		c.def = append(c.def, 0)
		return
	}
	c.def = append(c.def, 1)
	c.idx = append(c.idx, c.dict.id(s))
}

func (c *column) appendInt32(v int32) {
	c.vals = binary.LittleEndian.AppendUint32(c.vals, uint32(v))
}

func (c *column) appendInt64(v int64) {
	c.vals = binary.LittleEndian.AppendUint64(c.vals, uint64(v))
}

func (c *column) appendDouble(v float64) {
	c.vals = binary.LittleEndian.AppendUint64(c.vals, math.Float64bits(v))
}

func (c *column) appendBool(v bool) {
	var b byte
	if v {
		b = 1
	}
	c.b = append(c.b, b)
}
