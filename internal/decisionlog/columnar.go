package decisionlog

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/bits"
	"slices"
	"strings"

	"github.com/klauspost/compress/s2"
	"github.com/parquet-go/parquet-go/encoding/delta"
	"github.com/parquet-go/parquet-go/encoding/rle"
	"github.com/parquet-go/parquet-go/encoding/thrift"
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

// pageLoc is where a data page is, relative to its column chunk's data
// pages, for the offset index.
type pageLoc struct {
	offset   int64 // from the first data page
	size     int32 // header and body
	firstRow int64 // in the row group
}

// pageBounds are a data page's statistics, for the column index.
type pageBounds struct {
	min, max []byte
	nulls    int64
	allNull  bool
	bounded  bool
}

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

// pageGroup is columns whose pages are cut at the same rows: a column
// alone, or the columns of a list, which share its levels.
type pageGroup struct {
	cols []*column
	lv   *levels
	// firstRow is the first row, in the row group, of the page being
	// filled.
	firstRow int
}

// columnarFile writes a Parquet file of the columns of specs: the caller
// appends a row's values to every column (cols), then calls endRow.
// Row groups are written as they fill; close writes the last one and the
// footer. A columnarFile is not safe for concurrent use.
type columnarFile struct {
	out      io.Writer
	tmpl     *fileTemplate
	cols     []*column
	groups   []*pageGroup
	lists    []*levels
	pageSize int
	groupMax int // rows per row group

	offset    int64 // bytes written
	rows      int   // rows of the row group being filled
	total     int64 // rows in written row groups
	rowGroups []format.RowGroup
	// colIndex and offIndex of each written row group, by column.
	colIndex [][]format.ColumnIndex
	offIndex [][]format.OffsetIndex

	// Scratch buffers.
	hdr    bytes.Buffer
	enc    *thrift.Encoder
	defBuf []byte // an optional column's encoded definition levels
	idxBuf []byte // encoded dictionary indexes
	valBuf []byte // encoded values (byte arrays, dict, bool)
	deltaE delta.BinaryPackedEncoding
	comp   []byte // compressed values
	codec  fastSnappy
}

// fileTemplate is what the files of one kind share: the columns and the
// footer's schema, column orders and creator.
type fileTemplate struct {
	specs        []columnSpec
	numLists     int
	schema       []format.SchemaElement
	columnOrders []format.ColumnOrder
	createdBy    string
}

// newColumnarFile returns a file of tmpl's columns written to out, in row
// groups of rowGroup rows, cutting pages at pageSize bytes (0: default).
func newColumnarFile(out io.Writer, tmpl *fileTemplate, rowGroup, pageSize int) *columnarFile {
	if pageSize <= 0 {
		pageSize = defaultPageSize
	}
	f := &columnarFile{out: out, tmpl: tmpl, pageSize: pageSize, groupMax: rowGroup}
	f.enc = thrift.NewEncoder(new(thrift.CompactProtocol).NewWriter(&f.hdr))
	f.lists = make([]*levels, tmpl.numLists)
	listGroups := make([]*pageGroup, tmpl.numLists)
	for i := range f.lists {
		f.lists[i] = &levels{}
	}
	for _, s := range tmpl.specs {
		c := &column{columnSpec: s}
		f.cols = append(f.cols, c)
		if s.list == 0 {
			f.groups = append(f.groups, &pageGroup{cols: []*column{c}})
			continue
		}
		c.lv = f.lists[s.list-1]
		g := listGroups[s.list-1]
		if g == nil {
			g = &pageGroup{lv: c.lv}
			listGroups[s.list-1] = g
			f.groups = append(f.groups, g)
		}
		g.cols = append(g.cols, c)
	}
	return f
}

// reset readies f, closed or abandoned, to write another file to out,
// keeping its buffers.
func (f *columnarFile) reset(out io.Writer) {
	f.out, f.offset, f.rows, f.total = out, 0, 0, 0
	clear(f.rowGroups)
	f.rowGroups, f.colIndex, f.offIndex = f.rowGroups[:0], f.colIndex[:0], f.offIndex[:0]
	for _, c := range f.cols {
		c.vals, c.lens, c.b, c.idx, c.def = c.vals[:0], c.lens[:0], c.b[:0], c.idx[:0], c.def[:0]
		c.chunk, c.pages, c.bounds = c.chunk[:0], c.pages[:0], c.bounds[:0]
		c.numValues, c.nulls, c.uncompressed, c.hasLevels = 0, 0, 0, false
		c.dict.reset()
	}
	for _, g := range f.groups {
		g.firstRow = 0
	}
	for _, lv := range f.lists {
		lv.rep, lv.def, lv.empty = lv.rep[:0], lv.def[:0], 0
	}
}

