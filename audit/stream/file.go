package stream

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
)

// fileSink appends one JSON object per line to path, fsyncs after each
// batch, and rotates: before a line that would take the file past
// maxBytes (unless the file is empty), and before the first write once
// the file has been open maxAge (0: never by age), path is renamed to
// path.YYYYMMDDTHHMMSS.ffffffZ (UTC, the rotation time) and a new file is
// started; only the newest maxFiles rotated files are kept. Files are
// created 0600.
type fileSink struct {
	path     string
	maxBytes int64
	maxAge   time.Duration
	maxFiles int
	enc      encoder
	now      func() time.Time

	f      *os.File
	size   int64
	opened time.Time
	buf    []byte
}

func newFileSink(path string, maxBytes int64, maxAge time.Duration, maxFiles int, enc encoder, now func() time.Time) *fileSink {
	return &fileSink{path: path, maxBytes: maxBytes, maxAge: maxAge, maxFiles: maxFiles, enc: enc, now: now}
}

func (s *fileSink) Settle() time.Duration { return 0 }
func (s *fileSink) Alive() error          { return nil }

func (s *fileSink) open() error {
	f, err := os.OpenFile(s.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit stream file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit stream file: %w", err)
	}
	s.f, s.size, s.opened = f, st.Size(), s.now()
	return nil
}

func (s *fileSink) Send(ctx context.Context, evs []airlock.Event) error {
	if s.f == nil {
		if err := s.open(); err != nil {
			return err
		}
	}
	if s.maxAge > 0 && s.size > 0 && s.now().Sub(s.opened) >= s.maxAge {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	s.buf = s.buf[:0]
	for i := range evs {
		start := len(s.buf)
		var err error
		if s.buf, err = s.enc(s.buf, &evs[i]); err != nil {
			return err
		}
		s.buf = append(s.buf, '\n')
		if s.size+int64(start) > 0 && s.size+int64(len(s.buf)) > s.maxBytes {
			// Write what fits, then rotate before this line.
			if err := s.write(s.buf[:start]); err != nil {
				return err
			}
			if err := s.rotate(); err != nil {
				return err
			}
			s.buf = append(s.buf[:0], s.buf[start:]...)
		}
	}
	return s.write(s.buf)
}

// write appends b and fsyncs.
func (s *fileSink) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n, err := s.f.Write(b)
	s.size += int64(n)
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		s.Reset()
		return fmt.Errorf("audit stream file: %w", err)
	}
	return nil
}

func (s *fileSink) rotate() error {
	if err := s.f.Close(); err != nil {
		s.f = nil
		return fmt.Errorf("audit stream file: %w", err)
	}
	s.f = nil
	t := s.now().UTC()
	name := s.path + "." + t.Format("20060102T150405.000000Z")
	for i := 1; ; i++ { // two rotations in one microsecond (a fake clock)
		if _, err := os.Lstat(name); os.IsNotExist(err) {
			break
		}
		name = fmt.Sprintf("%s.%s-%d", s.path, t.Format("20060102T150405.000000Z"), i)
	}
	if err := os.Rename(s.path, name); err != nil {
		return fmt.Errorf("audit stream file: rotate: %w", err)
	}
	if err := s.prune(); err != nil {
		return err
	}
	return s.open()
}

// Rotated returns the rotated files of path, oldest first.
func Rotated(path string) ([]string, error) {
	all, err := filepath.Glob(globEscape(path) + ".*")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range all {
		suffix := strings.TrimPrefix(p, path+".")
		if len(suffix) >= len("20060102T150405.000000Z") && suffix[8] == 'T' {
			out = append(out, p)
		}
	}
	// By time, then by the -N of a collision.
	key := func(p string) (string, int) {
		ts, n, _ := strings.Cut(strings.TrimPrefix(p, path+"."), "-")
		k, _ := strconv.Atoi(n)
		return ts, k
	}
	sort.Slice(out, func(i, j int) bool {
		ti, ni := key(out[i])
		tj, nj := key(out[j])
		return ti < tj || ti == tj && ni < nj
	})
	return out, nil
}

func globEscape(p string) string {
	r := strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`)
	return r.Replace(p)
}

func (s *fileSink) prune() error {
	old, err := Rotated(s.path)
	if err != nil {
		return err
	}
	for len(old) > s.maxFiles {
		if err := os.Remove(old[0]); err != nil {
			return fmt.Errorf("audit stream file: prune: %w", err)
		}
		old = old[1:]
	}
	return nil
}

func (s *fileSink) Reset() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

func (s *fileSink) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
