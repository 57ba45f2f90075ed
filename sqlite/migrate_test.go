package sqlite

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/tlog"
)

// TestMigrateEventRowsToBlocks builds a version-1 store (one row per
// event) and opens it: every event, including a gap left by damage, is
// moved into blocks unchanged and the old table is gone.
func TestMigrateEventRowsToBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	v1, err := migrationFS.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`,
		string(v1),
		`INSERT INTO schema_migrations (version, applied_at) VALUES (1, 0)`,
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := raw.Begin()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	var want []airlock.Event
	for i := range 2500 {
		seq := int64(i + 1)
		if seq >= 1500 {
			seq++ // a gap at 1500
		}
		e := airlock.Event{Seq: seq, Time: t0.Add(time.Duration(i) * time.Second), Actor: airlock.Actor{ID: "us_1", Name: "alice"},
			Action: "db.query", Resource: "prod-db", GrantID: fmt.Sprintf("gr_%d", i/1000), SessionID: fmt.Sprintf("se_%d", i/100),
			Outcome: airlock.OutcomeSuccess, PrevHash: fmt.Sprintf("%064d", seq-1), Hash: fmt.Sprintf("%064d", seq)}
		if i%3 == 0 {
			e.Details = json.RawMessage(`{"n":` + fmt.Sprint(i) + `}`)
		}
		var details any
		if e.Details != nil {
			details = string(e.Details)
		}
		if _, err := tx.Exec(`INSERT INTO events (seq, time, actor_id, actor_name, action, resource, request_id, grant_id, session_id, source_addr, outcome, details, prev_hash, hash)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, e.Seq, e.Time.UnixMicro(), e.Actor.ID, e.Actor.Name, e.Action, e.Resource, e.RequestID,
			e.GrantID, e.SessionID, e.SourceAddr, e.Outcome, details, e.PrevHash, e.Hash); err != nil {
			t.Fatal(err)
		}
		want = append(want, e)
	}
	if _, err := tx.Exec(`UPDATE audit_head SET seq = 2501, hash = ?`, fmt.Sprintf("%064d", 2501)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, err := db.SchemaVersion(t.Context()); err != nil || v != SchemaVersion {
		t.Fatalf("schema version = %d, %v", v, err)
	}
	var got []airlock.Event
	if err := db.ScanEvents(t.Context(), 0, func(e airlock.Event) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("migrated %d events, want %d equal to the rows", len(got), len(want))
	}
	bySession, err := db.ListEvents(t.Context(), airlock.EventFilter{SessionID: "se_14"})
	if err != nil || len(bySession) != 100 || bySession[0].Seq != 1401 || bySession[99].Seq != 1501 {
		t.Fatalf("session lookup after migration = %d events, %v", len(bySession), err)
	}
	var n int
	if err := db.r.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'events'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("old events table still there (%d, %v)", n, err)
	}
	// Migration 6 built the Merkle tree of the events before the gap, and
	// leaves it there: leaf i must be event i+1.
	var treeSize int64
	if err := db.r.QueryRow(`SELECT tree_size FROM audit_head`).Scan(&treeSize); err != nil || treeSize != 1499 {
		t.Fatalf("tree size after migration = %d, %v; want 1499", treeSize, err)
	}
	var c tlog.Compact
	for _, e := range want[:1499] {
		c.Append(tlog.EventLeaf(e.Hash))
	}
	r := tlog.NewReader(func(id tlog.TileID) ([]byte, error) { return db.MerkleTile(t.Context(), id.Level, id.Index) })
	if root, err := r.Root(1499); err != nil || !bytes.Equal(root, c.Root()) {
		t.Fatalf("root of the migrated tree = %x, %v; want %x", root, err, c.Root())
	}
	// Appends after the damage leave the tree alone.
	if err := db.AppendEvents(t.Context(), func(h airlock.AuditHead) ([]airlock.Event, error) {
		return []airlock.Event{{Seq: h.Seq + 1, Time: t0, Action: "db.query", Outcome: airlock.OutcomeSuccess, PrevHash: h.Hash, Hash: fmt.Sprintf("%064d", h.Seq+1)}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.r.QueryRow(`SELECT tree_size FROM audit_head`).Scan(&treeSize); err != nil || treeSize != 1499 {
		t.Fatalf("tree size after an append to a damaged log = %d, %v; want 1499", treeSize, err)
	}
}
