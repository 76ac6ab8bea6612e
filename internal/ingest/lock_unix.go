//go:build unix

package ingest

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock on f so that two processes never
// write the same log. The kernel releases it when the process dies.
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return ErrLocked
	}
	return err
}
