package evaluate

import (
	"cmp"
	"context"
	"slices"

	"github.com/sightline/sightline/internal/decisionlog"
)

// Source yields the rows of a decision log. The decision log's Parquet
// reader ([DirSource]) and [MemorySource] implement it. Run calls Events
// once, then Decisions once, each from a goroutine of its own (never both
// at a time); neither needs to be safe for concurrent use.
type Source interface {
	// Decisions calls fn with every decision row, in time order as far as
	// the source keeps it (the ftrl target learns in this order). fn does
	// not modify the row, and may keep a shallow copy of it: the row's
	// slices and strings must stay unchanged after the call (the Parquet
	// reader reads each batch into fresh rows). An error from fn ends the
	// walk and is returned.
	Decisions(ctx context.Context, fn func(*decisionlog.Decision) error) error
	// Events calls fn with every event row, in any order, under the same
	// rules.
	Events(ctx context.Context, fn func(*decisionlog.Event) error) error
}

// MemorySource is a [Source] over rows held in memory, for tests and for
// callers that collect decisions themselves (e.g. from a node's decision
// stream). Decisions are yielded sorted by time (stable), events as given.
type MemorySource struct {
	// DecisionRows and EventRows are the rows.
	DecisionRows []decisionlog.Decision
	EventRows    []decisionlog.Event
}

// Decisions implements Source.
func (m *MemorySource) Decisions(ctx context.Context, fn func(*decisionlog.Decision) error) error {
	idx := make([]int, len(m.DecisionRows))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		return m.DecisionRows[a].Time.Compare(m.DecisionRows[b].Time)
	})
	for n, i := range idx {
		if n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if err := fn(&m.DecisionRows[i]); err != nil {
			return err
		}
	}
	return nil
}

// Events implements Source.
func (m *MemorySource) Events(ctx context.Context, fn func(*decisionlog.Event) error) error {
	for i := range m.EventRows {
		if i%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if err := fn(&m.EventRows[i]); err != nil {
			return err
		}
	}
	return nil
}

// CountDecisions returns the number of decision rows.
func (m *MemorySource) CountDecisions(context.Context) (int64, error) {
	return int64(len(m.DecisionRows)), nil
}

// Counter is implemented by a Source that can count its decision rows
// cheaply (from file metadata), for a progress bar's total.
type Counter interface {
	CountDecisions(ctx context.Context) (int64, error)
}

var _ Counter = (*MemorySource)(nil)

// sortedKeys returns the keys of m sorted.
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// DirSource is a [Source] over the Parquet decision log under Dir (a
// node's <data-dir>/decisions), read with [decisionlog.ReadDecisions] and
// [decisionlog.ReadEvents]: files in path order (hour partitions in time
// order), rows in file order.
type DirSource struct {
	// Dir is the decisions directory.
	Dir string
}

// Decisions implements Source.
func (s DirSource) Decisions(ctx context.Context, fn func(*decisionlog.Decision) error) error {
	return decisionlog.ReadDecisions(ctx, s.Dir, fn)
}

// Events implements Source.
func (s DirSource) Events(ctx context.Context, fn func(*decisionlog.Event) error) error {
	return decisionlog.ReadEvents(ctx, s.Dir, fn)
}

// CountDecisions implements Counter from the files' footers.
func (s DirSource) CountDecisions(context.Context) (int64, error) {
	d, _, err := decisionlog.Count(s.Dir)
	return d, err
}

// StoreRatio returns the share of decisions the log kept
// (decisionlog.StoreRatio).
func (s DirSource) StoreRatio() (float64, error) {
	return decisionlog.StoreRatio(s.Dir)
}

// storeRatioer is implemented by a Source that knows the share of
// decisions its log kept.
type storeRatioer interface {
	StoreRatio() (float64, error)
}

var (
	_ Counter      = DirSource{}
	_ storeRatioer = DirSource{}
)
