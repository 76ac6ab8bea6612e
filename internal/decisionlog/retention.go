package decisionlog

import (
	"cmp"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// closedFile is a closed Parquet file of the partition layout.
type closedFile struct {
	path  string
	dir   string    // its hour directory
	hour  time.Time // the hour partition's start
	stamp int64     // the unix-nanos stamp of its name
	size  int64
}

// hourPartition is one date=/hour= directory.
type hourPartition struct {
	dir   string
	hour  time.Time
	files []closedFile
}

// closedKind returns the kind of a closed file's base name ("" for any
// other name: temporary files, foreign files).
func closedKind(name string) string {
	if !strings.HasSuffix(name, ".parquet") {
		return ""
	}
	for _, k := range []string{kindDecisions, kindEvents} {
		if strings.HasPrefix(name, k+"-") {
			return k
		}
	}
	return ""
}

// nameStamp is the stamp at the end of a file's base name, 0 if none.
func nameStamp(name string) int64 {
	name = strings.TrimSuffix(name, ".parquet")
	n, _ := strconv.ParseInt(name[strings.LastIndexByte(name, '-')+1:], 10, 64)
	return n
}

// scanPartitions lists the hour partitions under root, oldest first, with
// their closed files.
func scanPartitions(root string) ([]hourPartition, error) {
	dates, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var parts []hourPartition
	for _, d := range dates {
		day, ok := strings.CutPrefix(d.Name(), "date=")
		if !d.IsDir() || !ok {
			continue
		}
		t0, err := time.Parse("2006-01-02", day)
		if err != nil {
			continue
		}
		hours, err := os.ReadDir(filepath.Join(root, d.Name()))
		if err != nil {
			return nil, err
		}
		for _, h := range hours {
			hh, ok := strings.CutPrefix(h.Name(), "hour=")
			n, err := strconv.Atoi(hh)
			if !h.IsDir() || !ok || err != nil || n < 0 || n > 23 {
				continue
			}
			p := hourPartition{dir: filepath.Join(root, d.Name(), h.Name()), hour: t0.Add(time.Duration(n) * time.Hour)}
			files, err := os.ReadDir(p.dir)
			if err != nil {
				return nil, err
			}
			for _, f := range files {
				if f.IsDir() || closedKind(f.Name()) == "" {
					continue
				}
				info, err := f.Info()
				if err != nil {
					continue // removed meanwhile
				}
				p.files = append(p.files, closedFile{
					path: filepath.Join(p.dir, f.Name()), dir: p.dir, hour: p.hour,
					stamp: nameStamp(f.Name()), size: info.Size(),
				})
			}
			parts = append(parts, p)
		}
	}
	slices.SortFunc(parts, func(a, b hourPartition) int { return a.hour.Compare(b.hour) })
	return parts, nil
}

// enforceRetention deletes the hour partitions older than Retention, then
// the oldest closed files while their total exceeds MaxBytes, and sets the
// disk gauges. Partitions with an open file are kept.
func (w *Writer) enforceRetention(ctx context.Context) {
	parts, err := scanPartitions(w.cfg.Dir)
	if err != nil {
		w.logError(ctx, "decision log: scan for retention", err)
		return
	}
	open := w.openHours()
	now := w.cfg.Now()
	var kept []closedFile
	for _, p := range parts {
		if w.cfg.Retention > 0 && !open[p.dir] && p.hour.Add(time.Hour).Before(now.Add(-w.cfg.Retention)) {
			if err := os.RemoveAll(p.dir); err != nil {
				w.logError(ctx, "decision log: retention", err)
				kept = append(kept, p.files...)
				continue
			}
			w.deleted(retainAge, p.files...)
			removeIfEmpty(filepath.Dir(p.dir))
			continue
		}
		kept = append(kept, p.files...)
	}
	var total int64
	for _, f := range kept {
		total += f.size
	}
	if w.cfg.MaxBytes > 0 && total > w.cfg.MaxBytes {
		slices.SortStableFunc(kept, func(a, b closedFile) int {
			return cmp.Or(a.hour.Compare(b.hour), cmp.Compare(a.stamp, b.stamp))
		})
		n := 0
		for ; n < len(kept) && total > w.cfg.MaxBytes; n++ {
			f := kept[n]
			if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				w.logError(ctx, "decision log: retention", err)
				break
			}
			total -= f.size
			w.deleted(retainSize, f)
			if !open[f.dir] {
				removeIfEmpty(f.dir)
				removeIfEmpty(filepath.Dir(f.dir))
			}
		}
		kept = kept[n:]
	}
	w.diskBytes, w.diskFiles = total, int64(len(kept))
	w.met.diskBytes.Set(float64(total))
	w.met.diskFiles.Set(float64(len(kept)))
}

// deleted counts files deleted by retention for reason.
func (w *Writer) deleted(reason string, files ...closedFile) {
	var size int64
	for _, f := range files {
		size += f.size
	}
	w.met.deletedFiles.WithLabelValues(reason).Add(float64(len(files)))
	w.met.deletedBytes.WithLabelValues(reason).Add(float64(size))
}

// removeIfEmpty removes dir when it has no entries.
func removeIfEmpty(dir string) {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) == 0 {
		_ = os.Remove(dir) // a file created meanwhile keeps it
	}
}

// removeAbandoned removes the temporary files this node's earlier runs
// left behind (killed before closing them): their rows are lost, and they
// are counted and logged.
func (w *Writer) removeAbandoned(ctx context.Context) {
	prefixes := []string{"." + kindDecisions + "-" + w.node + "-", "." + kindEvents + "-" + w.node + "-"}
	var n int
	var bytes int64
	// Walked and removed through an os.Root: a symlink swapped in during
	// the walk cannot point a removal outside the directory.
	root, err := os.OpenRoot(w.cfg.Dir)
	if err != nil {
		w.logError(ctx, "decision log: remove abandoned files", err)
		return
	}
	defer root.Close()
	err = fs.WalkDir(root.FS(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() || !strings.HasSuffix(name, tmpSuffix) ||
			!(strings.HasPrefix(name, prefixes[0]) || strings.HasPrefix(name, prefixes[1])) {
			return nil
		}
		if info, err := d.Info(); err == nil {
			bytes += info.Size()
		}
		if err := root.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		w.logError(ctx, "decision log: remove abandoned files", err)
	}
	if n > 0 {
		w.met.abandoned.Add(float64(n))
		w.log.LogAttrs(ctx, slog.LevelWarn, "decision log: removed files an earlier run left open (killed before closing them); their rows are lost",
			slog.Int("files", n), slog.Int64("bytes", bytes))
	}
}
