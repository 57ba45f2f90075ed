package pgproxy

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestStartupParametersAllowlist pins that a client chooses at startup
// only what the gateway lists: "options" (-c role=…, -c search_path=…),
// a role, session_authorization or search_path parameter is refused
// before the token is asked for, with a FATAL that says what and a
// connect.refused event; the parameters psql and drivers send still pass.
func TestStartupParametersAllowlist(t *testing.T) {
	e := newEnv(t)
	refused := []map[string]string{
		{"options": "-c role=" + e.writer},
		{"options": "-c search_path=evil,public"},
		{"role": e.writer},
		{"session_authorization": e.writer},
		{"search_path": "evil"},
		{"default_transaction_read_only": "off"},
		{"Options": "-c role=" + e.writer}, // names are case-insensitive upstream
	}
	for _, p := range refused {
		cfg, err := pgx.ParseConfig(e.dsn("read-token", "disable"))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range p {
			cfg.RuntimeParams[k] = v
		}
		c, err := pgx.ConnectConfig(t.Context(), cfg)
		if err == nil {
			var role string
			_ = c.QueryRow(t.Context(), "SELECT current_user").Scan(&role)
			c.Close(context.Background())
			t.Fatalf("startup %v accepted (current_user %s)", p, role)
		}
		if pgCode(err) != "28000" || !contains(err, "is not allowed through the gateway") || !contains(err, "application_name") {
			t.Fatalf("startup %v: want 28000 naming the parameter and what is allowed, got %v", p, err)
		}
	}
	// Every one was refused; before authentication only the first per
	// source and 10 s is audited, so no client floods the log.
	ev := e.sink.Find("connect.refused", "")
	if len(ev) != 1 {
		t.Fatalf("%d connect.refused events for %d refusals from one address, want 1", len(ev), len(refused))
	}
	if ev[0].Actor.Name != "alice" || ev[0].Resource != "prod-db" || detail(ev[0], "parameter") != "options" {
		t.Fatalf("connect.refused: %+v %s", ev[0], ev[0].Details)
	}
	if n := len(e.sink.Find("session.started", "")); n != 0 {
		t.Fatalf("%d sessions started", n)
	}

	// What drivers send passes (pgjdbc sends these at startup).
	cfg, _ := pgx.ParseConfig(e.dsn("read-token", "disable"))
	for k, v := range map[string]string{"application_name": "app", "client_encoding": "UTF8", "DateStyle": "ISO", "TimeZone": "UTC", "extra_float_digits": "3"} {
		cfg.RuntimeParams[k] = v
	}
	c, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatalf("allowed startup parameters refused: %v", err)
	}
	var tz string
	if err := c.QueryRow(t.Context(), "SHOW TimeZone").Scan(&tz); err != nil || tz != "UTC" {
		t.Fatalf("TimeZone not passed on: %q %v", tz, err)
	}
	c.Close(context.Background())

	// The real psql, as users run it, works; with PGOPTIONS it is refused.
	conninfo := "host=127.0.0.1 port=" + itoa(e.port) + " user=alice dbname=prod-db sslmode=disable"
	if out, err := runPsql(t, e, conninfo, "SELECT current_user"); err != nil || strings.TrimSpace(out) != e.reader {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(t.Context(), psqlPath(t), "-X", "-At", "-d", conninfo, "-c", "SELECT current_user")
	cmd.Env = append(os.Environ(), "PGPASSWORD=read-token", "PGCONNECT_TIMEOUT=10", "PGOPTIONS=-c role="+e.writer)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `startup parameter "options"`) {
		t.Fatalf("psql with PGOPTIONS: %v\n%s", err, out)
	}
}

// FuzzStartupParams checks the startup-parameter check on any decoded
// StartupMessage: it never panics, and whatever it accepts holds only
// listed names, and reaches the upstream as such.
func FuzzStartupParams(f *testing.F) {
	f.Add("application_name", "psql", "client_encoding", "UTF8")
	f.Add("options", "-c role=postgres", "user", "alice")
	f.Add("OPTIONS", "-csearch_path=x", "DateStyle", "ISO")
	f.Add("search_path", "evil", "role", "x")
	f.Add("replication", "database", "_pq_.x", "1")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		params := map[string]string{"user": "alice", "database": "prod-db", k1: v1, k2: v2}
		r := checkStartupParams(params)
		up := upstreamParams(&Target{}, params)
		if r != nil {
			if r.Message == "" || !strings.HasPrefix(r.Message, "airlock: ") {
				t.Fatalf("refusal without a message: %+v", r)
			}
			return
		}
		for k, v := range params {
			lk := strings.ToLower(k)
			if k == "user" || k == "database" {
				continue
			}
			if lk == "options" || lk == "role" || lk == "search_path" || lk == "session_authorization" || lk == "replication" {
				t.Fatalf("accepted %q", k)
			}
			if up[k] != v {
				t.Fatalf("accepted %q not passed on", k)
			}
		}
		for k := range up {
			if k == "user" || k == "database" || k == "options" {
				t.Fatalf("upstream gets client %q", k)
			}
		}
	})
}

// TestUpstreamApplicationName: a target's ApplicationName replaces the
// client's application_name upstream, whatever its case.
func TestUpstreamApplicationName(t *testing.T) {
	params := map[string]string{"Application_Name": "psql", "client_encoding": "UTF8"}
	up := upstreamParams(&Target{ApplicationName: "airlock:alice:gr_1"}, params)
	if len(up) != 2 || up["application_name"] != "airlock:alice:gr_1" || up["client_encoding"] != "UTF8" {
		t.Fatalf("upstream params %v", up)
	}
	if up := upstreamParams(&Target{}, params); up["Application_Name"] != "psql" {
		t.Fatalf("without ApplicationName the client's is kept: %v", up)
	}
}
