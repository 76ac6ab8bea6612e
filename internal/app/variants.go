package app

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/faults"
	"github.com/sightline/sightline/internal/learn"
	"github.com/sightline/sightline/internal/model"
)

// familyModels are the models of the split's arms that name a model family
// other than the champion's (model.Families, e.g. "ftrl-ucb"): each variant
// serves a model of its own, which learns from every event the champion
// learns from and is snapshotted with it. Only a --role all node serves
// them: a cluster's trainer publishes the champion alone.
type familyModels struct {
	names    []string
	scorers  []*engine.ModelScorer // by names
	discover []string              // the variants whose family discovers
}

// familyPath is where the model of family variant name is snapshotted.
func (n *Node) familyPath(name string) string {
	return filepath.Join(n.cfg.DataDir, "model-"+name+".snap")
}

// buildFamilies builds (or restores from their snapshots) the models of
// the split's family variants.
func (n *Node) buildFamilies(split model.Split) (*familyModels, error) {
	fm := &familyModels{}
	for _, arm := range split {
		f, ok := model.LookupFamily(arm.Name)
		if !ok || f.Name == model.DefaultName {
			continue // the champion, popularity, or not a model the engine knows
		}
		if n.cfg.Role != RoleAll {
			return nil, fmt.Errorf("variant %q: a model family beside ftrl is served by a --role all node only", arm.Name)
		}
		cfg := f.Apply(n.cfg.Model)
		// A family model's snapshot is taken with the champion's: without
		// the champion's, the updater learns the log from its start again
		// and the family model must start over too.
		m, err := (*model.Model)(nil), os.ErrNotExist
		if n.restore.ModelSnapshot == "loaded" {
			m, _, err = model.LoadFile(n.familyPath(f.Name), cfg)
		}
		switch {
		case err == nil:
			n.logger.Info("variant model restored", slog.String("variant", f.Name), slog.String("version", m.Version()))
		case errors.Is(err, os.ErrNotExist):
			m, err = model.New(cfg)
		case errors.Is(err, model.ErrCorruptSnapshot), errors.Is(err, model.ErrIncompatibleSnapshot):
			n.quarantine(n.familyPath(f.Name), err)
			m, err = model.New(cfg)
		}
		if err != nil {
			return nil, fmt.Errorf("variant %q model: %w", f.Name, err)
		}
		fm.names = append(fm.names, f.Name)
		fm.scorers = append(fm.scorers, engine.NewModelScorer(m))
		if f.Discover {
			fm.discover = append(fm.discover, f.Name)
		}
	}
	return fm, nil
}

// addScorers adds the family variants' scorers to scorers, behind the
// node's fault switches as the champion's is.
func (fm *familyModels) addScorers(scorers map[string]engine.Scorer, fs *faults.Set) map[string]engine.Scorer {
	if fm == nil {
		return scorers
	}
	for i, name := range fm.names {
		scorers[name] = faults.Scorer{ModelScorer: fm.scorers[i], Faults: fs}
	}
	return scorers
}

// learner returns base, teaching the family models too.
func (fm *familyModels) learner(base learn.Learner) learn.Learner {
	if fm == nil || len(fm.scorers) == 0 {
		return base
	}
	return familyLearner{base: base, models: fm.scorers}
}

// save snapshots every family model with meta (the champion's: the same
// bus positions, taken while the updater is paused).
func (fm *familyModels) save(n *Node, meta model.SnapshotMeta) error {
	if fm == nil {
		return nil
	}
	for i, name := range fm.names {
		m := fm.scorers[i].Model()
		meta.Updates = m.Updates()
		if err := m.SaveFile(n.familyPath(name), meta); err != nil {
			return fmt.Errorf("variant %q: %w", name, err)
		}
	}
	return nil
}

// discovering returns the variants whose family discovers.
func (fm *familyModels) discovering() []string {
	if fm == nil {
		return nil
	}
	return fm.discover
}

// evals returns each family model's online evaluation, by variant.
func (fm *familyModels) evals() map[string]model.EvalStats {
	if fm == nil || len(fm.names) == 0 {
		return nil
	}
	out := make(map[string]model.EvalStats, len(fm.names))
	for i, name := range fm.names {
		out[name] = fm.scorers[i].Model().Eval()
	}
	return out
}

// familyLearner is the model updater's learner when family variants are
// served: every model learns every event, the champion's prediction is the
// one returned (its online evaluation is the node's).
type familyLearner struct {
	base   learn.Learner
	models []*engine.ModelScorer
}

// Learn implements learn.Learner.
func (l familyLearner) Learn(x *model.Context, it event.Item, lb model.Label) float64 {
	for _, s := range l.models {
		s.Learn(x, it, lb)
	}
	return l.base.Learn(x, it, lb)
}
