package sshca

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func newCA(t *testing.T) *CA {
	t.Helper()
	u, _, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return New(u, h)
}

func TestSignUserCert(t *testing.T) {
	ca := newCA(t)
	now := time.Unix(1_700_000_000, 0)
	ca.Now = func() time.Time { return now }
	key, _, _ := GenerateKey()
	cert, err := ca.SignUserCert(key.PublicKey(), []string{"alice"}, "airlock:alice:gr_1", 5*time.Minute, map[string]string{ExtGrant: "gr_1"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cert.ValidAfter, uint64(now.Add(-Skew).Unix()); got != want {
		t.Errorf("ValidAfter = %d, want %d (backdated by %s)", got, want, Skew)
	}
	if got, want := cert.ValidBefore, uint64(now.Add(5*time.Minute).Unix()); got != want {
		t.Errorf("ValidBefore = %d, want %d", got, want)
	}
	if cert.Extensions[ExtGrant] != "gr_1" || cert.CertType != ssh.UserCert || cert.KeyId != "airlock:alice:gr_1" {
		t.Errorf("cert = %+v", cert)
	}
	if _, ok := cert.Extensions["permit-pty"]; !ok {
		t.Error("permit-pty missing")
	}

	t.Run("ok", func(t *testing.T) {
		if _, err := ca.CheckUserCert(cert, "alice", 5*time.Minute); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("fail/wrong-principal", func(t *testing.T) {
		if _, err := ca.CheckUserCert(cert, "bob", 5*time.Minute); err == nil {
			t.Fatal("accepted a cert for another principal")
		}
	})
	t.Run("fail/too-long", func(t *testing.T) {
		if _, err := ca.CheckUserCert(cert, "alice", time.Minute); err == nil {
			t.Fatal("accepted a cert living longer than allowed")
		}
	})
	t.Run("fail/expired", func(t *testing.T) {
		late := *ca
		late.Now = func() time.Time { return now.Add(6 * time.Minute) }
		if _, err := late.CheckUserCert(cert, "alice", 5*time.Minute); err == nil {
			t.Fatal("accepted an expired cert")
		}
	})
	t.Run("fail/other-ca", func(t *testing.T) {
		other := newCA(t)
		other.Now = ca.Now
		if _, err := other.CheckUserCert(cert, "alice", 5*time.Minute); err == nil {
			t.Fatal("accepted a cert from another CA")
		}
	})
	t.Run("fail/plain-key", func(t *testing.T) {
		if _, err := ca.CheckUserCert(key.PublicKey(), "alice", 5*time.Minute); err == nil {
			t.Fatal("accepted a plain key")
		}
	})
	t.Run("fail/host-cert", func(t *testing.T) {
		hc, err := ca.SignHostCert(key.PublicKey(), []string{"alice"}, "h", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ca.CheckUserCert(hc, "alice", 5*time.Minute); err == nil {
			t.Fatal("accepted a host cert as a user cert")
		}
	})
}

func TestSignRejectsBadInput(t *testing.T) {
	ca := newCA(t)
	key, _, _ := GenerateKey()
	for name, f := range map[string]func() error{
		"no-principals": func() error {
			_, err := ca.SignUserCert(key.PublicKey(), nil, "k", time.Minute, nil)
			return err
		},
		"comma-principal": func() error {
			_, err := ca.SignUserCert(key.PublicKey(), []string{"a,b"}, "k", time.Minute, nil)
			return err
		},
		"zero-lifetime": func() error {
			_, err := ca.SignUserCert(key.PublicKey(), []string{"a"}, "k", 0, nil)
			return err
		},
		"no-host-ca": func() error {
			_, err := New(key, nil).SignHostCert(key.PublicKey(), []string{"h"}, "k", time.Minute)
			return err
		},
	} {
		t.Run("fail/"+name, func(t *testing.T) {
			if f() == nil {
				t.Fatal("signed")
			}
		})
	}
}

func TestPrintedLines(t *testing.T) {
	ca := newCA(t)
	line := ca.UserCAAuthorizedKey()
	pub, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if string(pub.Marshal()) != string(ca.UserCA().Marshal()) || comment != "airlock-user-ca" {
		t.Errorf("authorized key line %q does not round-trip", line)
	}
	marker, hosts, hk, _, _, err := ssh.ParseKnownHosts([]byte(ca.KnownHostsLine("gw.example.com", "[127.0.0.1]:7022")))
	if err != nil {
		t.Fatal(err)
	}
	if marker != "cert-authority" || len(hosts) != 2 || string(hk.Marshal()) != string(ca.HostCA().Marshal()) {
		t.Errorf("known_hosts line: marker %q hosts %v", marker, hosts)
	}
	cfg := SSHDConfig(true)
	if !strings.Contains(cfg, "TrustedUserCAKeys /etc/ssh/airlock_user_ca.pub\n") || !strings.Contains(cfg, "AuthorizedPrincipalsFile ") {
		t.Errorf("sshd config:\n%s", cfg)
	}
	if strings.Contains(SSHDConfig(false), "AuthorizedPrincipalsFile") {
		t.Error("principals file line without asking")
	}
}

func TestHostSignerAndCallback(t *testing.T) {
	ca := newCA(t)
	hk, _, _ := GenerateKey()
	s, err := ca.HostSigner(hk, []string{"gw.example.com"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cb := ca.HostKeyCallback()
	addr := fakeAddr("gw.example.com:22")
	if err := cb("gw.example.com:22", addr, s.PublicKey()); err != nil {
		t.Fatalf("certified host rejected: %v", err)
	}
	if err := cb("other.example.com:22", addr, s.PublicKey()); err == nil {
		t.Fatal("certified key accepted for another host name")
	}
	if err := cb("gw.example.com:22", addr, hk.PublicKey()); err == nil {
		t.Fatal("uncertified host key accepted")
	}
}

func TestPrivateKeyRoundTrip(t *testing.T) {
	_, priv, _ := GenerateKey()
	pemBytes, err := MarshalPrivateKey(priv, "c")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParsePrivateKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(priv) {
		t.Fatal("key changed in round trip")
	}
}

type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }
