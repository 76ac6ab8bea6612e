package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// stateVersion is the version of the state file's format.
const stateVersion = 1

// stateFile is the state file's content.
type stateFile struct {
	Version int   `json:"version"`
	State   State `json:"state"`
}

// Store keeps a controller's state durably. The controller calls it with
// its lock held, from one goroutine at a time: SaveState before each
// transition takes effect (and after each check), LoadState once, in New.
// A cluster's trainer keeps the state in the registry, fenced by its
// lease.
type Store interface {
	// LoadState returns the stored state; ok is false when there is none.
	LoadState(ctx context.Context) (st State, ok bool, err error)
	// SaveState stores st durably.
	SaveState(ctx context.Context, st State) error
}

// fileStore keeps the state in a file (Config.StatePath).
type fileStore string

// LoadState implements Store.
func (f fileStore) LoadState(context.Context) (State, bool, error) { return loadState(string(f)) }

// SaveState implements Store.
func (f fileStore) SaveState(_ context.Context, st State) error { return saveState(string(f), st) }

// EncodeState encodes st in the versioned format of the state file, for a
// Store that keeps it elsewhere.
func EncodeState(st State) ([]byte, error) {
	b, err := json.Marshal(stateFile{Version: stateVersion, State: st})
	if err != nil {
		return nil, fmt.Errorf("rollout: encode state: %w", err)
	}
	return b, nil
}

// DecodeState decodes a state EncodeState encoded, checking its version
// and plan as New checks a state file's.
func DecodeState(b []byte) (State, error) {
	return decodeState(b, "document")
}

// decodeState decodes the state in b, read from what.
func decodeState(b []byte, what string) (State, error) {
	var f stateFile
	if err := json.Unmarshal(b, &f); err != nil {
		return State{}, fmt.Errorf("rollout: state %s is not valid JSON: %w", what, err)
	}
	if f.Version != stateVersion {
		return State{}, fmt.Errorf("rollout: state %s has version %d, this build reads %d", what, f.Version, stateVersion)
	}
	if f.State.Stage.active() {
		if err := validSteps(f.State.Steps); err != nil || f.State.Step < 0 || f.State.Step >= len(f.State.Steps) {
			return State{}, fmt.Errorf("rollout: state %s has an invalid plan (steps %v, step %d)", what, f.State.Steps, f.State.Step)
		}
	}
	return f.State, nil
}

// loadState reads the state file at path; ok is false when there is none
// (or path is empty).
func loadState(path string) (State, bool, error) {
	if path == "" {
		return State{}, false, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, fmt.Errorf("rollout: read state: %w", err)
	}
	st, err := decodeState(b, "file "+path)
	if err != nil {
		return State{}, false, err
	}
	return st, true, nil
}

// saveState writes st to path atomically and durably: a temporary file,
// fsynced, renamed over the old one, and the directory fsynced. A crash
// leaves the old state or the new one, never a torn file.
func saveState(path string, st State) (err error) {
	b, err := json.MarshalIndent(stateFile{Version: stateVersion, State: st}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".rollout-*.tmp")
	if err != nil {
		return fmt.Errorf("create state file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name()) // best effort: the write already failed
		}
	}()
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("replace state file: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync state directory: %w", err)
	}
	if err = errors.Join(d.Sync(), d.Close()); err != nil {
		return fmt.Errorf("sync state directory: %w", err)
	}
	return nil
}
