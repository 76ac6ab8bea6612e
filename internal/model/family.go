package model

import (
	"math"
	"slices"
)

// Family is a named model recipe that a variant of the split can serve:
// the model's settings and how its candidates are found. Each family's
// variant learns its own model from every event.
type Family struct {
	// Name is the family's name, the variant name that serves it (its
	// Config.Name and the start of its versions).
	Name string
	// Summary says in a sentence what the family is.
	Summary string
	// Config holds the family's own settings; Apply lays them over a
	// node's model configuration.
	Config Config
	// Discover reports that the family's variant takes its candidates from
	// the candidate index's discovery lists of the categories it ranks
	// best, instead of the popularity lists: the family explores items
	// popularity has not found (see Config.Optimism).
	Discover bool
}

// families are the built-in families, the first the champion's.
var families = []Family{
	{
		Name:    DefaultName,
		Summary: "FTRL-Proximal logistic regression over hashed user, context, item and category features and their crosses",
		Config:  Config{Name: DefaultName},
	},
	{
		Name: "ftrl-ucb",
		Summary: "ftrl that learns position bias apart (Positions), explores items it knows little about with an upper-confidence bonus (Optimism) " +
			"among discovery candidates of the categories it ranks best, learns faster (alpha 0.3, L1 0.1) and shrinks what it learns of " +
			"an item from few clicks harder (L2 6)",
		// L2 6 is the prior precision of an item's weight that the
		// learning quality harness found best (docs/quality.md): with
		// alpha 0.3 and beta 1 a coordinate's prior precision is
		// β/α + L2 ≈ 9, near the discovery's discoverWeightPrior, so that
		// an item lucky in its first clicks does not displace a known good
		// one; coordinates with much evidence (the crosses) barely feel it.
		Config:   Config{Name: "ftrl-ucb", Alpha: 0.3, L1: 0.1, L2: 6, Positions: true, Optimism: 2},
		Discover: true,
	},
}

// Families returns the built-in model families, the champion's ("ftrl")
// first. Callers must not modify the result.
func Families() []Family { return families }

// LookupFamily returns the built-in family named name.
func LookupFamily(name string) (Family, bool) {
	i := slices.IndexFunc(families, func(f Family) bool { return f.Name == name })
	if i < 0 {
		return Family{}, false
	}
	return families[i], true
}

// Apply returns base with the family's settings laid over it: its name and
// every non-zero field of its Config. The rest of base (bits, clock,
// evaluation window, version period) is kept.
func (f Family) Apply(base Config) Config {
	c := f.Config
	base.Name = f.Name
	if c.Alpha != 0 {
		base.Alpha = c.Alpha
	}
	if c.Beta != 0 {
		base.Beta = c.Beta
	}
	if c.L1 != 0 {
		base.L1 = c.L1
	}
	if c.L2 != 0 {
		base.L2 = c.L2
	}
	if c.Positions {
		base.Positions = true
	}
	if c.Optimism != 0 {
		base.Optimism = c.Optimism
	}
	if c.OptimismPrior != 0 {
		base.OptimismPrior = c.OptimismPrior
	}
	return base
}

// ItemEvidence returns the weight of item id's own feature and the
// evidence behind it (its coordinate's accumulated squared gradient: about
// impressions × CTR × (1 − CTR)), learned apart from position with
// Config.Positions. The candidate index's discovery judges the items it
// evaluates by them. It is safe for concurrent use and does not allocate.
func (m *Model) ItemEvidence(id string) (weight, n float64) {
	i := index(itemHash(id)) & m.mask
	return m.weight(i), math.Float64frombits(m.coords[i].n.Load())
}
