package sqlite_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/sqlite"
)

func TestSchemaVersion(t *testing.T) {
	db := openTemp(t)
	v, err := db.SchemaVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if v != sqlite.SchemaVersion {
		t.Fatalf("SchemaVersion = %d, want %d", v, sqlite.SchemaVersion)
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "airlock.db")
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateUser(t.Context(), &airlock.User{ID: "us_1", Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = sqlite.Open(t.Context(), path) // migrations must not re-run
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.UserByName(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "airlock.db")
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	// A newer airlock migrated this file further.
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)`, sqlite.SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	_, err = sqlite.Open(t.Context(), path)
	if !airlock.IsCode(err, airlock.EINVALID) {
		t.Fatalf("Open = %v, want EINVALID", err)
	}
	want := fmt.Sprintf("store schema version %d is newer than this airlock (%d); upgrade airlock", sqlite.SchemaVersion+1, sqlite.SchemaVersion)
	if airlock.ErrorMessage(err) != want {
		t.Fatalf("message = %q, want %q", airlock.ErrorMessage(err), want)
	}
}

func TestOpenRefusesNonStore(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("this is not a database\n", 400)), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.db")
	raw, err := sql.Open("sqlite", other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`CREATE TABLE invoices (id INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	for _, path := range []string{garbage, other} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			before, _ := os.ReadFile(path)
			_, err := sqlite.Open(t.Context(), path)
			if !airlock.IsCode(err, airlock.EINVALID) {
				t.Fatalf("Open = %v, want EINVALID", err)
			}
			if msg := airlock.ErrorMessage(err); !strings.Contains(msg, path+" is not an Airlock SQLite store: ") {
				t.Fatalf("message %q does not say the file is not an Airlock store", msg)
			}
			after, _ := os.ReadFile(path)
			if string(before) != string(after) {
				t.Fatal("Open modified a file that is not an Airlock store")
			}
		})
	}
}

func TestMemory(t *testing.T) {
	db, err := sqlite.Open(t.Context(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.CreateUser(t.Context(), &airlock.User{ID: "us_1", Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	if n, err := db.CountUsers(t.Context()); err != nil || n != 1 {
		t.Fatalf("CountUsers = %d, %v", n, err)
	}
}

// The store file holds sealed credentials and hashed secrets: whatever
// the umask, it and its WAL files are readable by the owner only.
func TestStoreFilesAreOwnerOnly(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	dir := t.TempDir()
	path := filepath.Join(dir, "airlock.db")
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.CreateUser(t.Context(), &airlock.User{ID: "us_1", Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m&0o077 != 0 {
			t.Errorf("%s has mode %v, want no group or other access", e.Name(), m)
		}
	}
	if len(ents) < 2 {
		t.Errorf("expected the database and its WAL files, found %d files", len(ents))
	}
}
