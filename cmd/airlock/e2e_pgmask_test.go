package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/testenv"
)

// The guardrails doc's masking example: card numbers masked and e-mail
// addresses hashed for devs, in clear for the payments admins (here the
// leads group, self-service).
const pgMaskPolicy = `version: 1
rules:
  - name: payments-admin-prod-db
    who: {groups: [leads]}
    resources: {names: [prod-db]}
    access: [write]
    max_duration: 2h
    approval: {required: 0}
  - name: devs-prod-db
    who: {groups: [devs]}
    resources: {names: [prod-db]}
    access: [write]
    max_duration: 2h
    approval: {required: 1, groups: [leads]}
    statements:
      columns:
        orders.card_number: mask
        customers.email: hash
`

// TestE2EPGColumnMasking pins issue 19's column masking through the real
// server, airlock psql and a real PostgreSQL: the policy's masks reach the
// gateway, devs get masked and hashed values, the rule without masks gets
// them in clear, and each masked result is a db.guard event.
func TestE2EPGColumnMasking(t *testing.T) {
	needOathtool(t)
	needPsql(t)
	warmGuard(t)
	pg := testenv.Postgres(t)
	db := pg.NewDatabase(t)
	ensureAppRW(t, pg)
	pg.Exec(t, db, `CREATE TABLE orders (id int PRIMARY KEY, card_number text, total numeric);
INSERT INTO orders VALUES (1, '4111111111111111', 12.50), (2, '5500000000000004', 80);
CREATE TABLE customers (id int, email text);
INSERT INTO customers VALUES (1, 'ann@example.com'), (2, 'ann@example.com');
GRANT SELECT, INSERT, UPDATE ON orders, customers TO app_rw;`)

	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) { c.PGAddr = freeAddr(t) })
	tm := setupTeam(t, h, pgMaskPolicy)
	h.addPGWrite(tm, pg, db)
	h.grant(tm, "prod-db", "write")

	q := []string{"psql", "prod-db", "--", "-X", "-A", "-t",
		"-c", "SELECT id, card_number, total FROM orders ORDER BY id",
		"-c", "SELECT email FROM customers ORDER BY id",
		"-c", "SELECT count(*) FROM orders",
		"-c", "INSERT INTO customers SELECT id, card_number FROM orders"}
	out, _ := h.runProc(tm.alice, nil, q...)
	if strings.Contains(out, "4111") || strings.Contains(out, "ann@") {
		t.Fatalf("a masked value reached a dev:\n%s", out)
	}
	lines := strings.Split(out[strings.Index(out, "\n")+1:], "\n") // after airlock psql's own line
	if len(lines) < 6 || lines[0] != "1|****|12.50" || lines[1] != "2|****|80" || !strings.HasPrefix(lines[2], "h:") || lines[2] != lines[3] || lines[4] != "****" ||
		!strings.Contains(out, "airlock: statement denied by rule columns: only reads may touch a table with masked columns") {
		t.Fatalf("dev's psql:\n%s", out)
	}
	if n := countRows(t, pg, db, "customers"); n != 2 {
		t.Fatalf("customers has %d rows: the refused INSERT ran", n)
	}

	// bob's rule masks nothing.
	h.must(tm.bob, "", "request", "prod-db", "--access", "write", "--for", "1h", "--reason", "INC-8 refunds")
	h.fresh(tm.bob, tm.bobSecret)
	out, _ = h.runProc(tm.bob, nil, "psql", "prod-db", "--", "-X", "-A", "-t", "-c", "SELECT card_number FROM orders WHERE id = 1")
	if !strings.HasSuffix(strings.TrimSpace(out), "\n4111111111111111") {
		t.Fatalf("payments admin:\n%s", out)
	}

	h.fresh(tm.admin, tm.adminSecret)
	masked := 0
	for _, e := range h.auditEvents(tm.admin, "db.guard") {
		var d struct {
			Rule, Action string
			Columns      []string
		}
		if err := json.Unmarshal(e.Details, &d); err != nil {
			t.Fatal(err)
		}
		if d.Rule == "columns" && d.Action == "mask" && len(d.Columns) > 0 {
			masked++
		}
		if strings.Contains(string(e.Details), "4111") {
			t.Fatalf("a card number in the audit log: %s", e.Details)
		}
	}
	if masked < 3 {
		t.Fatalf("%d db.guard mask events, want ≥ 3", masked)
	}
}
