package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// harvestUpstream is a fake PostgreSQL server that asks for a cleartext
// password and keeps what it gets, as an admin's own server would. No real
// PostgreSQL can be made to do this safely.
type harvestUpstream struct {
	ln  net.Listener
	mu  sync.Mutex
	got []string
}

func newHarvestUpstream(t *testing.T) *harvestUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &harvestUpstream{ln: ln}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); u.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return u
}

func (u *harvestUpstream) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	be := pgproto3.NewBackend(c, c)
	m, err := be.ReceiveStartupMessage()
	if _, ok := m.(*pgproto3.SSLRequest); ok && err == nil {
		_, _ = c.Write([]byte{'N'})
		m, err = be.ReceiveStartupMessage()
	}
	if _, ok := m.(*pgproto3.StartupMessage); !ok || err != nil {
		return
	}
	be.Send(&pgproto3.AuthenticationCleartextPassword{})
	if be.Flush() != nil {
		return
	}
	be.SetAuthType(pgproto3.AuthTypeCleartextPassword)
	if pm, err := be.Receive(); err == nil {
		if p, ok := pm.(*pgproto3.PasswordMessage); ok {
			u.mu.Lock()
			u.got = append(u.got, p.Password)
			u.mu.Unlock()
		}
	}
	be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01", Message: "thanks"})
	_ = be.Flush()
}

func (u *harvestUpstream) passwords() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.got...)
}

const credsPolicyRule = `rules:
  - name: devs
    who: {groups: [devs]}
    resources: {names: [evil-db]}
    access: [read]
    max_duration: 2h
    approval: {required: 1, groups: [leads]}
`

