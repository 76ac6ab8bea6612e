package decisionlog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
)

// Errors of the readers.
var (
	// ErrUnknownSchema reports a file whose MetaSchema is missing or names
	// a kind or version this reader does not know.
	ErrUnknownSchema = errors.New("decisionlog: unknown file schema")
	// ErrMixedStoreRatio reports a log whose files were written with
	// different store ratios; [Files] gives each file's.
	ErrMixedStoreRatio = errors.New("decisionlog: files of different store ratios")
)

// readBatch is the number of rows read from a file at a time.
const readBatch = 256

// File is one closed file of the log, as its footer describes it.
type File struct {
	// Path is the file's path (dir joined with its relative path).
	Path string
	// Kind is "decisions" or "events".
	Kind string
	// Rows is the number of rows.
	Rows int64
	// StoreRatio is the share of decisions kept when it was written
	// ([MetaStoreRatio]).
	StoreRatio float64
	// Node is the process that wrote it ([MetaNode]).
	Node string
}

// Files lists the closed files of the log under dir, at any depth, sorted
// by path, reading only their footers. Files being written (a leading "."
// and a .tmp suffix) and files of other names are skipped; a file of an
// unknown schema fails with ErrUnknownSchema.
func Files(dir string) ([]File, error) {
	var out []File
	for _, kind := range []string{kindDecisions, kindEvents} {
		paths, err := listFiles(dir, kind)
		if err != nil {
			return nil, err
		}
		for _, path := range paths {
			fi, err := footer(path, kind)
			if err != nil {
				return nil, err
			}
			out = append(out, fi)
		}
	}
	slices.SortFunc(out, func(a, b File) int { return cmp.Compare(a.Path, b.Path) })
	return out, nil
}

// FilesSince is [Files] restricted to the hour partitions of dir
// (date=YYYY-MM-DD/hour=HH) from the one holding t on, without reading the
// older partitions' footers: what a reader following the log from t
// needs.
func FilesSince(dir string, t time.Time) ([]File, error) {
	from := t.UTC().Truncate(time.Hour)
	dates, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("decisionlog: list partitions: %w", err)
	}
	var out []File
	for _, de := range dates {
		day, ok := strings.CutPrefix(de.Name(), "date=")
		if !ok || !de.IsDir() {
			continue
		}
		hours, err := os.ReadDir(filepath.Join(dir, de.Name()))
		if err != nil {
			return nil, fmt.Errorf("decisionlog: list partitions: %w", err)
		}
		for _, he := range hours {
			h, ok := strings.CutPrefix(he.Name(), "hour=")
			at, err := time.Parse("2006-01-02 15", day+" "+h)
			if !ok || !he.IsDir() || err != nil || at.Before(from) {
				continue
			}
			files, err := Files(filepath.Join(dir, de.Name(), he.Name()))
			if err != nil {
				return nil, err
			}
			out = append(out, files...)
		}
	}
	return out, nil
}

// Count returns the rows of the decisions files and of the events files
// under dir, from their footers (for a progress bar).
func Count(dir string) (decisions, events int64, err error) {
	files, err := Files(dir)
	if err != nil {
		return 0, 0, err
	}
	for _, f := range files {
		if f.Kind == kindDecisions {
			decisions += f.Rows
		} else {
			events += f.Rows
		}
	}
	return decisions, events, nil
}

// StoreRatio returns the store ratio the files under dir were written with
// (1 when there are none). A log whose files disagree fails with
// ErrMixedStoreRatio: reweight file by file with [Files] instead.
func StoreRatio(dir string) (float64, error) {
	files, err := Files(dir)
	if err != nil {
		return 0, err
	}
	if len(files) == 0 {
		return 1, nil
	}
	r := files[0].StoreRatio
	for _, f := range files[1:] {
		if f.StoreRatio != r {
			return 0, fmt.Errorf("%w: %v in %s, %v in %s", ErrMixedStoreRatio, r, files[0].Path, f.StoreRatio, f.Path)
		}
	}
	return r, nil
}

