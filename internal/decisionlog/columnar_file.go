package decisionlog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/parquet-go/parquet-go/encoding/delta"
	"github.com/parquet-go/parquet-go/encoding/rle"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

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

// sortedEncodings returns the encodings in order, without duplicates.
func sortedEncodings(e []format.Encoding) []format.Encoding {
	slices.Sort(e)
	return slices.Compact(e)
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
