package mysqlwire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestNativePassword(t *testing.T) {
	// MySQL's PASSWORD('password') is "*" + hex(SHA1(SHA1("password"))).
	h := NativePasswordHash([]byte("password"))
	if got := strings.ToUpper(hex.EncodeToString(h[:])); got != "2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19" {
		t.Fatalf("hash %s", got)
	}
	scramble := []byte("dvH@I-CJ*4d|cZwk4^]:")
	resp := NativePasswordScramble([]byte("password"), scramble)
	if len(resp) != 20 || !VerifyNativePassword(h, scramble, resp) {
		t.Fatal("own scramble does not verify")
	}
	for name, tc := range map[string]struct {
		stored   [20]byte
		scramble []byte
		resp     []byte
	}{
		"fail/other-password": {NativePasswordHash([]byte("passwore")), scramble, resp},
		"fail/other-scramble": {h, []byte("dvH@I-CJ*4d|cZwk4^];"), resp},
		"fail/empty":          {h, scramble, nil},
		"fail/short":          {h, scramble, resp[:19]},
		"fail/replayed-hash":  {h, scramble, h[:]},
	} {
		t.Run(name, func(t *testing.T) {
			if VerifyNativePassword(tc.stored, tc.scramble, tc.resp) {
				t.Fatal("verified")
			}
		})
	}
	if NativePasswordScramble(nil, scramble) != nil {
		t.Error("empty password gives a response")
	}
}

func TestCachingSHA2(t *testing.T) {
	scramble := []byte("0123456789abcdefghij")
	resp := CachingSHA2Scramble([]byte("tok"), scramble)
	if len(resp) != 32 || !VerifyCachingSHA2(CachingSHA2Hash([]byte("tok")), scramble, resp) {
		t.Fatal("own scramble does not verify")
	}
	if VerifyCachingSHA2(CachingSHA2Hash([]byte("tol")), scramble, resp) ||
		VerifyCachingSHA2(CachingSHA2Hash([]byte("tok")), []byte("0123456789abcdefghiJ"), resp) ||
		VerifyCachingSHA2(CachingSHA2Hash([]byte("tok")), scramble, resp[:31]) {
		t.Fatal("wrong input verified")
	}
}

func TestClearPassword(t *testing.T) {
	pw, err := ParseClearPassword(AppendClearPassword(nil, []byte("al_tok")))
	if err != nil || string(pw) != "al_tok" {
		t.Fatalf("%q %v", pw, err)
	}
	for _, bad := range [][]byte{nil, []byte("x"), []byte("a\x00b\x00")} {
		if _, err := ParseClearPassword(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestAuthSwitch(t *testing.T) {
	s := []byte("0123456789abcdefghij")
	p := AppendAuthSwitchRequest(nil, NativePassword, s)
	if !bytes.Equal(p, append(append([]byte("\xfemysql_native_password\x00"), s...), 0)) {
		t.Fatalf("encoded %q", p)
	}
	plugin, data, err := ParseAuthSwitchRequest(p)
	if err != nil || plugin != NativePassword || !bytes.Equal(data, s) {
		t.Fatalf("%q %q %v", plugin, data, err)
	}
	plugin, data, err = ParseAuthSwitchRequest(AppendAuthSwitchRequest(nil, ClearPassword, nil))
	if err != nil || plugin != ClearPassword || len(data) != 0 {
		t.Fatalf("clear: %q %q %v", plugin, data, err)
	}
	if _, _, err := ParseAuthSwitchRequest([]byte("\xfeno-nul")); !errors.Is(err, ErrMalformed) {
		t.Errorf("no NUL: %v", err)
	}
}
