package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/airlockhq/airlock/internal/testenv"
)

// TestE2EAuditStreams runs the server with --audit-streams naming a real
// rsyslogd (OCSF over TCP) and a JSON Lines file: the bootstrap's and the
// login's events reach both, and /metrics shows each sink's lag.
func TestE2EAuditStreams(t *testing.T) {
	rs := testenv.StartRsyslog(t)
	dir := t.TempDir()
	archive := filepath.Join(dir, "audit.jsonl")
	streams := filepath.Join(dir, "streams.yaml")
	os.WriteFile(streams, []byte(fmt.Sprintf(`poll_interval: 20ms
sinks:
  - {name: siem, type: syslog, format: ocsf, address: %q, settle: 100ms}
  - {name: archive, type: file, path: %q}
`, rs.TCPAddr, archive)), 0o600)
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	loaded, err := loadServerConfig(fs, "", func(k string) string {
		if k == "AIRLOCK_AUDIT_STREAMS" {
			return streams
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	h := startHarness(t, filepath.Join(dir, "data"), &fakeClock{t: time.Now()}, func(c *serverConfig) {
		c.AuditStreams, c.streams = loaded.AuditStreams, loaded.streams
	})
	home := t.TempDir()
	h.must(home, "correct horse battery\n", "bootstrap", "--token-file", filepath.Join(h.dataDir, "bootstrap.token"), "--user", "admin", "--password-stdin")
	h.must(home, "correct horse battery\n", "login", "--user", "admin", "--password-stdin")

	hasLogin := func() bool {
		b, _ := os.ReadFile(archive)
		return strings.Contains(string(b), `"action":"login.succeeded"`)
	}
	if !testenv.Poll(time.Minute, hasLogin) {
		b, _ := os.ReadFile(archive)
		t.Fatalf("the archive has no login.succeeded event:\n%s", b)
	}
	var ocsf map[string]any
	if !testenv.Poll(time.Minute, func() bool {
		b, _ := os.ReadFile(rs.Out)
		for _, line := range strings.Split(string(b), "\n") {
			_, msg, ok := strings.Cut(line, "] ")
			if ok && strings.Contains(msg, `"event_code":"login.succeeded"`) {
				return json.Unmarshal([]byte(strings.TrimSpace(msg)), &ocsf) == nil
			}
		}
		return false
	}) {
		b, _ := os.ReadFile(rs.Out)
		t.Fatalf("rsyslog has no OCSF login event:\n%s", b)
	}
	if ocsf["class_uid"] != float64(3002) || ocsf["activity_id"] != float64(1) {
		t.Fatalf("login in OCSF = %v; want class 3002 activity 1", ocsf)
	}
	metrics := func() string {
		resp, err := http.Get(h.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	// The syslog cursor moves once the connection stayed up for settle.
	if !testenv.Poll(time.Minute, func() bool {
		return regexp.MustCompile(`airlock_audit_stream_cursor_seq\{sink="siem"\} [1-9]`).MatchString(metrics())
	}) {
		t.Fatal("the siem cursor did not move")
	}
	b := metrics()
	for _, want := range []string{`airlock_audit_stream_lag_events{sink="archive"}`, `airlock_audit_stream_leader{sink="siem"} 1`} {
		if !strings.Contains(b, want) {
			t.Fatalf("/metrics lacks %s", want)
		}
	}
}

// TestConfigAuditStreams: a bad streams file stops the server at config
// time, and a HEC token kept in --credentials-dir is refused (a policy
// could name it as a secret to send upstream).
func TestConfigAuditStreams(t *testing.T) {
	dir := t.TempDir()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("sinks: [{name: x, type: hec, url: 'http://splunk.example.com', token_file: /t}]\n"), 0o600)
	if _, err := loadServerConfig(pflag.NewFlagSet("t", pflag.ContinueOnError), "", env(map[string]string{"AIRLOCK_AUDIT_STREAMS": bad})); err == nil ||
		!strings.Contains(err.Error(), "--audit-streams") || !strings.Contains(err.Error(), "https") {
		t.Fatalf("bad streams file: err = %v", err)
	}
	creds := filepath.Join(dir, "creds")
	os.Mkdir(creds, 0o700)
	tok := filepath.Join(creds, "hec.token")
	os.WriteFile(tok, []byte("secret\n"), 0o600)
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(fmt.Sprintf("sinks: [{name: x, type: hec, url: 'https://splunk.example.com', token_file: %q}]\n", tok)), 0o600)
	c, err := loadServerConfig(pflag.NewFlagSet("t", pflag.ContinueOnError), "", env(map[string]string{"AIRLOCK_AUDIT_STREAMS": good,
		"AIRLOCK_CREDENTIALS_DIR": creds, "AIRLOCK_DATA_DIR": filepath.Join(dir, "data")}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.checkCredentialSources(); err == nil || !strings.Contains(err.Error(), "token_file") {
		t.Fatalf("token in the credentials dir: err = %v", err)
	}
}