// endRow ends the row whose values were appended: every pageCheck rows
// it cuts the pages that are full, and it writes the row group when it is.
func (f *columnarFile) endRow() error {
	f.rows++
	if f.rows >= f.groupMax {
		return f.writeRowGroup()
	}
	if f.rows%pageCheck != 0 {
		return nil
	}
	for _, g := range f.groups {
		for _, c := range g.cols {
			if c.size() >= f.pageSize {
				if err := f.flushGroup(g); err != nil {
					return err
				}
				break
			}
		}
	}
	return nil
}

// flushGroup cuts the pages of g's columns.
func (f *columnarFile) flushGroup(g *pageGroup) error {
	if f.rows == g.firstRow {
		return nil
	}
	if lv := g.lv; lv != nil {
		var err error
		e := rle.Encoding{BitWidth: 1}
		if lv.repEnc, err = e.EncodeLevels(lv.repEnc, lv.rep); err != nil {
			return fmt.Errorf("encode repetition levels: %w", err)
		}
		if lv.defEnc, err = e.EncodeLevels(lv.defEnc, lv.def); err != nil {
			return fmt.Errorf("encode definition levels: %w", err)
		}
	}
	for _, c := range g.cols {
		if err := f.flushPage(c, g); err != nil {
			return fmt.Errorf("write page of %s: %w", strings.Join(c.path, "."), err)
		}
	}
	g.firstRow = f.rows
	if lv := g.lv; lv != nil {
		lv.rep, lv.def, lv.empty = lv.rep[:0], lv.def[:0], 0
	}
	return nil
}

// flushPage encodes and compresses the page of column c, of g's rows, into
// its column chunk.
func (f *columnarFile) flushPage(c *column, g *pageGroup) error {
	numRows := f.rows - g.firstRow
	numValues, numNulls := numRows, 0
	var rep, def []byte
	switch {
	case c.lv != nil:
		numValues, numNulls = len(c.lv.rep), c.lv.empty
		rep, def = c.lv.repEnc, c.lv.defEnc
	case c.optional:
		for _, d := range c.def {
			numNulls += int(1 - d)
		}
		var err error
		e := rle.Encoding{BitWidth: 1}
		if f.defBuf, err = e.EncodeLevels(f.defBuf, c.def); err != nil {
			return fmt.Errorf("encode definition levels: %w", err)
		}
		def = f.defBuf
	}
	values, err := f.encodeValues(c)
	if err != nil {
		return err
	}
	b := pageBoundsOf(c, numNulls, numValues)
	uncompressed := len(rep) + len(def) + len(values)
	if uncompressed > maxPageSize {
		return fmt.Errorf("page of %d bytes: over the limit of %d", uncompressed, maxPageSize)
	}
	compressed, err := f.compress(values)
	if err != nil {
		return err
	}
	crc := crc32.Update(0, crc32.IEEETable, rep)
	crc = crc32.Update(crc, crc32.IEEETable, def)
	crc = crc32.Update(crc, crc32.IEEETable, compressed)

	enc := c.typ.encoding()
	h := format.PageHeader{
		Type:                 format.DataPageV2,
		UncompressedPageSize: int32(uncompressed),
		CompressedPageSize:   int32(len(rep) + len(def) + len(compressed)),
		CRC:                  int32(crc),
	}
	h.DataPageHeaderV2.Set(format.DataPageHeaderV2{
		NumValues:                  int32(numValues),
		NumNulls:                   int32(numNulls),
		NumRows:                    int32(numRows),
		Encoding:                   enc,
		DefinitionLevelsByteLength: int32(len(def)),
		RepetitionLevelsByteLength: int32(len(rep)),
		IsCompressed:               thrift.New(true),
		Statistics:                 b.statistics(),
	})
	f.hdr.Reset()
	if err := f.enc.Encode(&h); err != nil {
		return fmt.Errorf("encode page header: %w", err)
	}
	start := len(c.chunk)
	c.chunk = append(c.chunk, f.hdr.Bytes()...)
	c.chunk = append(c.chunk, rep...)
	c.chunk = append(c.chunk, def...)
	c.chunk = append(c.chunk, compressed...)

	c.pages = append(c.pages, pageLoc{offset: int64(start), size: int32(len(c.chunk) - start), firstRow: int64(g.firstRow)})
	c.bounds = append(c.bounds, b)
	c.numValues += int64(numValues)
	c.nulls += int64(numNulls)
	c.uncompressed += int64(f.hdr.Len() + uncompressed)
	c.hasLevels = c.hasLevels || len(rep)+len(def) > 0

	c.vals, c.lens, c.b, c.idx, c.def = c.vals[:0], c.lens[:0], c.b[:0], c.idx[:0], c.def[:0]
	return nil
}

