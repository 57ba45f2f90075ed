package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/evidence"
	"github.com/airlockhq/airlock/internal/testenv"
)

const evidencePolicy = `version: 1
rules:
  - name: devs-prod-db
    who: {groups: [devs]}
    resources: {names: [prod-db]}
    access: [write]
    max_duration: 2h
    approval: {required: 1, groups: [leads]}
`

// TestE2EEvidencePack: alice's grant approved by bob, a real psql session
// with statements through the gateway, the grant revoked; the evidence
// pack downloaded by the admin, refused to alice, and verified offline
// after the server is stopped and its data directory deleted — with the
// public key exported beforehand, as an auditor would hold it.
func TestE2EEvidencePack(t *testing.T) {
	needOathtool(t)
	needPsql(t)
	pg := testenv.Postgres(t)
	db := pg.NewDatabase(t)
	ensureAppRW(t, pg)
	pg.Exec(t, db, `CREATE TABLE orders (id int); INSERT INTO orders VALUES (1), (2); GRANT SELECT ON orders TO app_rw;`)

	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	dataDir := filepath.Join(t.TempDir(), "data")
	h := startHarness(t, dataDir, clk, func(c *serverConfig) { c.PGAddr = freeAddr(t); c.CheckpointInterval = 500 * time.Millisecond })
	tm := setupTeam(t, h, evidencePolicy)
	h.addPGWrite(tm, pg, db)
	g := h.grant(tm, "prod-db", "write")
	if out, err := h.runProc(tm.alice, nil, "psql", "prod-db", "--", "-X", "-A", "-t", "-c", "select count(*) from orders", "-c", "select 42"); err != nil || !strings.Contains(out, "42") {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	h.must(tm.alice, "", "revoke", g.ID, "--reason", "done with INC-7")

	// Only admins and auditors get a pack.
	pack := filepath.Join(t.TempDir(), "pack.zip")
	if _, err := h.run(tm.alice, "", "evidence", g.ID, "-o", pack); err == nil || !strings.Contains(err.Error(), "auditors") {
		t.Fatalf("alice's evidence: %v", err)
	}
	h.step()
	h.must(tm.admin, "", "mfa", "verify", "--otp", totp(t, tm.adminSecret, clk.Now()))
	// The events must be under a signed tree head: wait for the next
	// checkpoint rather than racing it.
	waitFor(t, func() bool { _, err := h.run(tm.admin, "", "evidence", g.ID, "-o", pack); return err == nil })
	// Another export at once works too (an export is not an event of the
	// grant), and only the exports that were made are audited.
	h.must(tm.admin, "", "evidence", g.ID, "-o", pack)
	if out := h.must(tm.admin, "", "--output", "json", "audit", "tail", "-n", "100", "--action", "evidence.exported"); strings.Count(out, `"evidence.exported"`) != 2 {
		t.Fatalf("evidence.exported events: %s", out)
	}
	// The auditor's copy of the checkpoint key, taken beforehand.
	pubPEM, err := os.ReadFile(filepath.Join(dataDir, "audit.pub"))
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(t.TempDir(), "audit.pub")
	if err := os.WriteFile(pub, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	h.stop()
	if err := os.RemoveAll(dataDir); err != nil {
		t.Fatal(err)
	}

	out := h.must(tm.admin, "", "evidence", "verify", pack, "--pubkey", pub)
	// request.created, request.reviewed, grant.activated,
	// connect.token_issued, session.started, two db.query, session.ended,
	// grant.revoked.
	for _, want := range []string{"OK: evidence pack of grant " + g.ID, "\n  9 events, each in the audit log", "alice → prod-db, access write", "INC-7 write",
		"approve by bob with totp", "rule devs-prod-db", "revoked by alice", "done with INC-7", "2 statements/requests"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
	var sum evidence.Summary
	if err := json.Unmarshal([]byte(h.must(tm.admin, "", "--output", "json", "evidence", "verify", pack, "--pubkey", pub)), &sum); err != nil ||
		sum.EmbeddedKey || len(sum.Sessions) != 1 || sum.Sessions[0].Statements != 2 {
		t.Fatalf("json summary %+v %v", sum, err)
	}
	// A pack edited after the fact does not verify.
	// (One byte inside events.jsonl's compressed data, flipped.)
	b, _ := os.ReadFile(pack)
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if f.Name == "events.jsonl" {
			off, _ := f.DataOffset()
			b[off+int64(f.CompressedSize64)/2] ^= 0xff
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.zip")
	os.WriteFile(bad, b, 0o600)
	if _, err := h.run(tm.admin, "", "evidence", "verify", bad, "--pubkey", pub); err == nil || !strings.Contains(err.Error(), "does NOT verify") {
		t.Fatalf("edited pack: %v", err)
	}
}
