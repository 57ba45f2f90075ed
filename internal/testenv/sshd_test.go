package testenv

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestSSHD(t *testing.T) {
	_, caKey, _ := ed25519.GenerateKey(rand.Reader)
	ca, err := ssh.NewSignerFromKey(caKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := SSHD(t, SSHDOptions{UserCA: ca.PublicKey()})

	_, userKey, _ := ed25519.GenerateKey(rand.Reader)
	user, _ := ssh.NewSignerFromKey(userKey)
	cert := &ssh.Certificate{
		Key: user.PublicKey(), CertType: ssh.UserCert, KeyId: "testenv-probe",
		ValidPrincipals: []string{"root"},
		ValidAfter:      uint64(time.Now().Add(-time.Minute).Unix()),
		ValidBefore:     uint64(time.Now().Add(time.Minute).Unix()),
		Permissions:     ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}},
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	cs, _ := ssh.NewCertSigner(cert, user)
	c, err := ssh.Dial("tcp", srv.Addr, &ssh.ClientConfig{
		User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(cs)},
		HostKeyCallback: ssh.FixedHostKey(srv.HostKey),
	})
	if err != nil {
		t.Fatalf("dial: %v\nsshd log:\n%s", err, srv.Log())
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.Output("echo hello-$((6*7))")
	if err != nil || strings.TrimSpace(string(out)) != "hello-42" {
		t.Fatalf("exec: %q %v", out, err)
	}
	if !strings.Contains(srv.Log(), `ID testenv-probe`) {
		t.Errorf("sshd log does not show the accepted certificate:\n%s", srv.Log())
	}

	t.Run("fail/other-ca", func(t *testing.T) {
		_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
		other, _ := ssh.NewSignerFromKey(otherKey)
		bad := *cert
		bad.Signature = nil
		if err := bad.SignCert(rand.Reader, other); err != nil {
			t.Fatal(err)
		}
		bs, _ := ssh.NewCertSigner(&bad, user)
		if _, err := ssh.Dial("tcp", srv.Addr, &ssh.ClientConfig{
			User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(bs)},
			HostKeyCallback: ssh.FixedHostKey(srv.HostKey),
		}); err == nil {
			t.Fatal("sshd accepted a certificate from an untrusted CA")
		}
	})
}