// compress returns b compressed, in a buffer reused from call to call.
func (f *columnarFile) compress(b []byte) ([]byte, error) {
	if n := s2.MaxEncodedLen(len(b)); n < 0 {
		return nil, fmt.Errorf("page of %d bytes: too large to compress", len(b))
	} else if cap(f.comp) < n {
		f.comp = make([]byte, n)
	}
	c, err := f.codec.Encode(f.comp, b)
	if err != nil {
		return nil, fmt.Errorf("compress: %w", err)
	}
	return c, nil
}

// encodeValues returns the encoded values of c's page.
func (f *columnarFile) encodeValues(c *column) ([]byte, error) {
	switch c.typ {
	case colDict:
		// The bit width of the indexes, then their RLE/bit-packed runs.
		width := 0
		if n := len(c.dict.vals); n > 1 {
			width = bits.Len32(uint32(n - 1))
		}
		e := rle.Encoding{BitWidth: width}
		var err error
		if f.idxBuf, err = e.EncodeInt32(f.idxBuf, c.idx); err != nil {
			return nil, fmt.Errorf("encode dictionary indexes: %w", err)
		}
		f.valBuf = append(append(f.valBuf[:0], byte(width)), f.idxBuf...)
		return f.valBuf, nil
	case colBool:
		buf := f.valBuf[:0]
		for i := 0; i < len(c.b); i += 8 {
			var v byte
			for j, x := range c.b[i:min(i+8, len(c.b))] {
				v |= x << j
			}
			buf = append(buf, v)
		}
		f.valBuf = buf
		return buf, nil
	case colBytes:
		// The lengths, delta-encoded, then the bytes.
		var err error
		if f.valBuf, err = f.deltaE.EncodeInt32(f.valBuf, c.lens); err != nil {
			return nil, fmt.Errorf("encode lengths: %w", err)
		}
		f.valBuf = append(f.valBuf, c.vals...)
		return f.valBuf, nil
	default:
		return c.vals, nil
	}
}

// pageBoundsOf returns the statistics of c's page of numValues values
// (level entries), numNulls of them null.
func pageBoundsOf(c *column, numNulls, numValues int) pageBounds {
	b := pageBounds{nulls: int64(numNulls), allNull: numNulls == numValues}
	if !c.stats || b.allNull {
		return b
	}
	switch c.typ {
	case colDict:
		lo, hi := c.idx[0], c.idx[0]
		vals := c.dict.vals
		for _, i := range c.idx[1:] {
			if i == lo || i == hi {
				continue
			}
			if vals[i] < vals[lo] {
				lo = i
			} else if vals[i] > vals[hi] {
				hi = i
			}
		}
		b.min, b.max = []byte(vals[lo]), []byte(vals[hi])
	case colBytes:
		var lo, hi []byte
		v := c.vals
		for _, n := range c.lens {
			s := v[:n:n]
			v = v[n:]
			if lo == nil || bytes.Compare(s, lo) < 0 {
				lo = s
			}
			if hi == nil || bytes.Compare(s, hi) > 0 {
				hi = s
			}
		}
		b.min, b.max = bytes.Clone(lo), bytes.Clone(hi)
		if b.min == nil {
			b.min = []byte{}
		}
		if b.max == nil {
			b.max = []byte{}
		}
	case colInt32, colInt64:
		width := 8
		if c.typ == colInt32 {
			width = 4
		}
		lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
		for i := 0; i+width <= len(c.vals); i += width {
			v := int64(int32(binary.LittleEndian.Uint32(c.vals[i:])))
			if width == 8 {
				v = int64(binary.LittleEndian.Uint64(c.vals[i:]))
			}
			lo, hi = min(lo, v), max(hi, v)
		}
		b.min = binary.LittleEndian.AppendUint64(nil, uint64(lo))[:width]
		b.max = binary.LittleEndian.AppendUint64(nil, uint64(hi))[:width]
	case colDouble:
		lo, hi := math.Inf(1), math.Inf(-1)
		seen := false
		for i := 0; i+8 <= len(c.vals); i += 8 {
			v := math.Float64frombits(binary.LittleEndian.Uint64(c.vals[i:]))
			if math.IsNaN(v) {
				continue // NaN is no bound (the Parquet specification)
			}
			lo, hi, seen = min(lo, v), max(hi, v), true
		}
		if !seen {
			return b // a page of NaNs has no bounds
		}
		// A zero bound is written -0 for a min, +0 for a max (the Parquet
		// specification).
		if lo == 0 {
			lo = math.Copysign(0, -1)
		}
		if hi == 0 {
			hi = 0
		}
		b.min = binary.LittleEndian.AppendUint64(nil, math.Float64bits(lo))
		b.max = binary.LittleEndian.AppendUint64(nil, math.Float64bits(hi))
	case colBool:
		lo, hi := byte(1), byte(0)
		for _, v := range c.b {
			lo, hi = min(lo, v), max(hi, v)
		}
		b.min, b.max = []byte{lo}, []byte{hi}
	}
	b.bounded = true
	return b
}

