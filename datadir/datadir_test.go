package datadir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenCreatesPrivateDirWithKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "airlock-data")
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Created {
		t.Error("Created = false on first open")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode = %o, want 700", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(path)
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		info, _ := e.Info()
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %o, want 600", e.Name(), info.Mode().Perm())
		}
	}
	for _, name := range []string{"audit.key", "audit.pub", "master.key", "ssh_user_ca", "ssh_host_ca", "tls_ca.key", "tls_ca.crt"} {
		if _, err := os.Stat(filepath.Join(path, name)); err != nil {
			t.Errorf("missing %s: %v", name, err)
		}
	}
	if len(d.MasterKeys[d.MasterKeyID]) != 32 {
		t.Error("master key is not 32 bytes")
	}

	again, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if again.Created {
		t.Error("Created = true on reopen")
	}
	if !again.AuditKey.Equal(d.AuditKey) {
		t.Error("audit key changed across reopen")
	}
}

func TestOpenRefusesForeignDir(t *testing.T) {
	path := t.TempDir()
	if err := os.WriteFile(filepath.Join(path, "notes.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), "not an Airlock data directory") {
		t.Fatalf("err = %v, want foreign-dir refusal", err)
	}
	if _, err := os.Stat(filepath.Join(path, "audit.key")); err == nil {
		t.Error("keys were written into a foreign dir")
	}
}

func TestOpenRefusesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	os.WriteFile(path, nil, 0o600)
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "is a file") {
		t.Fatalf("err = %v", err)
	}
}

func TestOpenRefusesNewerLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d")
	if _, err := Open(path); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(path, markerName), []byte(`{"format": 99}`), 0o600)
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("err = %v", err)
	}
}

func TestFailedCreateLeavesNothing(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "missing-parent")
	path := filepath.Join(parent, "d")
	if _, err := Open(path); err == nil {
		t.Fatal("expected error for missing parent")
	}
	if _, err := os.Stat(parent); err == nil {
		t.Error("parent was created")
	}
}

func TestIssueServerCert(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "d"))
	if err != nil {
		t.Fatal(err)
	}
	c, k, err := d.IssueServerCert([]string{"127.0.0.1", "localhost"}, 0)
	if err != nil || len(c) == 0 || len(k) == 0 {
		t.Fatalf("IssueServerCert: %v", err)
	}
}
