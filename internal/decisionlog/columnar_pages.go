package decisionlog

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/bits"

	"github.com/klauspost/compress/s2"
	"github.com/parquet-go/parquet-go/encoding/rle"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// pageLoc is where a data page is, relative to its column chunk's data
// pages, for the offset index.
type pageLoc struct {
	offset   int64 // from the first data page
	size     int32 // header and body
	firstRow int64 // in the row group
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
