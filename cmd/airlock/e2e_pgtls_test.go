package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/testenv"
)

const pgTLSPolicy = `version: 1
defaults:
  max_duration: 4h
  reason: {required: true, prompt: "ticket?"}
rules:
  - name: devs-dbs
    who: {groups: [devs]}
    resources: {names: [tls-db, wrong-ca-db]}
    access: [read]
    max_duration: 2h
    approval: {required: 1, groups: [leads]}
`

// TestE2EUpstreamTLS drives a resource's sslmode end to end: the CLI
// refuses a mode that would not be honoured; verify-full with the
// database's CA pinned reaches PostgreSQL over TLS (pg_stat_ssl says so,
// and session.started records it), and a second session reuses the kept
// TLS backend; a resource pinned to another CA is refused and audited,
// never falling back to plaintext.
func TestE2EUpstreamTLS(t *testing.T) {
	needOathtool(t)
	needPsql(t)
	pg := testenv.Postgres(t)
	caPEM := pg.EnableTLS(t)
	db := pg.NewDatabase(t)
	pg.Exec(t, "postgres", `DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_ro') THEN CREATE ROLE app_ro LOGIN; END IF;
END $$;
ALTER ROLE app_ro PASSWORD '`+pgROPassword+`';`)

	dir := t.TempDir()
	caFile, otherFile := filepath.Join(dir, "db-ca.pem"), filepath.Join(dir, "other-ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(otherFile, testenv.UnrelatedCA(t), 0o600); err != nil {
		t.Fatal(err)
	}

	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) { c.PGAddr = freeAddr(t) })
	tm := setupTeam(t, h, pgTLSPolicy)
	t.Setenv("PROD_DB_RO_PW", pgROPassword)
	addr := net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port))
	add := func(name string, tlsArgs ...string) (string, error) {
		args := append([]string{"admin", "resources", "add", name, "--kind", "postgres", "--addr", addr, "--database", db,
			"--credential", "read=app_ro:env:PROD_DB_RO_PW"}, tlsArgs...)
		out, err := h.run(tm.admin, "", args...)
		if err != nil {
			out += err.Error() // the message the user sees
		}
		return out, err
	}

	// Modes libpq has but that could fall back to plaintext are refused.
	for _, mode := range []string{"prefer", "allow", "verify_full"} {
		if out, err := add("tls-db", "--sslmode", mode); err == nil || !strings.Contains(out, "unknown upstream sslmode") {
			t.Fatalf("--sslmode %s: err=%v\n%s", mode, err, out)
		}
	}
	if out, err := add("tls-db", "--sslrootcert", caFile); err == nil || !strings.Contains(out, "CA certificates need sslmode require, verify-ca or verify-full") {
		t.Fatalf("--sslrootcert without --sslmode: err=%v\n%s", err, out)
	}
	out := h.must(tm.admin, "", "--output", "json", "admin", "resources", "add", "tls-db", "--kind", "postgres", "--addr", addr,
		"--database", db, "--credential", "read=app_ro:env:PROD_DB_RO_PW", "--sslmode", "verify-full", "--sslrootcert", caFile)
	var view struct {
		SSLMode string `json:"sslmode"`
	}
	if err := json.Unmarshal([]byte(out), &view); err != nil || view.SSLMode != "verify-full" {
		t.Fatalf("resource view: %v\n%s", err, out)
	}
	if _, err := add("wrong-ca-db", "--sslmode", "verify-ca", "--sslrootcert", otherFile); err != nil {
		t.Fatalf("add wrong-ca-db: %v", err)
	}

	h.grant(tm, "tls-db", "read")
	out, err := h.runProc(tm.alice, nil, "psql", "tls-db", "--access", "read", "--",
		"-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", "select ssl, version from pg_stat_ssl where pid = pg_backend_pid()")
	if err != nil || !strings.Contains(out, "t|TLSv1.") {
		t.Fatalf("psql through a verify-full upstream: err=%v\n%s", err, out)
	}

	// psql says goodbye while idle: the next session reuses the backend,
	// still on TLS.
	out, err = h.runProc(tm.alice, nil, "psql", "tls-db", "--access", "read", "--",
		"-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", "select ssl from pg_stat_ssl where pid = pg_backend_pid()")
	if err != nil || !strings.Contains(out, "t") {
		t.Fatalf("second psql through a verify-full upstream: err=%v\n%s", err, out)
	}

	h.grant(tm, "wrong-ca-db", "read")
	out, err = h.runProc(tm.alice, nil, "psql", "wrong-ca-db", "--access", "read", "--", "-X", "-c", "select 1")
	if err == nil || !strings.Contains(out, "cannot connect to the resource's database") {
		t.Fatalf("psql through an upstream with another CA: err=%v\n%s", err, out)
	}

	h.fresh(tm.admin, tm.adminSecret)
	for _, e := range h.auditEvents(tm.admin, "resource.added") {
		var d struct {
			SSLMode  string `json:"sslmode"`
			CAPinned bool   `json:"ca_pinned"`
		}
		if err := json.Unmarshal(e.Details, &d); err != nil || d.SSLMode == "" || !d.CAPinned ||
			strings.Contains(string(e.Details), "BEGIN CERTIFICATE") {
			t.Fatalf("resource.added %s: %s", e.Resource, e.Details)
		}
	}
	started := h.auditEvents(tm.admin, "session.started")
	if len(started) != 2 {
		t.Fatalf("%d session.started events, want 2", len(started))
	}
	for i, e := range started { // newest first
		var d struct {
			UpstreamTLS bool `json:"upstream_tls"`
			Reused      bool `json:"upstream_reused"`
		}
		if e.Resource != "tls-db" || json.Unmarshal(e.Details, &d) != nil || !d.UpstreamTLS || d.Reused != (e.Seq == max(started[0].Seq, started[1].Seq)) {
			t.Fatalf("session.started %d: %s", i, e.Details)
		}
	}
	waitFor(t, func() bool {
		for _, e := range h.auditEvents(tm.admin, "session.denied") {
			if e.Resource == "wrong-ca-db" && strings.Contains(string(e.Details), "upstream_unavailable") {
				return true
			}
		}
		return false
	})
}
