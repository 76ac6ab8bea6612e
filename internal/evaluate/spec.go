package evaluate

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/sightline/sightline/internal/model"
)

// Kinds of target policy (Spec.Kind).
const (
	// KindLogged is the logging policy itself: a sanity check whose
	// estimate equals the logged CTR.
	KindLogged = "logged"
	// KindPopularity ranks a decision's candidates by popularity.
	KindPopularity = "popularity"
	// KindSnapshot scores with a model snapshot file.
	KindSnapshot = "snapshot"
	// KindFTRL is the FTRL model with the given settings, trained over the
	// log progressively: each decision is scored before the model learns
	// from its impressions and clicks.
	KindFTRL = "ftrl"
	// KindShadow is the shadow challenger of a rollout, by its choices
	// recorded in the log (the decisions' shadow_items): deterministic,
	// it takes no keys. A decision it did not score is one it made no
	// choice in, which the unsupported share counts.
	KindShadow = "shadow"
)

// ErrInvalidSpec reports a target policy spec that cannot be parsed.
var ErrInvalidSpec = errors.New("invalid policy spec")

// Spec is a parsed target policy.
//
// Its text form is NAME[:key=value,...], where NAME is "logged",
// "popularity", "ftrl", "shadow" or the path of a model snapshot file.
// Keys:
//
//   - explore=ε (0 ≤ ε < 1): the target explores as serving does: per slot
//     its own pick with probability 1-ε+ε/n, each of the other n-1
//     candidates of its window with probability ε/n;
//   - explore_top=T: the window is the target's T best usable candidates
//     (default all eligible candidates);
//   - for ftrl only: alpha, beta, l1, l2 (0 means none), bits, and
//     from=PATH, a snapshot to start from instead of an empty model.
//
// "logged" and "shadow" take no keys. Spaces around the name and the keys are
// ignored. A path whose text contains ':' followed by
// something with '=' must be given as a snapshot anyway: the part after
// the last ':' is read as keys when it holds '='.
type Spec struct {
	// Kind is one of the Kind* constants.
	Kind string
	// Path is the snapshot file of a KindSnapshot target, or the snapshot
	// a KindFTRL target starts from ("" for an empty model).
	Path string
	// Model holds the FTRL settings of a KindFTRL target; a zero field
	// means the model default (L1 and L2 are negative for "none").
	Model model.Config
	// Explore is the target's exploration share, 0 for a deterministic
	// target; ExploreTop the size of its exploration window (0: all).
	Explore    float64
	ExploreTop int
}

// ParseSpecs parses a comma-separated list of specs. A comma-separated
// item holding '=' and no ':' continues the keys of the spec before it, so
// "ftrl:alpha=0.2,l1=0,popularity" is two specs.
func ParseSpecs(s string) ([]Spec, error) {
	var (
		out  []Spec
		cur  string
		have bool
	)
	flush := func() error {
		if !have {
			return nil
		}
		sp, err := ParseSpec(cur)
		if err != nil {
			return err
		}
		out = append(out, sp)
		return nil
	}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if have && strings.Contains(item, "=") && !strings.Contains(item, ":") {
			cur += "," + item
			continue
		}
		if err := flush(); err != nil {
			return nil, err
		}
		cur, have = item, true
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrInvalidSpec)
	}
	return out, nil
}

// ParseSpec parses one target policy spec (see [Spec]).
func ParseSpec(s string) (Spec, error) {
	s = strings.TrimSpace(s)
	name, opts := s, ""
	if i := strings.LastIndexByte(s, ':'); i >= 0 && strings.Contains(s[i+1:], "=") {
		name, opts = strings.TrimSpace(s[:i]), s[i+1:]
	}
	if name == "" {
		return Spec{}, fmt.Errorf("%w: %q: no policy name", ErrInvalidSpec, s)
	}
	var sp Spec
	switch name {
	case KindLogged, KindPopularity, KindFTRL, KindShadow:
		sp.Kind = name
	default:
		sp.Kind, sp.Path = KindSnapshot, name
	}
	if opts == "" {
		return sp, nil
	}
	if sp.Kind == KindLogged || sp.Kind == KindShadow {
		return Spec{}, fmt.Errorf("%w: %q: %s takes no settings", ErrInvalidSpec, s, sp.Kind)
	}
	seen := map[string]bool{}
	for kv := range strings.SplitSeq(opts, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return Spec{}, fmt.Errorf("%w: %q: want key=value, got %q", ErrInvalidSpec, s, kv)
		}
		if seen[k] {
			return Spec{}, fmt.Errorf("%w: %q: %s given twice", ErrInvalidSpec, s, k)
		}
		seen[k] = true
		if err := sp.set(k, v); err != nil {
			return Spec{}, fmt.Errorf("%w: %q: %w", ErrInvalidSpec, s, err)
		}
	}
	return sp, nil
}

