package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// Tmpfs mounts a tmpfs of size bytes (mode 0700) on dir, which it
// creates, and unmounts it in t.Cleanup. Tests fill it to make the disk
// under a store full for real. It needs root (CAP_SYS_ADMIN): without it
// the test is skipped with a message saying so, unless CI is set, where
// it fails.
func Tmpfs(t testing.TB, dir string, size int64) {
	t.Helper()
	need := func(why string) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf("%s: the disk-full fault tests need a real tmpfs (run them as root; CI must not skip them)", why)
		}
		t.Skipf("%s: the disk-full fault tests mount a tmpfs; run them as root (sudo go test -run TestFaultsDisk ./cmd/airlock)", why)
	}
	if os.Geteuid() != 0 {
		need("not root")
	}
	if _, err := exec.LookPath("mount"); err != nil {
		need("mount(8) not found")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		need(fmt.Sprintf("mount -t tmpfs on %s: %v: %s", dir, err, out))
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			// Something still holds a file open: detach it now, freed once closed.
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount tmpfs %s: %v", dir, err)
			}
		}
	})
}

// Fill writes a file at path that leaves about leave bytes free on the
// file system holding it (never less than 0) and returns a function that
// removes it.
func Fill(t testing.TB, path string, leave int64) (free func()) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		t.Fatal(err)
	}
	avail := int64(st.Bavail) * int64(st.Bsize)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for n := avail - leave; n > 0; {
		k, err := f.Write(buf[:min(int64(len(buf)), n)])
		n -= int64(k)
		if err != nil {
			break // ENOSPC: full already
		}
	}
	f.Close()
	return func() {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
}
