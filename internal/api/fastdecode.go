package api

import (
	"bytes"
	"io"
	"unicode/utf8"

	"github.com/sightline/sightline/internal/engine"
)

// readBody reads r to the end into the pooled buffer *bp.
func readBody(r io.Reader, bp *[]byte) ([]byte, error) {
	b := (*bp)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			*bp = b
			return b, nil
		}
		if err != nil {
			*bp = b
			return b, err
		}
	}
}

// errReader returns err once its turn comes in an io.MultiReader.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// decodeRecommendationBody decodes a recommendation request: the common
// shape (known keys once each, plain strings without escapes, a small
// integer count) by a scanner that allocates one string for the whole body;
// anything else, and every error, by decodeRecommendation, so answers and
// problems are exactly encoding/json's.
func decodeRecommendationBody(r io.Reader) (engine.Request, *problem) {
	bp := getBuf()
	defer putBuf(bp)
	body, err := readBody(r, bp)
	if err != nil {
		return decodeRecommendation(io.MultiReader(bytes.NewReader(body), errReader{err}))
	}
	if req, ok := scanRecommendation(body); ok {
		return req, validateRequest(&req, "context.")
	}
	return decodeRecommendation(bytes.NewReader(body))
}

// scanRecommendation is the fast path of decodeRecommendationBody. It
// reports false for any input it does not fully understand.
func scanRecommendation(body []byte) (engine.Request, bool) {
	if !utf8.Valid(body) {
		return engine.Request{}, false
	}
	s := scanner{s: string(body)}
	req := engine.Request{Count: defaultCount}
	var seen [4]bool
	ok := s.object(func(key string) bool {
		switch key {
		case "user_id":
			return s.once(&seen[0]) && s.str(&req.UserID)
		case "count":
			return s.once(&seen[1]) && s.int(&req.Count)
		case "context":
			if !s.once(&seen[2]) {
				return false
			}
			var cs [3]bool
			return s.object(func(key string) bool {
				switch key {
				case "channel":
					return s.once(&cs[0]) && s.str(&req.Channel)
				case "session_id":
					return s.once(&cs[1]) && s.str(&req.SessionID)
				case "page":
					return s.once(&cs[2]) && s.str(&req.Page)
				}
				return false
			})
		case "exclude_item_ids":
			return s.once(&seen[3]) && s.strs(&req.Exclude)
		}
		return false
	})
	s.space()
	if !ok || s.i != len(s.s) {
		return engine.Request{}, false
	}
	return req, true
}

// scanner reads the fast-path subset of JSON from s.
type scanner struct {
	s string
	i int
}

func (s *scanner) space() {
	for s.i < len(s.s) {
		switch s.s[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) byte(c byte) bool {
	s.space()
	if s.i < len(s.s) && s.s[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) once(seen *bool) bool {
	if *seen {
		return false // a repeated key: leave the semantics to encoding/json
	}
	*seen = true
	return true
}

// object reads an object whose values field reads after each key.
func (s *scanner) object(field func(key string) bool) bool {
	if !s.byte('{') {
		return false
	}
	if s.byte('}') {
		return true
	}
	for {
		var key string
		if !s.str(&key) || !s.byte(':') || !field(key) {
			return false
		}
		if s.byte('}') {
			return true
		}
		if !s.byte(',') {
			return false
		}
	}
}

// str reads a string without escapes or control characters.
func (s *scanner) str(v *string) bool {
	if !s.byte('"') {
		return false
	}
	start := s.i
	for s.i < len(s.s) {
		c := s.s[s.i]
		switch {
		case c == '"':
			*v = s.s[start:s.i]
			s.i++
			return true
		case c == '\\' || c < 0x20:
			return false
		}
		s.i++
	}
	return false
}

// int reads a positive integer of at most 6 digits without a leading zero.
func (s *scanner) int(v *int) bool {
	s.space()
	n, start := 0, s.i
	for s.i < len(s.s) && s.s[s.i] >= '0' && s.s[s.i] <= '9' && s.i-start < 7 {
		n = n*10 + int(s.s[s.i]-'0')
		s.i++
	}
	d := s.i - start
	if d == 0 || d > 6 || s.s[start] == '0' {
		return false
	}
	if s.i < len(s.s) {
		switch s.s[s.i] {
		case '.', 'e', 'E':
			return false
		}
	}
	*v = n
	return true
}

// strs reads an array of strings.
func (s *scanner) strs(v *[]string) bool {
	if !s.byte('[') {
		return false
	}
	out := []string{}
	if !s.byte(']') {
		for {
			var e string
			if !s.str(&e) {
				return false
			}
			out = append(out, e)
			if s.byte(']') {
				break
			}
			if !s.byte(',') {
				return false
			}
		}
	}
	*v = out
	return true
}