// ReadDecisions calls fn with every decision of the closed decisions files
// under dir (any depth), file by file in path order and row by row in file
// order, streaming: it holds one batch of rows at a time. d is valid only
// during the call; a copy of *d stays valid. It stops at the first error
// of fn, of a file (ErrUnknownSchema among them) or of ctx.
func ReadDecisions(ctx context.Context, dir string, fn func(d *Decision) error) error {
	return readAll(ctx, dir, kindDecisions, fn)
}

// ReadEvents is [ReadDecisions] for the events files.
func ReadEvents(ctx context.Context, dir string, fn func(e *Event) error) error {
	return readAll(ctx, dir, kindEvents, fn)
}

// ReadFile streams the rows of one closed file f (from [Files]) to
// decisions or to events, by its kind; the other may be nil. A caller
// that follows a log as it grows reads each new file once this way.
func ReadFile(ctx context.Context, f File, decisions func(*Decision) error, events func(*Event) error) error {
	switch {
	case f.Kind == kindDecisions && decisions != nil:
		return readFile(ctx, f.Path, kindDecisions, make([]Decision, readBatch), decisions)
	case f.Kind == kindEvents && events != nil:
		return readFile(ctx, f.Path, kindEvents, make([]Event, readBatch), events)
	}
	return nil
}

// listFiles returns the closed files of kind under dir, sorted by path.
func listFiles(dir, kind string) ([]string, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && closedKind(d.Name()) == kind {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("decisionlog: list files: %w", err)
	}
	slices.Sort(paths)
	return paths, nil
}

// openParquet opens path and checks that it holds kind's schema.
func openParquet(path, kind string) (*os.File, *parquet.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("decisionlog: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("decisionlog: %w", err), f.Close())
	}
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("decisionlog: open %s: %w", path, err), f.Close())
	}
	if v, _ := pf.Lookup(MetaSchema); !knownSchema(v, kind) {
		return nil, nil, errors.Join(fmt.Errorf("%w: %s has %s %q, want %q or an older version of it", ErrUnknownSchema, path, MetaSchema, v, schemaName(kind)), f.Close())
	}
	return f, pf, nil
}

// footer reads what File reports of path.
func footer(path, kind string) (File, error) {
	f, pf, err := openParquet(path, kind)
	if err != nil {
		return File{}, err
	}
	defer f.Close() // read-only
	fi := File{Path: path, Kind: kind, Rows: pf.NumRows(), StoreRatio: 1}
	fi.Node, _ = pf.Lookup(MetaNode)
	if v, ok := pf.Lookup(MetaStoreRatio); ok {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || !(r > 0 && r <= 1) {
			return File{}, fmt.Errorf("%w: %s has %s %q", ErrUnknownSchema, path, MetaStoreRatio, v)
		}
		fi.StoreRatio = r
	}
	return fi, nil
}

// readAll streams the rows of every closed file of kind under dir to fn.
func readAll[T any](ctx context.Context, dir, kind string, fn func(*T) error) error {
	paths, err := listFiles(dir, kind)
	if err != nil {
		return err
	}
	buf := make([]T, readBatch)
	for _, path := range paths {
		if err := readFile(ctx, path, kind, buf, fn); err != nil {
			return err
		}
	}
	return nil
}

// readFile streams the rows of one file to fn, through buf.
func readFile[T any](ctx context.Context, path, kind string, buf []T, fn func(*T) error) (err error) {
	f, pf, err := openParquet(path, kind)
	if err != nil {
		return err
	}
	defer f.Close() // read-only
	r := parquet.NewGenericReader[T](pf)
	defer func() { err = errors.Join(err, r.Close()) }()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Fresh rows each batch, so that copies fn kept do not share
		// slices with the next batch.
		clear(buf)
		n, rerr := r.Read(buf)
		for i := range n {
			if err := fn(&buf[i]); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("decisionlog: read %s: %w", path, rerr)
		}
	}
}

// knownSchema reports whether v, a file's MetaSchema, names kind at a
// version this reader reads (minSchemaVersion to SchemaVersion). An older
// file lacks the columns added since; the reader leaves them empty.
func knownSchema(v, kind string) bool {
	k, ver, ok := strings.Cut(v, "/")
	if !ok || k != kind {
		return false
	}
	n, err := strconv.Atoi(ver)
	return err == nil && n >= minSchemaVersion && n <= SchemaVersion
}
