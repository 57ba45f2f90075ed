package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "airlock.yaml")
	os.WriteFile(file, []byte("http_addr: 127.0.0.1:1111\npg_addr: 127.0.0.1:2222\nssh_addr: 127.0.0.1:3333\nsession_idle_timeout: 15m\n"), 0o600)
	env := map[string]string{"AIRLOCK_PG_ADDR": "127.0.0.1:4444", "AIRLOCK_SSH_ADDR": "127.0.0.1:5555"}
	c := defaultServerConfig()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	c.registerFlags(fs)
	if err := fs.Parse([]string{"--ssh-addr", "127.0.0.1:6666"}); err != nil {
		t.Fatal(err)
	}
	got, err := loadServerConfig(fs, file, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, got, want string }{
		{"file beats default", got.HTTPAddr, "127.0.0.1:1111"},
		{"env beats file", got.PGAddr, "127.0.0.1:4444"},
		{"flag beats env", got.SSHAddr, "127.0.0.1:6666"},
		{"default", got.DataDir, "./airlock-data"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	if got.SessionIdle != 15*time.Minute {
		t.Errorf("idle = %v", got.SessionIdle)
	}
}

func TestConfigRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown key":  "http_adr: x\n",
		"bad duration": "session_idle_timeout: soon\n",
		"not yaml":     "{{{\n",
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
			os.WriteFile(file, []byte(body), 0o600)
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			if _, err := loadServerConfig(fs, file, func(string) string { return "" }); err == nil {
				t.Fatal("expected an error")
			}
		})
	}
	// Statement events must stay durable within 50 ms.
	for _, v := range []string{"100ms", "-1ms"} {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		_, err := loadServerConfig(fs, "", func(k string) string {
			if k == "AIRLOCK_AUDIT_MAX_DELAY" {
				return v
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), "--audit-max-delay") {
			t.Fatalf("audit max delay %s: err = %v", v, err)
		}
	}
	// Audit witnesses: absolute paths outside the data dir, or http(s) URLs.
	data := t.TempDir()
	for v, want := range map[string]string{
		"witness.jsonl":                                         "absolute file path",
		filepath.Join(data, "w.jsonl"):                          "inside the data dir",
		"ftp://witness.example/x":                               "absolute file path",
		filepath.Join(dir, "w.jsonl") + ",https://":             "not a URL",
		filepath.Join(dir, "w.jsonl") + ",https://w.example/cp": "",
	} {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		_, err := loadServerConfig(fs, "", func(k string) string {
			switch k {
			case "AIRLOCK_AUDIT_WITNESSES":
				return v
			case "AIRLOCK_DATA_DIR":
				return data
			}
			return ""
		})
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("audit witnesses %q: err = %v, want %q", v, err, want)
		}
	}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	if _, err := loadServerConfig(fs, "", func(k string) string {
		if k == "AIRLOCK_LOCKOUT_FAILURES" {
			return "many"
		}
		return ""
	}); err == nil || !strings.Contains(err.Error(), "AIRLOCK_LOCKOUT_FAILURES") {
		t.Fatalf("err = %v", err)
	}
}
