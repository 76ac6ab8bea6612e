package decisionlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
)

// tmpSuffix ends the name of a file being written; with its leading "." the
// name matches no reader's glob (decisions-*.parquet) and is skipped by
// readers of hidden files' conventions (Spark, pyarrow).
const tmpSuffix = ".parquet.tmp"

// partFile is the open file of one kind and hour partition.
type partFile[T any] struct {
	kind       string
	dir        string // the hour directory
	tmp, final string
	f          *os.File
	pw         *parquet.GenericWriter[T]
	pending    []T // rows not yet handed to pw
	rows       int // rows accepted, pending included
	grouped    int // rows handed to pw since its last row group
	deadline   time.Time
}

// partitionDir returns the directory of the hour partition of hour (UTC),
// relative to the decisions directory.
func partitionDir(hour time.Time) string {
	hour = hour.UTC()
	return filepath.Join("date="+hour.Format("2006-01-02"), "hour="+hour.Format("15"))
}

// fileSafe maps a node name to the characters allowed in file names:
// letters, digits, '.', '_' and '-'; anything else becomes '_'.
func fileSafe(node string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '_'
	}, node)
}

// schemaName is the MetaSchema value of kind's files.
func schemaName(kind string) string {
	return kind + "/" + strconv.Itoa(SchemaVersion)
}

// openPart creates the temporary file of kind for hour, for a first row
// queued at first: the file closes RollInterval after it.
func openPart[T any](w *Writer, kind string, hour, first time.Time) (*partFile[T], error) {
	dir := filepath.Join(w.cfg.Dir, partitionDir(hour))
	if err := mkdirSynced(w.cfg.Dir, dir); err != nil {
		return nil, err
	}
	now := w.cfg.Now()
	stamp := now.UnixNano()
	if stamp <= w.lastName {
		stamp = w.lastName + 1
	}
	w.lastName = stamp
	base := kind + "-" + w.node + "-" + strconv.FormatInt(stamp, 10)
	p := &partFile[T]{
		kind:     kind,
		dir:      dir,
		tmp:      filepath.Join(dir, "."+base+tmpSuffix),
		final:    filepath.Join(dir, base+".parquet"),
		deadline: first.Add(w.cfg.RollInterval),
		pending:  make([]T, 0, writeBatch),
	}
	f, err := os.OpenFile(p.tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", p.tmp, err)
	}
	p.f = f
	opts := []parquet.WriterOption{
		parquet.Compression(&fastSnappy{}),
		parquet.CreatedBy("sightline", "decisionlog", schemaName(kind)),
		parquet.KeyValueMetadata(MetaSchema, schemaName(kind)),
		parquet.KeyValueMetadata(MetaStoreRatio, strconv.FormatFloat(w.cfg.StoreRatio, 'g', -1, 64)),
		parquet.KeyValueMetadata(MetaNode, w.cfg.Node),
	}
	for _, path := range noBounds[kind] {
		opts = append(opts, parquet.SkipPageBounds(path...), parquet.SkipPageStatistics(path...))
	}
	p.pw = parquet.NewGenericWriter[T](f, opts...)
	return p, nil
}

// noBounds lists, by kind, the columns written without min/max statistics
// (page headers, column index, column chunk): the unique ids, whose bounds
// skip nothing (they are not sorted), and the lists' elements. Computing
// them was a sixth of the writer's CPU, most of it comparing the strings of
// the pool's and the items' elements. Readers filter on the others (time,
// variant, model version, the user attributes), which keep theirs.
var noBounds = map[string][][]string{
	kindDecisions: {
		{"request_id"}, {"user_hash"}, {"trace_id"},
		{"recent_categories", "list", "element"},
		{"items", "list", "element", "item_id"},
		{"items", "list", "element", "category"},
		{"items", "list", "element", "score"},
		{"items", "list", "element", "reason"},
		{"items", "list", "element", "propensity"},
		{"pool", "list", "element", "item_id"},
		{"pool", "list", "element", "category"},
		{"pool", "list", "element", "score"},
		{"pool", "list", "element", "popularity"},
	},
	kindEvents: {{"request_id"}, {"event_id"}, {"item_id"}},
}

// mkdirSynced creates dir (below root) and, when it did not exist, syncs
// the directories whose entries changed, so a new partition survives a
// machine crash along with its files.
func mkdirSynced(root, dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create partition: %w", err)
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		if err := syncDir(d); err != nil {
			return err
		}
		if d == root || d == filepath.Dir(d) || !strings.HasPrefix(d, root) {
			return nil
		}
	}
}

// syncDir fsyncs a directory, making renames and creations in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return errors.Join(d.Sync(), d.Close())
}

// addRow adds row of kind, timed t and queued at queued, to the open file
// of its hour (opening one), and closes that file when it is full.
func addRow[T any](ctx context.Context, w *Writer, files map[int64]*partFile[T], kind string, t, queued time.Time, row T) {
	p, key, slot := rowSlot(ctx, w, files, kind, t, queued)
	if slot == nil {
		return
	}
	*slot = row
	rowAdded(ctx, w, files, key, p)
}