// statistics are the statistics of a page header.
func (b pageBounds) statistics() format.Statistics {
	s := format.Statistics{NullCount: b.nulls}
	if b.bounded {
		s.MinValue, s.MaxValue = b.min, b.max
	}
	return s
}

// chunkBounds returns the bounds of c's column chunk: those of its pages
// (a page of NaNs has none).
func chunkBounds(c *column) (lo, hi []byte, ok bool) {
	for _, b := range c.bounds {
		switch {
		case !b.bounded:
			continue
		case lo == nil:
			lo, hi = b.min, b.max
		default:
			if compareBounds(c.typ, b.min, lo) < 0 {
				lo = b.min
			}
			if compareBounds(c.typ, b.max, hi) > 0 {
				hi = b.max
			}
		}
	}
	return lo, hi, lo != nil
}

// compareBounds compares two PLAIN-encoded values of type t.
func compareBounds(t colType, a, b []byte) int {
	switch t {
	case colInt32:
		return cmp.Compare(int32(binary.LittleEndian.Uint32(a)), int32(binary.LittleEndian.Uint32(b)))
	case colInt64:
		return cmp.Compare(int64(binary.LittleEndian.Uint64(a)), int64(binary.LittleEndian.Uint64(b)))
	case colDouble:
		x, y := math.Float64frombits(binary.LittleEndian.Uint64(a)), math.Float64frombits(binary.LittleEndian.Uint64(b))
		if x == y && math.Signbit(x) != math.Signbit(y) {
			if math.Signbit(x) {
				return -1 // -0 before +0
			}
			return 1
		}
		return cmp.Compare(x, y)
	default: // byte arrays and booleans: unsigned bytes
		return bytes.Compare(a, b)
	}
}

