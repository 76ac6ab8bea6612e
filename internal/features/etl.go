package features

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sightline/sightline/internal/event"
)

// MaxLineLen is the longest NDJSON line, without its line terminator, that
// LoadUsers and LoadItems accept.
const MaxLineLen = 64 << 10

// MaxLineErrors is how many line errors a LoadResult keeps; all rejected
// lines are counted.
const MaxLineErrors = 100

// LineError is why one input line was rejected.
type LineError struct {
	// Line is the 1-based line number in the input.
	Line int
	// Err describes the problem. It names fields, never their values.
	Err string
}

// LoadResult summarizes a bulk import.
type LoadResult struct {
	// Loaded is the number of records stored.
	Loaded int
	// Rejected is the number of non-blank lines not stored.
	Rejected int
	// Errors holds the first MaxLineErrors rejections, in input order.
	Errors []LineError
}

func (r *LoadResult) reject(line int, msg string) {
	r.Rejected++
	if len(r.Errors) < MaxLineErrors {
		r.Errors = append(r.Errors, LineError{Line: line, Err: msg})
	}
}

// LoadUsers reads user profiles from r, one JSON object per line in the wire
// format of [event.User], and passes each valid one to put (for example
// [Memory.PutUser]). Blank lines are skipped. A line that is longer than
// MaxLineLen, is not exactly one JSON object, has an unknown field, fails
// [event.User.Validate] or is refused by put is rejected and the load goes
// on; the result counts and describes rejections.
//
// The returned error is ctx.Err() when ctx is canceled and otherwise only
// reports a failure to read r; the result covers the lines before it.
func LoadUsers(ctx context.Context, r io.Reader, put func(context.Context, event.User) error) (LoadResult, error) {
	return loadNDJSON(ctx, r, (*event.User).Validate, put)
}

// LoadItems reads catalog items from r, one JSON object per line in the wire
// format of [event.Item], and passes each valid one to put (for example
// [Memory.PutItem]). It treats lines and errors as LoadUsers does.
func LoadItems(ctx context.Context, r io.Reader, put func(context.Context, event.Item) error) (LoadResult, error) {
	return loadNDJSON(ctx, r, (*event.Item).Validate, put)
}

var utf8BOM = []byte("\xef\xbb\xbf")

func loadNDJSON[T any](ctx context.Context, r io.Reader, validate func(*T) error, put func(context.Context, T) error) (LoadResult, error) {
	var res LoadResult
	// Room for a maximal line and its "\r\n"; ReadSlice fails with
	// ErrBufferFull on anything longer.
	br := bufio.NewReaderSize(r, MaxLineLen+2)
	for line := 1; ; line++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			res.reject(line, fmt.Sprintf("line longer than %d bytes", MaxLineLen))
			switch err := skipLine(br); {
			case errors.Is(err, io.EOF):
				return res, nil
			case err != nil:
				return res, fmt.Errorf("read line %d: %w", line, err)
			}
			continue
		}
		if err != nil && err != io.EOF {
			return res, fmt.Errorf("read line %d: %w", line, err)
		}
		if b != nil {
			if line == 1 {
				b = bytes.TrimPrefix(b, utf8BOM)
			}
			if msg := loadLine(ctx, b, validate, put); msg == "" {
				res.Loaded++
			} else if msg != blank {
				res.reject(line, msg)
			}
		}
		if err == io.EOF {
			return res, nil
		}
	}
}

// skipLine discards input up to and including the next newline.
func skipLine(br *bufio.Reader) error {
	for {
		_, err := br.ReadSlice('\n')
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

// maxProblemLen bounds the part of a LineError copied from a decoder error.
const maxProblemLen = 160

// blank is loadLine's result for a line with nothing on it.
const blank = "\x00blank"

// loadLine decodes, validates and stores one line. It returns "" when the
// record was stored, blank for a blank line, and otherwise why it was
// rejected.
func loadLine[T any](ctx context.Context, b []byte, validate func(*T) error, put func(context.Context, T) error) string {
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) > MaxLineLen {
		return fmt.Sprintf("line longer than %d bytes", MaxLineLen)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return blank
	}
	if b[0] != '{' {
		return "invalid record: not a JSON object"
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var v T
	if err := dec.Decode(&v); err != nil {
		return "invalid json: " + jsonProblem(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "invalid json: data after the object"
	}
	if err := validate(&v); err != nil {
		return "invalid record: " + err.Error()
	}
	if err := put(ctx, v); err != nil {
		return "store: " + err.Error()
	}
	return ""
}

// jsonProblem describes a decoding error without quoting input values.
func jsonProblem(err error) string {
	if syn, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	}
	if typ, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return fmt.Sprintf("field %s: cannot use a JSON %s", typ.Field, typ.Value)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of line"
	}
	// What is left is mostly "json: unknown field \"name\"", which quotes
	// a field name from the input: keep it short.
	msg := err.Error()
	if len(msg) > maxProblemLen {
		msg = strings.ToValidUTF8(msg[:maxProblemLen], "") + "..."
	}
	return msg
}