// rowSlot returns the next pending row of the open file of kind for the
// hour of t (opening one for a row queued at queued), for the caller to
// fill and then report with rowAdded; the row holds what the slot held
// before, its slices to reuse. It returns a nil row when no file could be
// opened (counted and logged).
func rowSlot[T any](ctx context.Context, w *Writer, files map[int64]*partFile[T], kind string, t, queued time.Time) (*partFile[T], int64, *T) {
	hour := t.UTC().Truncate(time.Hour)
	key := hour.Unix()
	p := files[key]
	if p == nil {
		var err error
		if p, err = openPart[T](w, kind, hour, queued); err != nil {
			w.dropped(kind, reasonError, 1)
			w.logError(ctx, "decision log: open file", err)
			return nil, 0, nil
		}
		files[key] = p
	}
	n := len(p.pending)
	if n < cap(p.pending) {
		p.pending = p.pending[:n+1]
	} else {
		var zero T
		p.pending = append(p.pending, zero)
	}
	return p, key, &p.pending[n]
}

// rowAdded counts the row rowSlot gave out as filled, hands the pending
// rows to the encoder when a batch is full, and closes the file when it is
// full.
func rowAdded[T any](ctx context.Context, w *Writer, files map[int64]*partFile[T], key int64, p *partFile[T]) {
	p.rows++
	if len(p.pending) >= writeBatch {
		if !flushPart(ctx, w, files, key, p) {
			return
		}
	}
	if p.rows >= w.cfg.MaxFileRows {
		_ = closePart(ctx, w, files, key, p) // counted and logged
	}
}

// flushPart hands p's pending rows to the encoder and ends a row group
// every RowGroupRows rows. On an error it abandons the file and reports
// false.
func flushPart[T any](ctx context.Context, w *Writer, files map[int64]*partFile[T], key int64, p *partFile[T]) bool {
	if err := p.write(w.cfg.RowGroupRows); err != nil {
		abandonPart(ctx, w, files, key, p, err)
		return false
	}
	return true
}

// write hands the pending rows to the encoder.
func (p *partFile[T]) write(rowGroup int) error {
	if len(p.pending) == 0 {
		return nil
	}
	for rows := p.pending; len(rows) > 0; {
		n := min(len(rows), rowGroup-p.grouped)
		if _, err := p.pw.Write(rows[:n]); err != nil {
			return fmt.Errorf("write rows: %w", err)
		}
		rows = rows[n:]
		if p.grouped += n; p.grouped == rowGroup {
			p.grouped = 0
			if err := p.pw.Flush(); err != nil {
				return fmt.Errorf("write row group: %w", err)
			}
		}
	}
	// The rows stay in the slice's backing array, stale, for rowSlot to
	// reuse their slices: the encoder copied every value.
	p.pending = p.pending[:0]
	return nil
}

// closePart writes p's footer, fsyncs it, renames it to its final name and
// fsyncs the directory: only then is the file visible to readers. On an
// error the file is abandoned.
func closePart[T any](ctx context.Context, w *Writer, files map[int64]*partFile[T], key int64, p *partFile[T]) error {
	delete(files, key)
	err := p.write(w.cfg.RowGroupRows)
	if err == nil {
		err = p.pw.Close()
	}
	if err == nil {
		err = p.f.Sync()
	}
	var size int64
	if err == nil {
		var st os.FileInfo
		if st, err = p.f.Stat(); err == nil {
			size = st.Size()
		}
	}
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(p.tmp, p.final)
	}
	if err != nil {
		p.f = nil
		abandonPart(ctx, w, files, key, p, err)
		return err
	}
	if err := syncDir(p.dir); err != nil {
		// The file is whole and visible; only its name might not survive a
		// machine crash.
		w.logError(ctx, "decision log: sync directory", err)
	}
	k := kindIndex(p.kind)
	w.met.written.WithLabelValues(p.kind).Add(float64(p.rows))
	w.cnt.written[k].Add(int64(p.rows))
	w.met.filesClosed.WithLabelValues(p.kind).Inc()
	w.met.lastWrite.Set(float64(w.cfg.Now().UnixNano()) / 1e9)
	w.diskBytes += size
	w.diskFiles++
	w.met.diskBytes.Set(float64(w.diskBytes))
	w.met.diskFiles.Set(float64(w.diskFiles))
	return nil
}

// abandonPart drops a failed file: its rows are counted as dropped and the
// temporary file is removed.
func abandonPart[T any](ctx context.Context, w *Writer, files map[int64]*partFile[T], key int64, p *partFile[T], err error) {
	delete(files, key)
	if p.f != nil {
		_ = p.f.Close() // the write already failed
	}
	rmErr := os.Remove(p.tmp)
	if errors.Is(rmErr, os.ErrNotExist) {
		rmErr = nil
	}
	w.dropped(p.kind, reasonError, p.rows)
	w.log.LogAttrs(ctx, slog.LevelError, "decision log: file abandoned, its rows are lost",
		slog.String("kind", p.kind), slog.String("file", p.tmp), slog.Int("rows", p.rows),
		slog.Any("err", errors.Join(err, rmErr)))
}
