package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/sightline/sightline/internal/features"
	"github.com/sightline/sightline/internal/ingest"
	"github.com/sightline/sightline/internal/model"
)

// Consumer names: a fixed set, used as metric labels and Kafka group
// suffixes.
const (
	consumerModel    = "model"
	consumerFeatures = "features"
	consumerIndex    = "index"
	consumerStats    = "engagement"
)

func (n *Node) modelPath() string    { return filepath.Join(n.cfg.DataDir, "model.snap") }
func (n *Node) featuresPath() string { return filepath.Join(n.cfg.DataDir, "features.snap") }

// quarantine renames a corrupt snapshot aside, so it is kept for analysis
// and never loaded again.
func (n *Node) quarantine(path string, err error) {
	bad := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405")
	attrs := []any{slog.String("path", path), slog.String("moved_to", bad), slog.Any("err", err)}
	if rerr := os.Rename(path, bad); rerr != nil {
		attrs = append(attrs, slog.Any("rename_err", rerr))
	}
	n.logger.Error("snapshot corrupt: not loaded, starting from the event log", attrs...)
	n.restore.CorruptSnapshots = append(n.restore.CorruptSnapshots, filepath.Base(path))
}

// restoreModel loads the model snapshot of a single node and the bus
// positions it includes; without one, a new model starts at the oldest
// retained event.
func (n *Node) restoreModel(ctx context.Context) (*model.Model, error) {
	m, meta, err := model.LoadFile(n.modelPath(), n.cfg.Model)
	switch {
	case err == nil:
		n.modelExtra = meta.Extra
		from, ok := restoredOffsets(n.log, meta.Extra[busOffsetsKey], meta.Offset)
		if !ok {
			n.logger.Warn("model snapshot was taken on another event bus: keeping its weights, consuming this bus from its start", slog.String("bus", n.log.ID()))
			if from, err = n.log.Start(ctx, consumerModel, false); err != nil {
				return nil, fmt.Errorf("event bus start: %w", err)
			}
		}
		n.modelFrom = from
		n.restore.ModelSnapshot, n.restore.ModelOffset, n.restore.ModelOffsets = "loaded", from.Sum(), from
		n.logger.Info("model snapshot restored", slog.Uint64("offset", from.Sum()), slog.String("version", m.Version()), slog.Uint64("updates", m.Updates()))
		return m, nil
	case errors.Is(err, os.ErrNotExist):
		n.restore.ModelSnapshot = "none"
	case errors.Is(err, model.ErrCorruptSnapshot):
		n.restore.ModelSnapshot = "corrupt"
		n.quarantine(n.modelPath(), err)
	default:
		return nil, fmt.Errorf("load model snapshot: %w", err)
	}
	if m, err = model.New(n.cfg.Model); err != nil {
		return nil, err
	}
	n.modelFrom, err = n.log.Start(ctx, consumerModel, false)
	return m, err
}

// restoreFeatures loads the feature snapshot and returns the first journal
// generation to replay. Redis keeps its own state: its activity updater
// resumes from the position the bus committed for it.
func (n *Node) restoreFeatures(ctx context.Context) (uint64, error) {
	var err error
	if n.mem == nil {
		n.restore.FeatureSnapshot = "redis"
		n.featFrom, err = n.log.Start(ctx, consumerFeatures, true)
		return 0, err
	}
	off, err := n.mem.LoadFile(n.featuresPath())
	switch {
	case err == nil:
		n.featFrom = ingest.Offsets{0: off}
		if n.log.ID() != BusEmbedded {
			raw, rerr := loadOffsets(n.featuresPath() + ".offsets")
			if rerr != nil {
				return 0, rerr
			}
			from, ok := restoredOffsets(n.log, raw, off)
			if !ok {
				n.logger.Warn("feature snapshot was taken on another event bus: consuming this bus from its start", slog.String("bus", n.log.ID()))
				if from, err = n.log.Start(ctx, consumerFeatures, false); err != nil {
					return 0, fmt.Errorf("event bus start: %w", err)
				}
			}
			n.featFrom = from
		}
		n.restore.FeatureSnapshot, n.restore.FeatureOffset = "loaded", n.featFrom.Sum()
		b, rerr := os.ReadFile(n.featuresPath() + ".journal")
		var gen uint64
		if rerr == nil {
			if _, err := fmt.Sscan(string(b), &gen); err != nil {
				n.logger.Warn("feature snapshot's journal generation unreadable: replaying every journal", slog.Any("err", err))
				gen = 0
			}
		}
		return gen, nil
	case errors.Is(err, os.ErrNotExist):
		n.restore.FeatureSnapshot = "none"
	case errors.Is(err, features.ErrCorruptSnapshot):
		n.restore.FeatureSnapshot = "corrupt"
		n.quarantine(n.featuresPath(), err)
	default:
		return 0, fmt.Errorf("load feature snapshot: %w", err)
	}
	n.featFrom, err = n.log.Start(ctx, consumerFeatures, false)
	return 0, err
}