// write writes b to the file.
func (f *columnarFile) write(b []byte) error {
	n, err := f.out.Write(b)
	f.offset += int64(n)
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// magic begins and ends a Parquet file.
const magic = "PAR1"

// writeRowGroup cuts the last pages of the row group being filled and
// writes it: each column's dictionary page, then its data pages.
func (f *columnarFile) writeRowGroup() error {
	if f.rows == 0 {
		return nil
	}
	for _, g := range f.groups {
		if err := f.flushGroup(g); err != nil {
			return err
		}
	}
	if f.offset == 0 {
		if err := f.write([]byte(magic)); err != nil {
			return err
		}
	}
	rg := format.RowGroup{
		Columns:    make([]format.ColumnChunk, len(f.cols)),
		NumRows:    int64(f.rows),
		Ordinal:    int16(len(f.rowGroups)),
		FileOffset: f.offset,
	}
	colIndex := make([]format.ColumnIndex, len(f.cols))
	offIndex := make([]format.OffsetIndex, len(f.cols))
	for i, c := range f.cols {
		start := f.offset
		md := format.ColumnMetaData{
			Type:         c.typ.physical(),
			PathInSchema: c.path,
			Codec:        format.Snappy,
			NumValues:    c.numValues,
		}
		var dictSize, dictUncompressed int64
		if c.typ == colDict {
			md.DictionaryPageOffset = start
			n, unc, err := f.writeDictionaryPage(c)
			if err != nil {
				return fmt.Errorf("write dictionary page of %s: %w", strings.Join(c.path, "."), err)
			}
			dictSize, dictUncompressed = n, unc
			md.Encoding = append(md.Encoding, format.Plain)
			md.EncodingStats = append(md.EncodingStats, format.PageEncodingStats{PageType: format.DictionaryPage, Encoding: format.Plain, Count: 1})
		}
		md.DataPageOffset = f.offset
		if err := f.write(c.chunk); err != nil {
			return err
		}
		if c.hasLevels {
			md.Encoding = append(md.Encoding, format.RLE)
		}
		enc := c.typ.encoding()
		md.Encoding = sortedEncodings(append(md.Encoding, enc))
		md.EncodingStats = append(md.EncodingStats, format.PageEncodingStats{PageType: format.DataPageV2, Encoding: enc, Count: int32(len(c.pages))})
		md.TotalCompressedSize = dictSize + int64(len(c.chunk))
		md.TotalUncompressedSize = dictUncompressed + c.uncompressed
		md.Statistics.NullCount = c.nulls
		lo, hi, bounded := chunkBounds(c)
		if c.stats && bounded {
			md.Statistics.MinValue, md.Statistics.MaxValue = lo, hi
		}
		rg.Columns[i] = format.ColumnChunk{MetaData: md}
		rg.TotalByteSize += md.TotalUncompressedSize
		rg.TotalCompressedSize += md.TotalCompressedSize

		locs := make([]format.PageLocation, len(c.pages))
		for j, p := range c.pages {
			locs[j] = format.PageLocation{Offset: md.DataPageOffset + p.offset, CompressedPageSize: p.size, FirstRowIndex: p.firstRow}
		}
		offIndex[i] = format.OffsetIndex{PageLocations: locs}
		if c.stats && !hasUnbounded(c) {
			colIndex[i] = columnIndexOf(c)
		}
		c.chunk, c.pages, c.bounds = c.chunk[:0], c.pages[:0], c.bounds[:0]
		c.numValues, c.nulls, c.uncompressed, c.hasLevels = 0, 0, 0, false
		c.dict.reset()
	}
	f.rowGroups = append(f.rowGroups, rg)
	f.colIndex = append(f.colIndex, colIndex)
	f.offIndex = append(f.offIndex, offIndex)
	f.total += int64(f.rows)
	f.rows = 0
	for _, g := range f.groups {
		g.firstRow = 0
	}
	return nil
}

// hasUnbounded reports whether a page of c with values has no bounds: the
// column index, which has bounds for every such page, is then left out.
func hasUnbounded(c *column) bool {
	for _, b := range c.bounds {
		if !b.allNull && !b.bounded {
			return true
		}
	}
	return false
}

// columnIndexOf is the column index of c's chunk: its pages' bounds, byte
// arrays truncated as parquet-go truncates them.
func columnIndexOf(c *column) format.ColumnIndex {
	ci := format.ColumnIndex{
		NullPages:     make([]bool, len(c.bounds)),
		MinValues:     make([][]byte, len(c.bounds)),
		MaxValues:     make([][]byte, len(c.bounds)),
		BoundaryOrder: format.Unordered,
		NullCounts:    make([]int64, len(c.bounds)),
	}
	for i, b := range c.bounds {
		ci.NullCounts[i] = b.nulls
		if b.allNull {
			ci.NullPages[i] = true
			ci.MinValues[i], ci.MaxValues[i] = []byte{}, []byte{}
			continue
		}
		lo, hi := b.min, b.max
		if c.typ == colBytes || c.typ == colDict {
			lo, hi = truncateMin(lo), truncateMax(hi)
		}
		ci.MinValues[i], ci.MaxValues[i] = lo, hi
	}
	return ci
}

// truncateMin truncates a byte array lower bound for the column index.
func truncateMin(b []byte) []byte {
	if len(b) <= columnIndexTruncate {
		return b
	}
	return b[:columnIndexTruncate]
}

// truncateMax truncates a byte array upper bound for the column index: the
// prefix with its last byte that can be incremented incremented, or the
// whole value when there is none.
func truncateMax(b []byte) []byte {
	if len(b) <= columnIndexTruncate {
		return b
	}
	t := bytes.Clone(b[:columnIndexTruncate])
	for i := len(t) - 1; i >= 0; i-- {
		if t[i] < 0xff {
			t[i]++
			return t[:i+1]
		}
	}
	return b
}

// sortedEncodings returns the encodings in order, without duplicates.
func sortedEncodings(e []format.Encoding) []format.Encoding {
	slices.Sort(e)
	return slices.Compact(e)
}

// writeDictionaryPage writes c's dictionary page and returns its size on
// disk and uncompressed, header included.
func (f *columnarFile) writeDictionaryPage(c *column) (size, uncompressed int64, err error) {
	buf := f.valBuf[:0]
	for _, v := range c.dict.vals {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(v)))
		buf = append(buf, v...)
	}
	f.valBuf = buf
	if len(buf) > maxPageSize {
		return 0, 0, fmt.Errorf("dictionary page of %d bytes: over the limit of %d", len(buf), maxPageSize)
	}
	compressed, err := f.compress(buf)
	if err != nil {
		return 0, 0, err
	}
	h := format.PageHeader{
		Type:                 format.DictionaryPage,
		UncompressedPageSize: int32(len(buf)),
		CompressedPageSize:   int32(len(compressed)),
		CRC:                  int32(crc32.ChecksumIEEE(compressed)),
	}
	h.DictionaryPageHeader.Set(format.DictionaryPageHeader{NumValues: int32(len(c.dict.vals)), Encoding: format.Plain})
	f.hdr.Reset()
	if err := f.enc.Encode(&h); err != nil {
		return 0, 0, fmt.Errorf("encode page header: %w", err)
	}
	hl := int64(f.hdr.Len())
	if err := f.write(f.hdr.Bytes()); err != nil {
		return 0, 0, err
	}
	if err := f.write(compressed); err != nil {
		return 0, 0, err
	}
	return hl + int64(len(compressed)), hl + int64(len(buf)), nil
}

