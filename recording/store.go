package recording

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/airlockhq/airlock"
)

// Store keeps recordings by ID. Implementations must refuse to overwrite an
// existing recording.
type Store interface {
	// Create returns a writer for a new recording id. ECONFLICT if it exists.
	Create(ctx context.Context, id string) (io.WriteCloser, error)
	// Open returns the recording id for reading. ENOTFOUND if missing.
	Open(ctx context.Context, id string) (io.ReadCloser, error)
}

// Dir is a Store keeping each recording as the file DIR/ID.cast (mode 0600).
type Dir struct {
	path string
}

// NewDir returns a Dir under path, creating it with mode 0700 if needed.
func NewDir(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("recording: create dir: %w", err)
	}
	return &Dir{path: path}, nil
}

// Path returns the file name of recording id, or an error if id is not a
// safe name (letters, digits, '_' and '-' only).
func (d *Dir) Path(id string) (string, error) {
	if !validID(id) {
		return "", airlock.Errorf(airlock.EINVALID, "invalid recording id %q", id)
	}
	return filepath.Join(d.path, id+".cast"), nil
}

func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// Create implements Store.
func (d *Dir) Create(_ context.Context, id string) (io.WriteCloser, error) {
	p, err := d.Path(id)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, airlock.Errorf(airlock.ECONFLICT, "recording %s already exists", id)
	}
	if err != nil {
		return nil, fmt.Errorf("recording: create: %w", err)
	}
	return f, nil
}

// Open implements Store.
func (d *Dir) Open(_ context.Context, id string) (io.ReadCloser, error) {
	p, err := d.Path(id)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "recording %s not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("recording: open: %w", err)
	}
	return f, nil
}
