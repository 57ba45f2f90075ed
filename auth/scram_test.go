package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/pbkdf2"
)

// scramClient is an independent client side of SCRAM-SHA-256 (RFC 5802)
// for the tests, using x/crypto's PBKDF2 rather than the standard
// library's that the server uses.
type scramClient struct {
	password, gs2, cnonce, first string
}

func (c *scramClient) clientFirst() []byte {
	c.first = "n=,r=" + c.cnonce
	return []byte(c.gs2 + c.first)
}

func (c *scramClient) clientFinal(t *testing.T, serverFirst []byte) (msg []byte, serverSig []byte) {
	t.Helper()
	var nonce, salt string
	iter := 0
	for _, a := range strings.Split(string(serverFirst), ",") {
		switch {
		case strings.HasPrefix(a, "r="):
			nonce = a[2:]
		case strings.HasPrefix(a, "s="):
			salt = a[2:]
		case strings.HasPrefix(a, "i="):
			for _, d := range a[2:] {
				iter = iter*10 + int(d-'0')
			}
		}
	}
	saltB, err := base64.StdEncoding.DecodeString(salt)
	if err != nil || !strings.HasPrefix(nonce, c.cnonce) {
		t.Fatalf("bad server-first %q", serverFirst)
	}
	salted := pbkdf2.Key([]byte(c.password), saltB, iter, 32, sha256.New)
	mac := func(k []byte, m string) []byte { h := hmac.New(sha256.New, k); h.Write([]byte(m)); return h.Sum(nil) }
	clientKey := mac(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	without := "c=" + base64.StdEncoding.EncodeToString([]byte(c.gs2)) + ",r=" + nonce
	authMsg := c.first + "," + string(serverFirst) + "," + without
	sig := mac(stored[:], authMsg)
	proof := make([]byte, 32)
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	return []byte(without + ",p=" + base64.StdEncoding.EncodeToString(proof)), mac(mac(salted, "Server Key"), authMsg)
}

func TestSCRAMExchange(t *testing.T) {
	salt := SCRAMSalt("us_1", "prod-db")
	tokens := []string{"ct_first", "ct_second", "ct_third"}
	var vs []SCRAMVerifier
	for _, tok := range tokens {
		vs = append(vs, NewSCRAMVerifier(tok, salt, SCRAMIterations))
	}
	for _, gs2 := range []string{"n,,", "y,,"} {
		for want, tok := range tokens {
			srv := NewSCRAMServer(salt, SCRAMIterations)
			c := &scramClient{password: tok, gs2: gs2, cnonce: "rOprNGfwEbeRWgbNEkqO"}
			sf, err := srv.ClientFirst(c.clientFirst())
			if err != nil {
				t.Fatal(err)
			}
			final, serverSig := c.clientFinal(t, sf)
			got, sfinal, err := srv.ClientFinal(final, vs)
			if err != nil || got != want {
				t.Fatalf("%s token %d: matched %d, %v", gs2, want, got, err)
			}
			if string(sfinal) != "v="+base64.StdEncoding.EncodeToString(serverSig) {
				t.Fatalf("server signature %q does not verify", sfinal)
			}
			// The exchange is single use.
			if _, _, err := srv.ClientFinal(final, vs); !errors.Is(err, ErrSCRAM) {
				t.Fatalf("second ClientFinal = %v", err)
			}
		}
	}
}

func TestSCRAMRefuses(t *testing.T) {
	salt := SCRAMSalt("us_1", "prod-db")
	vs := []SCRAMVerifier{NewSCRAMVerifier("ct_right", salt, SCRAMIterations)}
	run := func(c *scramClient, edit func([]byte) []byte) error {
		srv := NewSCRAMServer(salt, SCRAMIterations)
		sf, err := srv.ClientFirst(c.clientFirst())
		if err != nil {
			return err
		}
		final, _ := c.clientFinal(t, sf)
		_, _, err = srv.ClientFinal(edit(final), vs)
		return err
	}
	same := func(b []byte) []byte { return b }
	if err := run(&scramClient{password: "ct_wrong", gs2: "n,,", cnonce: "abcdefghij"}, same); !errors.Is(err, ErrSCRAM) {
		t.Errorf("wrong token: %v", err)
	}
	if err := run(&scramClient{password: "ct_right", gs2: "n,,", cnonce: "abcdefghij"}, func(b []byte) []byte {
		return []byte(strings.Replace(string(b), "r=abcdefghij", "r=abcdefghiX", 1))
	}); !errors.Is(err, ErrSCRAM) {
		t.Errorf("altered nonce: %v", err)
	}
	if err := run(&scramClient{password: "ct_right", gs2: "n,,", cnonce: "abcdefghij"}, func(b []byte) []byte {
		return []byte(strings.Replace(string(b), "c=biws", "c=eSws", 1))
	}); !errors.Is(err, ErrSCRAM) {
		t.Errorf("altered gs2 header: %v", err)
	}
	for _, first := range []string{"p=tls-server-end-point,,n=,r=abcdefghij", "n,a=admin,n=,r=abcdefghij", "n,,r=abcdefghij",
		"n,,n=,r=short", "n,,n=,r=abc,defghij", "", "n,,m=ext,n=,r=abcdefghij", "n,,n=,r=" + strings.Repeat("a", MaxSCRAMMessage)} {
		if _, err := NewSCRAMServer(salt, 4096).ClientFirst([]byte(first)); !errors.Is(err, ErrSCRAM) {
			t.Errorf("ClientFirst(%q) = %v", first, err)
		}
	}
	if _, _, err := NewSCRAMServer(salt, 4096).ClientFinal([]byte("c=biws,r=x,p=AAAA"), vs); !errors.Is(err, ErrSCRAM) {
		t.Errorf("ClientFinal before ClientFirst = %v", err)
	}
}

func FuzzSCRAMServer(f *testing.F) {
	f.Add([]byte("n,,n=,r=rOprNGfwEbeRWgbNEkqO"), []byte("c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	f.Add([]byte("y,,n=user,r=abcdefghijkl,ext=1"), []byte("c=eSws,r=abcdefghijkl,p="))
	vs := []SCRAMVerifier{NewSCRAMVerifier("ct_x", SCRAMSalt("u", "r"), 16)}
	f.Fuzz(func(t *testing.T, first, final []byte) {
		srv := NewSCRAMServer(SCRAMSalt("u", "r"), 16)
		if _, err := srv.ClientFirst(first); err != nil {
			if !errors.Is(err, ErrSCRAM) {
				t.Fatal(err)
			}
			return
		}
		// A random final message never authenticates.
		if i, _, err := srv.ClientFinal(final, vs); err == nil {
			t.Fatalf("random client-final matched verifier %d", i)
		}
	})
}
