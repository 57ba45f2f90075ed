package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/internal/testenv"
)

const pgDBPolicy = `version: 1
rules:
  - name: devs-dbs
    who: {groups: [devs]}
    resources: {names: [prod-db, stage-db]}
    access: [read]
    max_duration: 2h
    approval: {required: 1, groups: [leads]}
`

// TestE2EPGDatabaseAllowlist pins issue 13 item 1: a grant on one
// resource opens only the databases that resource names. A stage-db token
// asking for prod-db's database on the same server, or prod-db asking for
// a database nobody listed, is refused with a FATAL that says what is
// allowed and a connect.refused event, before the token is used up.
func TestE2EPGDatabaseAllowlist(t *testing.T) {
	needOathtool(t)
	needPsql(t)
	pg := testenv.Postgres(t)
	prodDB, stageDB, archiveDB := pg.NewDatabase(t), pg.NewDatabase(t), pg.NewDatabase(t)
	pg.Exec(t, "postgres", `DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_ro') THEN CREATE ROLE app_ro LOGIN; END IF;
END $$;
ALTER ROLE app_ro PASSWORD '`+pgROPassword+`';`)
	for _, db := range []string{prodDB, stageDB, archiveDB} {
		pg.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO items VALUES (1, '`+db+`');
GRANT SELECT ON items TO app_ro;`)
	}

	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, func(c *serverConfig) { c.PGAddr = freeAddr(t) })
	tm := setupTeam(t, h, pgDBPolicy)
	t.Setenv("DB_RO_PW", pgROPassword)
	addr := net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port))
	h.must(tm.admin, "", "admin", "resources", "add", "prod-db", "--kind", "postgres", "--addr", addr, "--database", prodDB,
		"--allow-database", archiveDB, "--credential", "read=app_ro:env:DB_RO_PW")
	h.must(tm.admin, "", "admin", "resources", "add", "stage-db", "--kind", "postgres", "--addr", addr, "--database", stageDB,
		"--credential", "read=app_ro:env:DB_RO_PW")
	h.grant(tm, "stage-db", "read")
	h.grant(tm, "prod-db", "read")

	psql := func(resource, dbname string) (string, error) {
		args := []string{"psql", resource}
		if dbname != "" {
			args = append(args, "--dbname", dbname)
		}
		return h.runProc(tm.alice, nil, append(args, "--", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", "select name from items")...)
	}
	// What each resource opens.
	for _, c := range []struct{ resource, dbname, want string }{
		{"stage-db", "", stageDB}, {"stage-db", stageDB, stageDB}, {"prod-db", "", prodDB}, {"prod-db", archiveDB, archiveDB},
	} {
		if out, err := psql(c.resource, c.dbname); err != nil || !strings.HasSuffix(strings.TrimSpace(out), "\n"+c.want) {
			t.Fatalf("psql %s/%s: err=%v\n%s", c.resource, c.dbname, err, out)
		}
	}
	// What they do not.
	for _, c := range []struct{ resource, dbname, allowed string }{
		{"stage-db", prodDB, stageDB},                   // another resource's database on the same server
		{"prod-db", stageDB, prodDB + ", " + archiveDB}, // a database nobody granted
		{"prod-db", "postgres", prodDB + ", " + archiveDB},
	} {
		out, err := psql(c.resource, c.dbname)
		if err == nil || !strings.Contains(out, "FATAL") || !strings.Contains(out, `does not open database "`+c.dbname+`"`) ||
			!strings.Contains(out, "(allowed: "+c.allowed+")") {
			t.Fatalf("psql %s/%s: want a FATAL naming what is allowed; err=%v\n%s", c.resource, c.dbname, err, out)
		}
		if strings.Contains(out, "items") || strings.Contains(out, prodDB+"\n") {
			t.Fatalf("psql %s/%s read a table:\n%s", c.resource, c.dbname, out)
		}
	}
	h.fresh(tm.admin, tm.adminSecret)
	n := 0
	for _, e := range h.auditEvents(tm.admin, "connect.refused") {
		if strings.Contains(string(e.Details), "database not allowed") && e.Actor.Name == "alice" && e.GrantID != "" {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d connect.refused events for refused databases, want 3", n)
	}

	// The refusal does not use up the token: the same token then opens
	// the resource's own database.
	h.fresh(tm.alice, tm.aliceSecret)
	cl := api.NewClient(h.url, readClientState(t, tm.alice).Token)
	var tok access.ConnectToken
	if err := cl.Do(context.Background(), "POST", "/api/v1/connect-tokens", api.ConnectRequest{Resource: "stage-db", Access: "read"}, &tok); err != nil {
		t.Fatal(err)
	}
	var info api.GatewayInfo
	if err := cl.Do(context.Background(), "GET", "/api/v1/info", nil, &info); err != nil {
		t.Fatal(err)
	}
	gwHost, gwPort, _ := net.SplitHostPort(info.PGAddr)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, []byte(info.TLSCA), 0o600)
	direct := func(database string, extra ...string) (string, error) {
		cmd := exec.Command("psql", "-X", "-A", "-t", "-c", "select name from items")
		cmd.Env = append(append(cleanEnv(), "PGHOST="+gwHost, "PGPORT="+gwPort, "PGUSER="+tok.User, "PGDATABASE="+database,
			"PGPASSWORD="+tok.Token, "PGSSLMODE=verify-ca", "PGSSLROOTCERT="+caFile, "PGGSSENCMODE=disable", "PGCONNECT_TIMEOUT=10"), extra...)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	if out, err := direct("stage-db/" + prodDB); err == nil || !strings.Contains(out, "does not open database") {
		t.Fatalf("stage-db/%s with a live token: err=%v\n%s", prodDB, err, out)
	}
	// Startup options are refused before the token is asked for.
	if out, err := direct("stage-db", "PGOPTIONS=-c search_path=pg_catalog"); err == nil || !strings.Contains(out, `startup parameter "options"`) {
		t.Fatalf("PGOPTIONS: err=%v\n%s", err, out)
	}
	if out, err := direct("stage-db"); err != nil || strings.TrimSpace(out) != stageDB {
		t.Fatalf("the token after refusals: err=%v\n%s", err, out)
	}
	if out, err := direct("stage-db"); err == nil || !strings.Contains(out, "invalid or expired connect token") {
		t.Fatalf("reused token: err=%v\n%s", err, out)
	}
	// Resources show what they open.
	out := h.must(tm.admin, "", "--output", "json", "admin", "resources", "list")
	if !strings.Contains(out, `"databases": [`) || !strings.Contains(out, archiveDB) {
		t.Fatalf("resources list lacks databases:\n%s", out)
	}
}
