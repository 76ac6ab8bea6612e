// Package evaluatetest helps test offline policy evaluation: it writes
// decision and event rows as a Parquet decision log, with the file names,
// partitions and metadata of internal/decisionlog's writer, so that
// decisionlog's readers and evaluate.DirSource read them back.
package evaluatetest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/parquet-go/parquet-go"

	"github.com/sightline/sightline/internal/decisionlog"
)

// WriteLog writes ds and es under dir (a decisions directory) as one
// decisions file and one events file, as LogWriter.Write does.
func WriteLog(dir string, ds []decisionlog.Decision, es []decisionlog.Event) error {
	return (&LogWriter{Dir: dir}).Write(ds, es)
}

// LogWriter writes a log in parts, for logs too large to hold in memory.
// It is not safe for concurrent use.
type LogWriter struct {
	// Dir is the decisions directory.
	Dir string
	seq int
}

// Write writes ds as one closed decisions file and es as one closed events
// file of node "test", each in the hour partition of its first row; files
// of later calls sort after those of earlier ones within a partition. An
// empty slice writes no file.
func (w *LogWriter) Write(ds []decisionlog.Decision, es []decisionlog.Event) error {
	if len(ds) > 0 {
		w.seq++
		if err := writeFile(w.Dir, "decisions", ds[0].Time.UTC().Format("date=2006-01-02/hour=15"), w.seq, ds); err != nil {
			return err
		}
	}
	if len(es) > 0 {
		w.seq++
		if err := writeFile(w.Dir, "events", es[0].Time.UTC().Format("date=2006-01-02/hour=15"), w.seq, es); err != nil {
			return err
		}
	}
	return nil
}

func writeFile[T any](dir, kind, partition string, seq int, rows []T) (err error) {
	pdir := filepath.Join(dir, partition)
	if err := os.MkdirAll(pdir, 0o750); err != nil {
		return err
	}
	path := filepath.Join(pdir, fmt.Sprintf("%s-test-%019d.parquet", kind, seq))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	schema := kind + "/" + strconv.Itoa(decisionlog.SchemaVersion)
	w := parquet.NewGenericWriter[T](f,
		parquet.Compression(&parquet.Snappy),
		parquet.KeyValueMetadata(decisionlog.MetaSchema, schema),
		parquet.KeyValueMetadata(decisionlog.MetaStoreRatio, "1"),
		parquet.KeyValueMetadata(decisionlog.MetaNode, "test"),
	)
	const batch = 16_384
	for i := 0; i < len(rows); i += batch {
		if _, err := w.Write(rows[i:min(i+batch, len(rows))]); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}
