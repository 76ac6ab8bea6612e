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
// snapshots: each PUT or import line is appended (and fsynced before the
// write is acknowledged) to the current journal file. A snapshot cuts the
// journal; on restart the journals newer than the snapshot are replayed.
// Replays are idempotent because PUT replaces. A nil *Journal (a node whose
// feature store is Redis, the store of record) journals nothing.
type Journal struct {
	dir string

	mu  sync.Mutex
	gen uint64
	f   *os.File
	w   *bufio.Writer
}

// JournalEntry is one journaled write: a profile or an item.
type JournalEntry struct {
	User *event.User `json:"user,omitempty"`
	Item *event.Item `json:"item,omitempty"`
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
	j.gen, j.f, j.w = gen, f, bufio.NewWriterSize(f, 64<<10)
	return nil
}

// Append writes one entry; Sync makes everything appended so far durable.
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
	if j.f == nil {
		return errors.New("journal closed")
	}
	if _, err := j.w.Write(b); err != nil {
		return err
	}
	return j.w.WriteByte('\n')
}

// Sync makes every appended entry durable.
func (j *Journal) Sync() error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return errors.New("journal closed")
	}
	if err := j.w.Flush(); err != nil {
		return err
	}
	return j.f.Sync()
}

// Cut starts a new journal generation and returns it: a snapshot taken after
// Cut contains every entry of older generations.
func (j *Journal) Cut() (uint64, error) {
	if j == nil {
		return 0, nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.w.Flush(); err != nil {
		return 0, err
	}
	if err := j.f.Sync(); err != nil {
		return 0, err
	}
	j.f.Close()
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

// Replay applies every entry of generations ≥ from, in order. A torn last
// line (crash mid-write) is ignored.
func (j *Journal) Replay(from uint64, user func(event.User) error, item func(event.Item) error) (int, error) {
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
	err := errors.Join(j.w.Flush(), j.f.Sync(), j.f.Close())
	j.f = nil
	return err
}
