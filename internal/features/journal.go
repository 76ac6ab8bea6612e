package features

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/sightline/sightline/internal/event"
)

// Journal makes profile and catalog writes durable between feature-store
// snapshots: each PUT, import line or erasure is appended (and fsynced
// before the write is acknowledged) to the current journal file. A
// snapshot cuts the journal; on restart the journals newer than the
// snapshot are replayed. Replays are idempotent because PUT replaces and
// erasure deletes. A nil *Journal (a node whose feature store is Redis, the
// store of record) journals nothing.
//
// A failed write (a full disk) does not break the journal: the file is
// truncated back to its last complete entry and the entries not written
// stay buffered, so the next Sync writes them once space returns. Sync
// succeeds only when every entry appended before it is on disk. A failed
// fsync, or a torn write that cannot be truncated, does break it (after a
// failed fsync the file's content is unknown): every later call fails
// until the node restarts, as the event log does.
type Journal struct {
	dir string

	mu   sync.Mutex
	gen  uint64
	f    *os.File
	size int64  // bytes of f written whole: its length but for a failed write's tail
	buf  []byte // entries appended and not yet written
	// broken is the error that stopped the journal, or nil.
	broken error
}

// journalFlushBytes is how many buffered bytes Append writes out without
// waiting for Sync.
const journalFlushBytes = 64 << 10

// JournalEntry is one journaled write: a profile, an item, or the erasure
// of a user (DELETE /v1/users/{user_id}).
type JournalEntry struct {
	User *event.User `json:"user,omitempty"`
	Item *event.Item `json:"item,omitempty"`
	// Erase is the id of a user whose profile and activity are erased.
	Erase string `json:"erase,omitempty"`
}

// OpenJournal opens the journal in dir, starting a new generation after
// the ones there.
func OpenJournal(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	gens, err := journalGens(dir)
	if err != nil {
		return nil, err
	}
	j := &Journal{dir: dir}
	if len(gens) > 0 {
		j.gen = gens[len(gens)-1]
	}
	return j, j.openGen(j.gen + 1)
}

func journalGens(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var gens []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".ndjson")
		if !ok {
			continue
		}
		if g, err := strconv.ParseUint(name, 10, 64); err == nil {
			gens = append(gens, g)
		}
	}
	slices.Sort(gens)
	return gens, nil
}

func (j *Journal) path(gen uint64) string {
	return filepath.Join(j.dir, fmt.Sprintf("%020d.ndjson", gen))
}

func (j *Journal) openGen(gen uint64) error {
	f, err := os.OpenFile(j.path(gen), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		return errors.Join(err, f.Close())
	}
	j.gen, j.f, j.size = gen, f, st.Size()
	return nil
}

// Append buffers one entry; Sync makes everything appended so far
// durable. When the buffer is large Append writes it out, and fails, with
// nothing of e kept, when that write fails.
func (j *Journal) Append(e JournalEntry) error {
	if j == nil {
		return nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.usable(); err != nil {
		return err
	}
	n := len(j.buf)
	j.buf = append(append(j.buf, b...), '\n')
	if len(j.buf) >= journalFlushBytes {
		if err := j.flush(); err != nil {
			j.buf = j.buf[:n] // e is not journaled: the caller does not apply it
			return err
		}
	}
	return nil
}

var errJournalClosed = errors.New("journal closed")

// usable returns why j cannot be written, or nil; j.mu is held.
func (j *Journal) usable() error {
	switch {
	case j.f == nil:
		return errJournalClosed
	case j.broken != nil:
		return fmt.Errorf("journal stopped until a restart: %w", j.broken)
	}
	return nil
}

// fsync syncs the file, stopping the journal when it fails; j.mu is held.
func (j *Journal) fsync() error {
	if err := j.f.Sync(); err != nil {
		j.broken = fmt.Errorf("fsync: %w", err)
		return j.broken
	}
	return nil
}

// flush writes the buffer to the file. On a failed write (ENOSPC) it
// truncates the file back to its last whole entry, so no torn entry is left
// in the middle of the journal, and keeps the buffer for the next attempt.
// j.mu is held.
func (j *Journal) flush() error {
	if len(j.buf) == 0 {
		return nil
	}
	n, err := j.f.Write(j.buf)
	if err != nil {
		if n > 0 {
			// The file is opened O_APPEND: later writes go to its new end.
			if terr := j.f.Truncate(j.size); terr != nil {
				j.broken = fmt.Errorf("write journal: %w; truncate the torn write: %w", err, terr)
				return j.broken
			}
		}
		return fmt.Errorf("write journal: %w", err)
	}
	j.size += int64(n)
	j.buf = j.buf[:0]
	return nil
}

// Sync makes every appended entry durable: it writes the buffer and
// fsyncs the file. On an error the entries not written stay buffered for
// the next Sync.
func (j *Journal) Sync() error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.usable(); err != nil {
		return err
	}
	if err := j.flush(); err != nil {
		return err
	}
	return j.fsync()
}

// Cut starts a new journal generation and returns it: a snapshot taken after
// Cut contains every entry of older generations.
func (j *Journal) Cut() (uint64, error) {
	if j == nil {
		return 0, nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.usable(); err != nil {
		return 0, err
	}
	if err := j.flush(); err != nil {
		return 0, err
	}
	if err := j.fsync(); err != nil {
		return 0, err
	}
	_ = j.f.Close() // synced above: nothing is lost
	// Not `return j.gen + 1, j.openGen(j.gen + 1)`: Go does not order the
	// read of j.gen against the call that changes it, and a generation one
	// too high makes a restart skip the entries written after the cut.
	next := j.gen + 1
	return next, j.openGen(next)
}

// Prune deletes generations older than keep.
func (j *Journal) Prune(keep uint64) error {
	if j == nil {
		return nil
	}
	gens, err := journalGens(j.dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, g := range gens {
		if g < keep {
			errs = append(errs, os.Remove(j.path(g)))
		}
	}
	return errors.Join(errs...)
}

// Replay applies every entry of generations ≥ from, in order: user, item
// and erase are called for profiles, items and erasures. A torn last line
// (crash mid-write) is ignored.
func (j *Journal) Replay(from uint64, user func(event.User) error, item func(event.Item) error, erase func(userID string) error) (int, error) {
	if j == nil {
		return 0, nil
	}
	gens, err := journalGens(j.dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, g := range gens {
		if g < from {
			continue
		}
		f, err := os.Open(j.path(g))
		if err != nil {
			return n, err
		}
		br := bufio.NewReaderSize(f, 64<<10)
		for {
			line, err := br.ReadBytes('\n')
			if len(line) > 0 && line[len(line)-1] == '\n' {
				var e JournalEntry
				if json.Unmarshal(line, &e) == nil {
					if e.User != nil {
						err = errors.Join(err, user(*e.User))
					}
					if e.Item != nil {
						err = errors.Join(err, item(*e.Item))
					}
					if e.Erase != "" {
						err = errors.Join(err, erase(e.Erase))
					}
					n++
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				f.Close()
				return n, err
			}
		}
		f.Close()
	}
	return n, nil
}

// Close flushes and closes the current generation.
func (j *Journal) Close() error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := errors.Join(j.flush(), j.f.Sync(), j.f.Close())
	j.f = nil
	return err
}
