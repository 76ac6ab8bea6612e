package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// kv is one key and its value as shown on a page; Null marks a JSON null
// or missing value, which pages highlight.
type kv struct {
	Key   string
	Value string
	Null  bool
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// attrList returns span attributes sorted by key; a nil value is a null.
func attrList(m map[string]any) []kv {
	out := make([]kv, 0, len(m))
	for _, k := range sortedKeys(m) {
		v := m[k]
		if v == nil {
			out = append(out, kv{Key: k, Value: "null", Null: true})
			continue
		}
		out = append(out, kv{Key: k, Value: attrString(v)})
	}
	return out
}

func attrString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []string:
		return "[" + strings.Join(x, ", ") + "]"
	}
	return fmt.Sprint(v)
}

// shownFields are the top-level log fields the Logs page shows in their own
// columns, not among the fields.
var shownFields = map[string]bool{
	"time": true, "level": true, "msg": true, "trace_id": true,
	"span_id": true, "trace_flags": true, "request_id": true,
}

// recordFields flattens a JSON log record into dotted keys in written
// order ("features.user_age_bucket"), nulls marked. A record that is not
// valid JSON yields what was read before the error.
func recordFields(raw []byte) []kv {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out []kv
	_ = walkJSON(dec, "", &out, 0)
	return slices.DeleteFunc(out, func(f kv) bool { return shownFields[f.Key] })
}

// maxDepth bounds the nesting walkJSON follows.
const maxDepth = 32

func walkJSON(dec *json.Decoder, key string, out *[]kv, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("nesting deeper than %d", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k, _ := kt.(string)
				if key != "" {
					k = key + "." + k
				}
				if err := walkJSON(dec, k, out, depth+1); err != nil {
					return err
				}
			}
		case '[':
			for i := 0; dec.More(); i++ {
				if err := walkJSON(dec, key+"["+strconv.Itoa(i)+"]", out, depth+1); err != nil {
					return err
				}
			}
		}
		_, err = dec.Token() // the closing delimiter
		return err
	case nil:
		*out = append(*out, kv{Key: key, Value: "null", Null: true})
	case string:
		*out = append(*out, kv{Key: key, Value: t})
	case json.Number:
		*out = append(*out, kv{Key: key, Value: t.String()})
	case bool:
		*out = append(*out, kv{Key: key, Value: strconv.FormatBool(t)})
	}
	return nil
}

func pct(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "–"
	}
	return strconv.FormatFloat(f*100, 'f', 2, 64) + "%"
}

func fixed(prec int, f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "–"
	}
	return strconv.FormatFloat(f, 'f', prec, 64)
}

// signedPct formats a fraction as a percentage with its sign (+1.25%).
func signedPct(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "–"
	}
	s := strconv.FormatFloat(f*100, 'f', 2, 64)
	if f >= 0 {
		s = "+" + s
	}
	return s + "%"
}

// points formats a difference of two rates in percentage points, signed
// (+0.42 pp).
func points(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "–"
	}
	s := strconv.FormatFloat(f*100, 'f', 2, 64)
	if f >= 0 {
		s = "+" + s
	}
	return s + " pp"
}

// pointsAbs formats a rate difference's size in percentage points.
func pointsAbs(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "–"
	}
	return strconv.FormatFloat(f*100, 'f', 2, 64) + " pp"
}

// ago formats an age for people: seconds under two minutes, then minutes,
// hours and days.
func ago(d time.Duration) string {
	switch {
	case d < 2*time.Minute:
		return strconv.FormatInt(int64(d/time.Second), 10) + " s"
	case d < 2*time.Hour:
		return strconv.FormatInt(int64(d/time.Minute), 10) + " min"
	case d < 48*time.Hour:
		return strconv.FormatInt(int64(d/time.Hour), 10) + " h"
	}
	return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + " days"
}

// pValue formats a p-value: four decimals, or a bound below 0.0001.
func pValue(p float64) string {
	switch {
	case math.IsNaN(p):
		return "–"
	case p < 0.0001:
		return "< 0.0001"
	}
	return strconv.FormatFloat(p, 'f', 4, 64)
}

func durMS(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64) + " ms"
}

func clock(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("15:04:05.000")
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// webURL reports whether s is an absolute http(s) URL, which pages may
// link to; anything else is shown as text.
func webURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// isSet reports whether the query parameter name is a true boolean, for
// checkboxes.
func isSet(q url.Values, name string) bool {
	b, _ := strconv.ParseBool(q.Get(name))
	return b
}

var funcs = template.FuncMap{
	"pct":      pct,
	"fixed":    fixed,
	"durms":    durMS,
	"spct":     signedPct,
	"pp":       points,
	"ppabs":    pointsAbs,
	"pval":     pValue,
	"ago":      ago,
	"estname":  estimatorName,
	"clock":    clock,
	"stamp":    stamp,
	"weburl":   webURL,
	"isset":    isSet,
	"pathesc":  url.PathEscape,
	"queryesc": url.QueryEscape,
	"inc":      func(i int) int { return i + 1 },
	"indent":   func(depth int) int { return min(depth, 12) },
	"bad":      func(f, limit float64) bool { return f > limit },
	"finite":   func(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) },
	"levelclass": func(s string) string {
		switch {
		case strings.HasPrefix(s, "ERROR"):
			return "error"
		case strings.HasPrefix(s, "WARN"):
			return "warn"
		case strings.HasPrefix(s, "DEBUG"):
			return "debug"
		}
		return "info"
	},
}