// TestE2ECredentialReferencesConfined pins issue 13 item 5: a policy can
// make the server read only files in --credentials-dir and variables with
// --credentials-env-prefix (never the data dir's master key or the
// server's own settings), and the gateway does not hand the brokered
// password to an upstream that asks for it in cleartext without a
// verified certificate.
func TestE2ECredentialReferencesConfined(t *testing.T) {
	needOathtool(t)
	needPsql(t)
	credDir := t.TempDir()
	dataDir := filepath.Join(t.TempDir(), "data")
	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	h := startHarness(t, dataDir, clk, func(c *serverConfig) { c.PGAddr = freeAddr(t); c.CredentialsDir = credDir })
	tm := setupTeam(t, h, "version: 1\n")
	up := newHarvestUpstream(t)

	const secret = "cred-dir-Secret-4b7"
	if err := os.WriteFile(filepath.Join(credDir, "evil-ro"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dataDir, "master.key"), filepath.Join(credDir, "key-link")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AIRLOCK_CRED_EVIL_RO", secret)
	t.Setenv("SOME_SERVER_SECRET", "not-for-policies")
	masterKey, err := os.ReadFile(filepath.Join(dataDir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	keyB64 := strings.Fields(string(masterKey))[1]

	apply := func(ref string) (string, error) {
		pol := "version: 1\nresources:\n  - name: evil-db\n    kind: postgres\n    addr: " + up.ln.Addr().String() +
			"\n    credentials:\n      read: {user: app, " + ref + "}\n" + credsPolicyRule
		f := filepath.Join(t.TempDir(), "p.yaml")
		os.WriteFile(f, []byte(pol), 0o600)
		h.fresh(tm.admin, tm.adminSecret)
		out, err := h.run(tm.admin, "", "policy", "apply", "-f", f)
		if err != nil {
			out += err.Error()
		}
		return out, err
	}
	for _, c := range []struct{ ref, want string }{
		{"password_file: " + filepath.Join(dataDir, "master.key"), "outside the server's credentials directory"},
		{"password_file: ../data/master.key", "outside the server's credentials directory"},
		{"password_file: key-link", "outside the server's credentials directory"},
		{"password_file: /etc/passwd", "outside the server's credentials directory"},
		{"password_env: SOME_SERVER_SECRET", "names must start with AIRLOCK_CRED_"},
		{"password_env: AIRLOCK_HTTP_ADDR", "names must start with AIRLOCK_CRED_"},
	} {
		out, err := apply(c.ref)
		if err == nil || !strings.Contains(out, c.want) {
			t.Fatalf("policy with %s: want refusal %q; err=%v\n%s", c.ref, c.want, err, out)
		}
		if strings.Contains(out, keyB64) || strings.Contains(out, "not-for-policies") {
			t.Fatalf("the refusal shows a secret:\n%s", out)
		}
	}
	for _, ref := range []string{"password_env: AIRLOCK_CRED_EVIL_RO", "password_file: " + filepath.Join(credDir, "evil-ro"), "password_file: evil-ro"} {
		if out, err := apply(ref); err != nil {
			t.Fatalf("policy with %s: %v\n%s", ref, err, out)
		}
	}

	// The resource's upstream asks for the password in cleartext over
	// plaintext: the gateway refuses without sending it.
	h.grant(tm, "evil-db", "read")
	out, err := h.runProc(tm.alice, nil, "psql", "evil-db", "--", "-X", "-c", "select 1")
	if err == nil || !strings.Contains(out, "asked for a cleartext password") {
		t.Fatalf("psql to a cleartext-asking upstream: err=%v\n%s", err, out)
	}
	if got := up.passwords(); len(got) != 0 {
		t.Fatalf("the upstream got %d cleartext passwords", len(got))
	}
	h.fresh(tm.admin, tm.adminSecret)
	denied := false
	for _, e := range h.auditEvents(tm.admin, "session.denied") {
		denied = denied || strings.Contains(string(e.Details), "upstream_cleartext_refused")
	}
	if !denied {
		t.Fatal("the refused cleartext request was not audited")
	}
	for _, s := range []string{secret, keyB64} {
		if strings.Contains(h.logs.String(), s) || strings.Contains(h.must(tm.admin, "", "audit", "export"), s) {
			t.Fatal("a secret reached the server log or the audit log")
		}
	}
}

// TestCredentialSourcesConfig pins that the server refuses credential
// sources that expose its own secrets.
func TestCredentialSourcesConfig(t *testing.T) {
	data := t.TempDir()
	for _, c := range []struct {
		name, dir, prefix, want string
	}{
		{"fail/dir-is-data-dir", data, DefaultCredentialsEnvPrefix, "overlaps the data dir"},
		{"fail/dir-holds-data-dir", filepath.Dir(data), DefaultCredentialsEnvPrefix, "overlaps the data dir"},
		{"fail/dir-in-data-dir", filepath.Join(data, "sub"), DefaultCredentialsEnvPrefix, "overlaps the data dir"},
		{"fail/prefix-airlock", "", "AIRLOCK_", "server's own setting"},
		{"fail/prefix-oidc", "", "AIRLOCK_OIDC", "server's own setting"},
		{"ok/defaults", "", DefaultCredentialsEnvPrefix, ""},
		{"ok/no-env", t.TempDir(), "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.dir != "" {
				os.MkdirAll(c.dir, 0o700)
			}
			cfg := defaultServerConfig()
			cfg.DataDir, cfg.CredentialsDir, cfg.CredentialsEnvPrefix = data, c.dir, c.prefix
			err := cfg.checkCredentialSources()
			if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
		})
	}
}

// TestCredentialSourcesOwnFiles pins that a credentials dir may not hold
// the server's own secret files: the OIDC client secret, the config file
// (a store DSN with its password) and a SQLite store. A policy naming one
// as a password_file would send it to an upstream of its author's choice.
func TestCredentialSourcesOwnFiles(t *testing.T) {
	data, creds := t.TempDir(), t.TempDir()
	link := filepath.Join(t.TempDir(), "creds-link")
	if err := os.Symlink(creds, link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		set  func(*serverConfig)
		want string
	}{
		{"fail/oidc-secret", func(c *serverConfig) { c.OIDCClientSecretFile = filepath.Join(creds, "oidc-secret") }, "oidc-client-secret-file"},
		{"fail/oidc-secret-via-link", func(c *serverConfig) { c.OIDCClientSecretFile = filepath.Join(link, "oidc-secret") }, "oidc-client-secret-file"},
		{"fail/config-file", func(c *serverConfig) { c.configFile = filepath.Join(creds, "airlock.yaml") }, "config"},
		{"fail/sqlite-store", func(c *serverConfig) { c.Store = "sqlite:" + filepath.Join(creds, "airlock.db") }, "store"},
		{"ok/elsewhere", func(c *serverConfig) {
			c.OIDCClientSecretFile, c.Store = filepath.Join(t.TempDir(), "oidc-secret"), "sqlite:"+filepath.Join(t.TempDir(), "a.db")
		}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := defaultServerConfig()
			cfg.DataDir, cfg.CredentialsDir = data, creds
			c.set(&cfg)
			err := cfg.checkCredentialSources()
			if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
		})
	}
}
