package postgres_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/postgres"
	"github.com/jackc/pgx/v5"
)

// TestMigrateEventRowsToBlocks builds a version-1 database (one row per
// event) and opens it: every event, including a gap left by damage, is
// moved into blocks unchanged and the old table is gone.
func TestMigrateEventRowsToBlocks(t *testing.T) {
	pg := testenv.Postgres(t)
	name := pg.NewDatabase(t)
	v1, err := os.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	pg.Exec(t, name, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`)
	pg.Exec(t, name, string(v1))
	pg.Exec(t, name, `INSERT INTO schema_migrations (version) VALUES (1)`)
	// 2,500 events with a gap at seq 1500; details on every third.
	pg.Exec(t, name, `INSERT INTO events (seq, time, actor_id, actor_name, action, resource, request_id, grant_id, session_id, source_addr, outcome, details, prev_hash, hash)
		SELECT s, timestamptz '2026-11-01 09:00:00+00' + (i * interval '1 second'), 'us_1', 'alice', 'db.query', 'prod-db', '',
			'gr_' || (i / 1000), 'se_' || (i / 100), '', 'success',
			CASE WHEN i % 3 = 0 THEN '{"n":' || i || '}' END, lpad((s - 1)::text, 64, '0'), lpad(s::text, 64, '0')
		FROM (SELECT i, CASE WHEN i + 1 >= 1500 THEN i + 2 ELSE i + 1 END AS s FROM generate_series(0, 2499) AS i) AS g`)

	db, err := postgres.Open(t.Context(), pg.DSN(name))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, err := db.SchemaVersion(t.Context()); err != nil || v != postgres.SchemaVersion {
		t.Fatalf("schema version = %d, %v", v, err)
	}
	var got []airlock.Event
	if err := db.ScanEvents(t.Context(), 0, func(e airlock.Event) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2500 {
		t.Fatalf("migrated %d events, want 2500", len(got))
	}
	for i, e := range got {
		seq := int64(i + 1)
		if seq >= 1500 {
			seq++
		}
		wantDetails := ""
		if i%3 == 0 {
			wantDetails = fmt.Sprintf(`{"n":%d}`, i)
		}
		if e.Seq != seq || e.SessionID != fmt.Sprintf("se_%d", i/100) || string(e.Details) != wantDetails ||
			e.Hash != fmt.Sprintf("%064d", seq) || e.Time.Unix() != 1793523600+int64(i) || (wantDetails == "") != (e.Details == nil) {
			t.Fatalf("event %d migrated as %+v", i, e)
		}
	}
	bySession, err := db.ListEvents(t.Context(), airlock.EventFilter{SessionID: "se_14"})
	if err != nil || len(bySession) != 100 || bySession[0].Seq != 1401 || bySession[99].Seq != 1501 {
		t.Fatalf("session lookup after migration = %d events, %v", len(bySession), err)
	}
	conn, err := pgx.Connect(t.Context(), pg.DSN(name))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_tables WHERE tablename = 'events'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("old events table still there (%d, %v)", n, err)
	}
}
