package rollout

import (
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
	var f stateFile
	if err := json.Unmarshal(b, &f); err != nil {
		return State{}, false, fmt.Errorf("rollout: state file %s is not valid JSON: %w", path, err)
	}
	if f.Version != stateVersion {
		return State{}, false, fmt.Errorf("rollout: state file %s has version %d, this build reads %d", path, f.Version, stateVersion)
	}
	if f.State.Stage.active() {
		if err := validSteps(f.State.Steps); err != nil || f.State.Step < 0 || f.State.Step >= len(f.State.Steps) {
			return State{}, false, fmt.Errorf("rollout: state file %s has an invalid plan (steps %v, step %d)", path, f.State.Steps, f.State.Step)
		}
	}
	return f.State, true, nil
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
	if err := os.MkdirAll(dir, 0o755); err != nil {
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
