//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDataDir takes an exclusive lock on the data dir for the life of
// this server (released by unlock, or by the kernel when the process dies,
// kill -9 included). A second server on the same host and data dir would
// share its node identity and end the first one's live sessions at start
// as its "previous life"; it is refused instead.
func lockDataDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, "server.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another airlock server on this host; give each server its own --data-dir", dir)
		}
		return nil, fmt.Errorf("lock data dir %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}