// set applies one key of a spec.
func (sp *Spec) set(k, v string) error {
	switch k {
	case "explore":
		f, err := parseFloat(k, v)
		if err != nil {
			return err
		}
		if f < 0 || f >= 1 {
			return fmt.Errorf("explore %v: want 0 ≤ explore < 1", f)
		}
		sp.Explore = f
		return nil
	case "explore_top":
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1_000_000 {
			return fmt.Errorf("explore_top %q: want a count, 0 for all", v)
		}
		sp.ExploreTop = n
		return nil
	}
	if sp.Kind != KindFTRL {
		return fmt.Errorf("unknown key %q for %s (explore, explore_top)", k, sp.Kind)
	}
	switch k {
	case "alpha", "beta":
		f, err := parseFloat(k, v)
		if err != nil {
			return err
		}
		if f <= 0 {
			return fmt.Errorf("%s %v: want a positive number", k, f)
		}
		if k == "alpha" {
			sp.Model.Alpha = f
		} else {
			sp.Model.Beta = f
		}
	case "l1", "l2":
		f, err := parseFloat(k, v)
		if err != nil {
			return err
		}
		if f < 0 {
			return fmt.Errorf("%s %v: want a number ≥ 0 (0: none)", k, f)
		}
		if f == 0 {
			f = -1 // model.Config: negative means none, zero the default
		}
		if k == "l1" {
			sp.Model.L1 = f
		} else {
			sp.Model.L2 = f
		}
	case "bits":
		n, err := strconv.Atoi(v)
		if err != nil || n < model.MinBits || n > model.MaxBits {
			return fmt.Errorf("bits %q: want %d..%d", v, model.MinBits, model.MaxBits)
		}
		sp.Model.Bits = n
	case "from":
		sp.Path = v
	default:
		return fmt.Errorf("unknown key %q for ftrl (alpha, beta, l1, l2, bits, from, explore, explore_top)", k)
	}
	return nil
}

func parseFloat(k, v string) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%s %q: want a finite number", k, v)
	}
	return f, nil
}

// String returns the canonical text form of sp, which ParseSpec reads back
// to sp: the name, then the keys that differ from their defaults in a fixed
// order.
func (sp Spec) String() string {
	name := sp.Kind
	if sp.Kind == KindSnapshot {
		name = sp.Path
	}
	var kv []string
	add := func(k string, v string) { kv = append(kv, k+"="+v) }
	num := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	if sp.Kind == KindFTRL {
		if sp.Model.Alpha != 0 {
			add("alpha", num(sp.Model.Alpha))
		}
		if sp.Model.Beta != 0 {
			add("beta", num(sp.Model.Beta))
		}
		if sp.Model.L1 != 0 {
			add("l1", num(max(sp.Model.L1, 0)))
		}
		if sp.Model.L2 != 0 {
			add("l2", num(max(sp.Model.L2, 0)))
		}
		if sp.Model.Bits != 0 {
			add("bits", strconv.Itoa(sp.Model.Bits))
		}
	}
	if sp.Explore != 0 {
		add("explore", num(sp.Explore))
	}
	if sp.ExploreTop != 0 {
		add("explore_top", strconv.Itoa(sp.ExploreTop))
	}
	if sp.Kind == KindFTRL && sp.Path != "" {
		add("from", sp.Path) // last: a path may hold ',' or '='
	}
	if len(kv) == 0 {
		if sp.Kind == KindSnapshot && strings.Contains(name, ":") && strings.Contains(name[strings.LastIndexByte(name, ':')+1:], "=") {
			return name + ":explore=0" // keeps the path whole
		}
		return name
	}
	return name + ":" + strings.Join(kv, ",")
}
