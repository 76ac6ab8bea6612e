package decisionlog

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"math"

	"github.com/parquet-go/parquet-go/format"
)

// pageBounds are a data page's statistics, for the column index.
type pageBounds struct {
	min, max []byte
	nulls    int64
	allNull  bool
	bounded  bool
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
