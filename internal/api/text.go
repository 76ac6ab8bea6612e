package api

import (
	"bytes"
	"fmt"
	"io"
	"unicode/utf8"
)

// textError reports a request body that is not text a JSON decoder keeps
// as sent: bytes that are not UTF-8, or a \u escape of a lone UTF-16
// surrogate. encoding/json turns either into U+FFFD without an error, so an
// id with such bytes would silently become another id.
type textError struct {
	// offset is the position in the body of the first byte of the
	// offending sequence or escape.
	offset int64
	// surrogate is the escape's code unit, or 0 for bytes that are not
	// UTF-8.
	surrogate rune
	b         byte // the first offending byte when surrogate is 0
}

func (e *textError) Error() string {
	if e.surrogate != 0 {
		return fmt.Sprintf(`request body has a lone UTF-16 surrogate \u%04x at byte offset %d, which encodes no character; `+
			`send ids and text as UTF-8, or escape a character outside the Basic Multilingual Plane as a surrogate pair`, e.surrogate, e.offset)
	}
	return fmt.Sprintf("request body is not valid UTF-8: byte 0x%02x at byte offset %d does not start a UTF-8 character; "+
		"JSON text must be UTF-8 (RFC 8259), so send ids and text as UTF-8", e.b, e.offset)
}

// escape states of textReader.
const (
	escNone  = iota // outside an escape
	escSlash        // after a backslash
	escHex          // reading the hex digits of \uXXXX
)

// textReader passes a JSON body through from r, failing with a *textError
// at the first byte that is not UTF-8 and at the first \u escape of a lone
// surrogate (a high one not followed by a low one, or a low one alone). It
// reads no more than its caller asks for and keeps a few bytes of state
// between reads, so it works on a stream. Not safe for concurrent use.
//
// It tracks escapes without tracking strings: a backslash outside a string
// is a syntax error that the JSON decoder reports in its place.
type textReader struct {
	r   io.Reader
	off int64 // body offset of the next byte read from r
	err error // sticky

	// part holds the first bytes of a UTF-8 sequence cut by the end of
	// the previous read; partOff is the body offset of part[0].
	part    [utf8.UTFMax]byte
	npart   int
	partOff int64

	esc      int
	escOff   int64 // body offset of the current escape's backslash
	hex      rune
	nhex     int
	high     rune  // a high surrogate awaiting its low half, or 0
	highOff  int64 // body offset of high's backslash
	highSeen bool  // the escape after high has started
}

// Read reads from the underlying reader and checks what it read. On an
// error it returns the bytes before the offending sequence, so the JSON
// decoder reports any earlier error first.
func (t *textReader) Read(p []byte) (int, error) {
	if t.err != nil {
		return 0, t.err
	}
	base := t.off
	n, err := t.r.Read(p)
	if n > 0 {
		if terr := t.check(p[:n]); terr != nil {
			t.err = terr
			// Pass on the bytes before the offending sequence, if any.
			return int(min(max(terr.offset-base, 0), int64(n))), terr
		}
	}
	if err == io.EOF {
		if t.npart > 0 {
			t.err = &textError{offset: t.partOff, b: t.part[0]}
			return n, t.err
		}
		if t.high != 0 {
			t.err = &textError{offset: t.highOff, surrogate: t.high}
			return n, t.err
		}
	}
	return n, err
}

// check checks b, the next bytes of the body.
func (t *textReader) check(b []byte) *textError {
	base := t.off
	t.off += int64(len(b))
	i := 0
	if t.npart > 0 {
		// Complete the sequence cut by the previous read.
		for t.npart < utf8.UTFMax && i < len(b) && !utf8.FullRune(t.part[:t.npart]) {
			t.part[t.npart] = b[i]
			t.npart++
			i++
		}
		if !utf8.FullRune(t.part[:t.npart]) {
			return nil // still cut: wait for more
		}
		if r, size := utf8.DecodeRune(t.part[:t.npart]); r == utf8.RuneError && size <= 1 {
			return &textError{offset: t.partOff, b: t.part[0]}
		}
		t.npart = 0
		if t.high != 0 && !t.highSeen {
			return t.lone() // a character, not the low half's escape
		}
	}
	if !utf8.Valid(b[i:]) {
		j := i
		for j < len(b) {
			r, size := utf8.DecodeRune(b[j:])
			if r == utf8.RuneError && size <= 1 {
				if !utf8.FullRune(b[j:]) {
					break // cut by the end of b
				}
				if err := t.escapes(b, i, j, base); err != nil {
					return err
				}
				return &textError{offset: base + int64(j), b: b[j]}
			}
			j += size
		}
		// b[j:] is the start of a sequence the next read completes.
		t.npart = copy(t.part[:], b[j:])
		t.partOff = base + int64(j)
		return t.escapes(b, i, j, base)
	}
	return t.escapes(b, i, len(b), base)
}

// escapes follows the escapes in b[from:to], whose first byte is at body
// offset base+from, and fails at a lone surrogate.
func (t *textReader) escapes(b []byte, from, to int, base int64) *textError {
	for i := from; i < to; i++ {
		if t.esc == escNone && t.high == 0 {
			// Skip to the next escape.
			k := bytes.IndexByte(b[i:to], '\\')
			if k < 0 {
				return nil
			}
			i += k
		}
		c := b[i]
		switch t.esc {
		case escNone:
			if t.high != 0 && !t.highSeen {
				if c != '\\' {
					return t.lone()
				}
				t.highSeen = true
			}
			if c == '\\' {
				t.esc, t.escOff = escSlash, base+int64(i)
			}
		case escSlash:
			if c == 'u' {
				t.esc, t.hex, t.nhex = escHex, 0, 0
				continue
			}
			t.esc = escNone
			if t.high != 0 {
				return t.lone()
			}
		case escHex:
			v, ok := hexVal(c)
			if !ok {
				// A syntax error: the JSON decoder reports it.
				t.esc, t.high = escNone, 0
				continue
			}
			t.hex = t.hex<<4 | v
			if t.nhex++; t.nhex < 4 {
				continue
			}
			t.esc = escNone
			switch {
			case t.high != 0:
				if t.hex < 0xdc00 || t.hex > 0xdfff {
					return t.lone()
				}
				t.high = 0
			case t.hex >= 0xd800 && t.hex <= 0xdbff:
				t.high, t.highOff, t.highSeen = t.hex, t.escOff, false
			case t.hex >= 0xdc00 && t.hex <= 0xdfff:
				return &textError{offset: t.escOff, surrogate: t.hex}
			}
		}
	}
	return nil
}

// lone fails at the high surrogate awaiting its low half.
func (t *textReader) lone() *textError {
	return &textError{offset: t.highOff, surrogate: t.high}
}

func hexVal(c byte) (rune, bool) {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0'), true
	case 'a' <= c && c <= 'f':
		return rune(c-'a') + 10, true
	case 'A' <= c && c <= 'F':
		return rune(c-'A') + 10, true
	}
	return 0, false
}