// close writes the last row group, the page index and the footer. The file
// is whole once it returns nil.
func (f *columnarFile) close(kv []format.KeyValue) error {
	if err := f.writeRowGroup(); err != nil {
		return err
	}
	if f.offset == 0 {
		if err := f.write([]byte(magic)); err != nil {
			return err
		}
	}
	// The page index: the column indexes, then the offset indexes.
	for i := range f.rowGroups {
		for j := range f.cols {
			ci := &f.colIndex[i][j]
			if ci.NullPages == nil {
				continue // no statistics
			}
			cc := &f.rowGroups[i].Columns[j]
			cc.ColumnIndexOffset = f.offset
			if err := f.writeThrift(ci); err != nil {
				return fmt.Errorf("write column index: %w", err)
			}
			cc.ColumnIndexLength = int32(f.offset - cc.ColumnIndexOffset)
		}
	}
	for i := range f.rowGroups {
		for j := range f.cols {
			cc := &f.rowGroups[i].Columns[j]
			cc.OffsetIndexOffset = f.offset
			if err := f.writeThrift(&f.offIndex[i][j]); err != nil {
				return fmt.Errorf("write offset index: %w", err)
			}
			cc.OffsetIndexLength = int32(f.offset - cc.OffsetIndexOffset)
		}
	}
	md := format.FileMetaData{
		Version:          2,
		Schema:           f.tmpl.schema,
		NumRows:          f.total,
		RowGroups:        f.rowGroups,
		KeyValueMetadata: kv,
		CreatedBy:        f.tmpl.createdBy,
		ColumnOrders:     f.tmpl.columnOrders,
	}
	footerStart := f.offset
	if err := f.writeThrift(&md); err != nil {
		return fmt.Errorf("write footer: %w", err)
	}
	tail := binary.LittleEndian.AppendUint32(nil, uint32(f.offset-footerStart))
	return f.write(append(tail, magic...))
}

// writeThrift writes v, Thrift compact-encoded.
func (f *columnarFile) writeThrift(v any) error {
	f.hdr.Reset()
	if err := f.enc.Encode(v); err != nil {
		return err
	}
	return f.write(f.hdr.Bytes())
}
