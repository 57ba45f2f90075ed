package sshproxy

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestParseRequests(t *testing.T) {
	pty := ssh.Marshal(struct {
		Term                 string
		Cols, Rows, PxW, PxH uint32
		Modes                string
	}{"xterm-256color", 120, 40, 0, 0, "\x00"})
	if p, err := parsePtyReq(pty); err != nil || p.Term != "xterm-256color" || p.Cols != 120 || p.Rows != 40 {
		t.Errorf("pty-req = %+v, %v", p, err)
	}
	if _, err := parsePtyReq(pty[:10]); err == nil {
		t.Error("truncated pty-req accepted")
	}
	wc := ssh.Marshal(struct{ C, R, W, H uint32 }{100, 30, 0, 0})
	if c, r, err := parseWindowChange(wc); err != nil || c != 100 || r != 30 {
		t.Errorf("window-change = %d %d %v", c, r, err)
	}
	if _, _, err := parseWindowChange(append(wc, 0)); err == nil {
		t.Error("window-change with trailing bytes accepted")
	}
	if s, err := parseSingleString(ssh.Marshal(struct{ S string }{"ls -la"})); err != nil || s != "ls -la" {
		t.Errorf("exec = %q %v", s, err)
	}
	if n, v, err := parseEnv(ssh.Marshal(struct{ N, V string }{"LANG", "C"})); err != nil || n != "LANG" || v != "C" {
		t.Errorf("env = %q %q %v", n, v, err)
	}
	if v, err := parseExitStatus([]byte{0, 0, 0, 7}); err != nil || v != 7 {
		t.Errorf("exit-status = %d %v", v, err)
	}
	huge := binary.BigEndian.AppendUint32(nil, 1<<31)
	if _, err := parseSingleString(huge); err == nil {
		t.Error("oversized string length accepted")
	}
	if got := printable("a\x1b[31mb\nc"); got != "a\uFFFD[31mb\uFFFDc" {
		t.Errorf("printable = %q", got)
	}
}

func FuzzChannelRequest(f *testing.F) {
	for _, typ := range []string{"pty-req", "window-change", "exec", "env", "subsystem", "signal", "exit-status", "exit-signal", "shell"} {
		f.Add(typ, []byte{0, 0, 0, 1, 'x'})
	}
	f.Fuzz(func(t *testing.T, typ string, payload []byte) {
		v, err := parseRequest(typ, payload)
		if err != nil && !errors.Is(err, errMalformed) {
			t.Fatalf("unexpected error type %v", err)
		}
		if p, ok := v.(ptyRequest); ok && err == nil && (p.Cols > 10000 || p.Rows > 10000) {
			t.Fatalf("unclamped size %+v", p)
		}
		if s, ok := v.(string); ok && err == nil && typ == "exec" && len(s) > maxStringLen {
			t.Fatal("oversized command accepted")
		}
	})
}

func TestParseUsername(t *testing.T) {
	for _, tc := range []struct {
		user, certLogin, login, resource string
		ok                               bool
	}{
		{"ubuntu@prod-web", "", "ubuntu", "prod-web", true},
		{"prod-web", "deploy", "deploy", "prod-web", true},
		{"prod-web", "", "", "prod-web", true},
		{"ubuntu@prod-web", "deploy", "ubuntu", "prod-web", true},
		{"@prod-web", "", "", "", false},
		{"ubuntu@", "", "", "", false},
		{"a@b@c", "", "", "", false},
		{"../etc", "", "", "", false},
		{"-oProxyCommand", "", "", "", false},
		{"prod web", "", "", "", false},
	} {
		l, r, err := ParseUsername(tc.user, tc.certLogin)
		if (err == nil) != tc.ok || l != tc.login || r != tc.resource {
			t.Errorf("ParseUsername(%q, %q) = %q, %q, %v", tc.user, tc.certLogin, l, r, err)
		}
	}
}

func FuzzUsername(f *testing.F) {
	f.Add("ubuntu@prod-web", "")
	f.Fuzz(func(t *testing.T, user, certLogin string) {
		l, r, err := ParseUsername(user, certLogin)
		if err == nil && (!validName(r) || (l != "" && !validName(l))) {
			t.Fatalf("accepted %q -> %q %q", user, l, r)
		}
	})
}
