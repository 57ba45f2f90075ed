package airlock_test

import (
	"testing"

	"github.com/airlockhq/airlock"
)

func TestParseSSLMode(t *testing.T) {
	for in, want := range map[string]airlock.SSLMode{"": airlock.SSLDisable, "disable": airlock.SSLDisable,
		"require": airlock.SSLRequire, "verify-ca": airlock.SSLVerifyCA, "verify-full": airlock.SSLVerifyFull} {
		if got, err := airlock.ParseSSLMode(in); got != want || err != nil {
			t.Errorf("ParseSSLMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"prefer", "allow", "Require", "verify_full"} {
		if got, err := airlock.ParseSSLMode(in); got != "" || airlock.ErrorCode(err) != airlock.EINVALID {
			t.Errorf("ParseSSLMode(%q) = %q, %v; want EINVALID", in, got, err)
		}
	}
}

func FuzzParseCAPEM(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pool, err := airlock.ParseCAPEM(b)
		if (err == nil) != (pool != nil) {
			t.Fatalf("pool %v with error %v", pool, err)
		}
		if err != nil && airlock.ErrorCode(err) != airlock.EINVALID {
			t.Fatalf("error %v is not EINVALID", err)
		}
	})
}
