package decisionlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// tmpSuffix ends the name of a file being written; with its leading "." the
// name matches no reader's glob (decisions-*.parquet) and is skipped by
// readers of hidden files' conventions (Spark, pyarrow).
const tmpSuffix = ".parquet.tmp"

// partFile is the open file of one kind and hour partition, its rows
// encoded by enc.
type partFile[E fileEncoder] struct {
	kind       string
	dir        string // the hour directory
	tmp, final string
	f          *os.File
	enc        E
	rows       int // rows accepted, those enc still batches included
	deadline   time.Time
}

// fileEncoder encodes the rows of an open file.
type fileEncoder interface {
	// full reports that enc batches enough rows to hand them to the file.
	full() bool
	// flush hands the rows enc batches to the file.
	flush() error
	// close writes what is left and the footer.
	close() error
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
// queued at first: the file closes RollInterval after it. newEnc makes the
// encoder of its rows.
func openPart[E fileEncoder](w *Writer, kind string, hour, first time.Time, newEnc func(*Writer, *os.File) (E, error)) (*partFile[E], error) {
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
	p := &partFile[E]{
		kind:     kind,
		dir:      dir,
		tmp:      filepath.Join(dir, "."+base+tmpSuffix),
		final:    filepath.Join(dir, base+".parquet"),
		deadline: first.Add(w.cfg.RollInterval),
	}
	f, err := os.OpenFile(p.tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", p.tmp, err)
	}
	p.f = f
	if p.enc, err = newEnc(w, f); err != nil {
		_ = f.Close() // failed anyway
		return nil, errors.Join(err, os.Remove(p.tmp))
	}
	return p, nil
}

// metadata is the key-value metadata of kind's files, sorted by key (as
// parquet-go writes it).
func (w *Writer) metadata(kind string) []format.KeyValue {
	kv := []format.KeyValue{
		{Key: MetaSchema, Value: schemaName(kind)},
		{Key: MetaStoreRatio, Value: strconv.FormatFloat(w.cfg.StoreRatio, 'g', -1, 64)},
		{Key: MetaNode, Value: w.cfg.Node},
	}
	slices.SortFunc(kv, func(a, b format.KeyValue) int { return strings.Compare(a.Key, b.Key) })
	return kv
}

// eventsFile encodes the rows of an events file with parquet-go's writer,
// in batches.
type eventsFile struct {
	pw       *parquet.GenericWriter[Event]
	pending  []Event // rows not yet handed to pw
	grouped  int     // rows handed to pw since its last row group
	rowGroup int
}

// newEventsFile returns the encoder of an events file written to f.
func newEventsFile(w *Writer, f *os.File) (*eventsFile, error) {
	opts := []parquet.WriterOption{
		parquet.Compression(&fastSnappy{}),
		parquet.CreatedBy("sightline", "decisionlog", schemaName(kindEvents)),
	}
	for _, kv := range w.metadata(kindEvents) {
		opts = append(opts, parquet.KeyValueMetadata(kv.Key, kv.Value))
	}
	for _, path := range noBounds[kindEvents] {
		opts = append(opts, parquet.SkipPageBounds(path...), parquet.SkipPageStatistics(path...))
	}
	return &eventsFile{
		pw:       parquet.NewGenericWriter[Event](f, opts...),
		pending:  make([]Event, 0, writeBatch),
		rowGroup: w.cfg.RowGroupRows,
	}, nil
}

func (e *eventsFile) full() bool { return len(e.pending) >= writeBatch }

// flush hands the pending rows to the encoder, ending a row group every
// rowGroup rows.
func (e *eventsFile) flush() error {
	for rows := e.pending; len(rows) > 0; {
		n := min(len(rows), e.rowGroup-e.grouped)
		if _, err := e.pw.Write(rows[:n]); err != nil {
			return fmt.Errorf("write rows: %w", err)
		}
		rows = rows[n:]
		if e.grouped += n; e.grouped == e.rowGroup {
			e.grouped = 0
			if err := e.pw.Flush(); err != nil {
				return fmt.Errorf("write row group: %w", err)
			}
		}
	}
	e.pending = e.pending[:0]
	return nil
}

func (e *eventsFile) close() error {
	if err := e.flush(); err != nil {
		return err
	}
	return e.pw.Close()
}

// newDecisionsEnc returns the encoder of a decisions file written to f.
func newDecisionsEnc(w *Writer, f *os.File) (*decisionsFile, error) {
	tmpl, err := decisionsTemplate()
	if err != nil {
		return nil, err
	}
	if n := len(w.spare); n > 0 {
		e := w.spare[n-1]
		w.spare[n-1] = nil
		w.spare = w.spare[:n-1]
		e.reset(f)
		return e, nil
	}
	e := newDecisionsFile(f, tmpl, w.cfg.RowGroupRows, w.pageSize)
	e.kv = w.metadata(kindDecisions)
	return e, nil
}

// maxSpare bounds the encoders of closed decisions files kept for reuse.
const maxSpare = 2

// recycle keeps the encoder of a decisions file closed or abandoned, for a
// file opened later to reuse its buffers.
func recycle[E fileEncoder](w *Writer, enc E) {
	if e, ok := any(enc).(*decisionsFile); ok && len(w.spare) < maxSpare {
		w.spare = append(w.spare, e)
	}
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
		{"shadow_items", "list", "element", "item_id"},
		{"shadow_items", "list", "element", "score"},
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
	if err := os.MkdirAll(dir, 0o750); err != nil {
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

// filePart returns the open file of kind for the hour of t, opening one
// for a row queued at queued with newEnc. It returns nil when no file
// could be opened (counted and logged).
func filePart[E fileEncoder](ctx context.Context, w *Writer, files map[int64]*partFile[E], kind string, t, queued time.Time, newEnc func(*Writer, *os.File) (E, error)) (*partFile[E], int64) {
	// The hour of t, in Unix seconds (t.Truncate(time.Hour) is slower).
	sec := t.Unix()
	key := sec - (sec%3600+3600)%3600
	p := files[key]
	if p == nil {
		var err error
		if p, err = openPart(w, kind, time.Unix(key, 0).UTC(), queued, newEnc); err != nil {
			w.dropped(kind, reasonError, 1)
			w.logError(ctx, "decision log: open file", err)
			return nil, 0
		}
		files[key] = p
	}
	return p, key
}

// rowAdded counts a row added to p, hands the rows its encoder batches to
// the file when enough are, and closes the file when it is full.
func rowAdded[E fileEncoder](ctx context.Context, w *Writer, files map[int64]*partFile[E], key int64, p *partFile[E]) {
	p.rows++
	if p.enc.full() {
		if !flushPart(ctx, w, files, key, p) {
			return
		}
	}
	if p.rows >= w.cfg.MaxFileRows {
		_ = closePart(ctx, w, files, key, p) // counted and logged
	}
}

// flushPart hands the rows p's encoder batches to the file. On an error it
// abandons the file and reports false.
func flushPart[E fileEncoder](ctx context.Context, w *Writer, files map[int64]*partFile[E], key int64, p *partFile[E]) bool {
	if err := p.enc.flush(); err != nil {
		abandonPart(ctx, w, files, key, p, err)
		return false
	}
	return true
}

// closePart writes p's footer, fsyncs it, renames it to its final name and
// fsyncs the directory: only then is the file visible to readers. On an
// error the file is abandoned.
func closePart[E fileEncoder](ctx context.Context, w *Writer, files map[int64]*partFile[E], key int64, p *partFile[E]) error {
	delete(files, key)
	err := p.enc.close()
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
	recycle(w, p.enc)
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
func abandonPart[E fileEncoder](ctx context.Context, w *Writer, files map[int64]*partFile[E], key int64, p *partFile[E], err error) {
	delete(files, key)
	if p.f != nil {
		_ = p.f.Close() // the write already failed
	}
	rmErr := os.Remove(p.tmp)
	if errors.Is(rmErr, os.ErrNotExist) {
		rmErr = nil
	}
	recycle(w, p.enc)
	w.dropped(p.kind, reasonError, p.rows)
	w.log.LogAttrs(ctx, slog.LevelError, "decision log: file abandoned, its rows are lost",
		slog.String("kind", p.kind), slog.String("file", p.tmp), slog.Int("rows", p.rows),
		slog.Any("err", errors.Join(err, rmErr)))
}