// Snapshot saves the model and the in-memory feature store with the bus
// positions they include (per partition, in the model snapshot's extra data
// and beside the feature snapshot). Each updater is paused only while its
// state is copied out. A Redis feature store is not snapshotted: Redis is
// its store of record. Nodes of a cluster keep no local state: the trainer
// publishes its model instead, and Snapshot does nothing there.
func (n *Node) Snapshot(ctx context.Context) error {
	if n.cfg.Role != RoleAll {
		return nil
	}
	n.snapMu.Lock()
	defer n.snapMu.Unlock()
	start := time.Now()
	m := n.model()
	var at ingest.Offsets
	err := n.path.model.Pause(func(applied ingest.Offsets) error {
		at = applied
		extra, err := n.snapshotExtra(applied)
		if err != nil {
			return err
		}
		meta := model.SnapshotMeta{Offset: applied.Sum(), Created: n.cfg.Now(), Updates: m.Updates(), Extra: extra}
		if err := n.families.save(n, meta); err != nil {
			return err
		}
		return m.SaveFile(n.modelPath(), meta)
	})
	if err != nil {
		return fmt.Errorf("model snapshot: %w", err)
	}
	if n.mem != nil {
		if err := n.snapshotFeatures(ctx); err != nil {
			return err
		}
	}
	n.logger.InfoContext(ctx, "snapshot saved", slog.Duration("took", time.Since(start)), slog.Uint64("model_offset", at.Sum()), slog.String("model_version", m.Version()))
	return nil
}

// snapshotExtra is what travels with the model beside its weights: the bus
// positions it includes and the feature baseline it was trained on.
func (n *Node) snapshotExtra(applied ingest.Offsets) (map[string]json.RawMessage, error) {
	extra := n.baselineExtra()
	if extra == nil {
		extra = make(map[string]json.RawMessage, 1)
	}
	raw, err := json.Marshal(busOffsets{Bus: n.log.ID(), Offsets: applied})
	if err != nil {
		return nil, err
	}
	extra[busOffsetsKey] = raw
	return extra, nil
}

// snapshotFeatures saves the in-memory feature store and cuts the journal
// of imports it includes. The offsets file is written after the snapshot:
// if a crash falls between the two, the next start applies again a suffix
// of the events, which changes nothing (the store's Apply).
func (n *Node) snapshotFeatures(ctx context.Context) error {
	gen, err := n.journal.Cut()
	if err != nil {
		return fmt.Errorf("cut journal: %w", err)
	}
	var featAt ingest.Offsets
	err = n.path.activity.Pause(func(applied ingest.Offsets) error {
		featAt = applied
		return n.mem.SaveFile(n.featuresPath(), applied.Sum())
	})
	if err != nil {
		return fmt.Errorf("feature snapshot: %w", err)
	}
	if err := saveOffsets(n.featuresPath()+".offsets", n.log, featAt); err != nil {
		return fmt.Errorf("feature snapshot offsets: %w", err)
	}
	if err := writeFileAtomic(n.featuresPath()+".journal", []byte(fmt.Sprint(gen))); err != nil {
		return err
	}
	if err := n.journal.Prune(gen); err != nil {
		n.logger.WarnContext(ctx, "prune journal", slog.Any("err", err))
	}
	return nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	// The node's own data, like every file under the data directory.
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
