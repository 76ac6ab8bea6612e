package model

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Arm is one variant of a Split and its share of users.
type Arm struct {
	// Name names the variant, e.g. "ftrl". It is used as a metric label:
	// 1..64 bytes of [A-Za-z0-9_.-].
	Name string
	// Weight is the relative share of users; weights need not sum to 100.
	// An arm with weight 0 gets no users.
	Weight float64
}

// Split divides users among variants for A/B tests.
type Split []Arm

// DefaultSplit sends half the users to the FTRL model and half to the
// popularity baseline. Callers must not modify it.
var DefaultSplit = Split{{Name: "ftrl", Weight: 50}, {Name: "popularity", Weight: 50}}

// ParseSplit parses a split written as comma-separated name=weight pairs,
// e.g. "ftrl=90,popularity=10". Names are distinct, weights are finite and
// non-negative and at least one is positive; otherwise the error wraps
// ErrInvalidSplit.
func ParseSplit(s string) (Split, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidSplit)
	}
	var sp Split
	for part := range strings.SplitSeq(s, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("%w: %q: want name=weight", ErrInvalidSplit, part)
		}
		weight, err := strconv.ParseFloat(strings.TrimSpace(w), 64)
		if err != nil {
			// The parse error is detail, not a promise (STYLE: %w only for
			// what callers may match): callers match ErrInvalidSplit.
			return nil, fmt.Errorf("%w: weight of %q: %v", ErrInvalidSplit, name, err) //nolint:errorlint // see above
		}
		sp = append(sp, Arm{Name: strings.TrimSpace(name), Weight: weight})
	}
	if err := sp.Validate(); err != nil {
		return nil, err
	}
	return sp, nil
}

// Validate reports whether s can assign users: at least one arm, distinct
// valid names, finite non-negative weights with a positive total.
func (s Split) Validate() error {
	if len(s) == 0 {
		return fmt.Errorf("%w: no arms", ErrInvalidSplit)
	}
	var total float64
	for i, a := range s {
		if !validArmName(a.Name) {
			return fmt.Errorf("%w: arm name %q: want 1..64 bytes of [A-Za-z0-9_.-]", ErrInvalidSplit, a.Name)
		}
		for _, b := range s[:i] {
			if b.Name == a.Name {
				return fmt.Errorf("%w: arm %q repeated", ErrInvalidSplit, a.Name)
			}
		}
		if !(a.Weight >= 0) || math.IsInf(a.Weight, 0) {
			return fmt.Errorf("%w: arm %q: weight %v: want a finite number >= 0", ErrInvalidSplit, a.Name, a.Weight)
		}
		total += a.Weight
	}
	if !(total > 0) || math.IsInf(total, 0) {
		return fmt.Errorf("%w: total weight %v: want a positive finite number", ErrInvalidSplit, total)
	}
	return nil
}

func validArmName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// String formats s as ParseSplit reads it.
func (s Split) String() string {
	var b strings.Builder
	for i, a := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(a.Name)
		b.WriteByte('=')
		b.WriteString(strconv.FormatFloat(a.Weight, 'g', -1, 64))
	}
	return b.String()
}

// splitSalt separates variant assignment from every other use of the user id
// hash. Changing it reassigns every user.
const splitSalt = "sightline/variant/v1\x00"

// Assign returns the name of the variant of the user with id userID. It is
// a pure function of userID and s: the same in every process and across
// restarts, so a user stays in one arm. Each arm receives a share of users
// proportional to its weight. Assign returns "" for a split that does not
// validate. It is safe for concurrent use and does not allocate.
func (s Split) Assign(userID string) string {
	var total float64
	for _, a := range s {
		if !(a.Weight >= 0) || math.IsInf(a.Weight, 0) {
			return ""
		}
		total += a.Weight
	}
	if !(total > 0) || math.IsInf(total, 0) {
		return ""
	}
	h := mix64(fnvString(fnvString(fnvOffset, splitSalt), userID))
	u := float64(h>>11) / (1 << 53) * total // uniform in [0, total)
	last := ""
	for _, a := range s {
		if a.Weight == 0 {
			continue
		}
		if u < a.Weight {
			return a.Name
		}
		u -= a.Weight
		last = a.Name
	}
	return last // rounding left u at or above the last weight
}

// canarySalt separates the canary draw of a rollout from the variant
// assignment, so the challenger's users are a uniform sample of a
// variant's users. Changing it moves every canary user.
const canarySalt = "sightline/canary/v1\x00"

// InCanary reports whether the user with id userID is among the share
// (0..1) of users a challenger serves. It is a pure function of userID and
// share, monotone in share: a user served at 5% is served at 25% too, so a
// growing canary never switches a user back and forth. It does not
// allocate.
func InCanary(userID string, share float64) bool {
	if !(share > 0) {
		return false
	}
	h := mix64(fnvString(fnvString(fnvOffset, canarySalt), userID))
	return float64(h>>11)/(1<<53) < share
}
