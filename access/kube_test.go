package access

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func selfSignedPEM(t *testing.T) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "airlock-gateway"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "airlock-gateway"}}, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})) + string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
}

// A kubernetes resource is refused unless what it would do is what it
// says: an https API server, a usable credential per level, groups that a
// grant may hand out (never system:masters) and namespace names.
func TestKubeResourceValidation(t *testing.T) {
	svc, _, _ := newTestService(t, &clock{t: time.Now()})
	svc.sealer = plainSealer{}
	tok := CredentialInput{Password: "eyJhbGciOi.token"}
	ok := func() ResourceInput {
		return ResourceInput{Name: "prod-k8s", Kind: "kubernetes", Addr: "https://10.0.0.9:6443",
			Credentials: map[string]CredentialInput{"view": tok, "edit": tok},
			Options: ResourceOptions{KubeGroups: map[string][]string{"view": {"airlock-view"}, "edit": {"airlock-edit"}},
				Namespaces: map[string][]string{"edit": {"payments"}}}}
	}
	r, err := svc.build(ok(), "api")
	if err != nil {
		t.Fatalf("valid resource: %v", err)
	}
	if lv := sortedLevels(r); strings.Join(lv, ",") != "edit,view" {
		t.Fatalf("levels %v", lv)
	}
	certIn := ok()
	certIn.Credentials["view"] = CredentialInput{Password: selfSignedPEM(t)}
	if _, err := svc.build(certIn, "api"); err != nil {
		t.Fatalf("a certificate-and-key credential: %v", err)
	}
	for name, edit := range map[string]func(*ResourceInput){
		"http addr":          func(in *ResourceInput) { in.Addr = "http://10.0.0.9:6443" },
		"host:port addr":     func(in *ResourceInput) { in.Addr = "10.0.0.9:6443" },
		"system:masters":     func(in *ResourceInput) { in.Options.KubeGroups["edit"] = []string{"system:masters"} },
		"group with comma":   func(in *ResourceInput) { in.Options.KubeGroups["edit"] = []string{"a,b"} },
		"bad namespace":      func(in *ResourceInput) { in.Options.Namespaces["edit"] = []string{"Payments"} },
		"groups of no level": func(in *ResourceInput) { in.Options.KubeGroups["admin"] = []string{"x"} },
		"empty credential":   func(in *ResourceInput) { in.Credentials["view"] = CredentialInput{} },
		"token with space":   func(in *ResourceInput) { in.Credentials["view"] = CredentialInput{Password: "a b"} },
		"PEM without key": func(in *ResourceInput) {
			in.Credentials["view"] = CredentialInput{Password: "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"}
		},
		"no level": func(in *ResourceInput) {
			in.Credentials = nil
			in.Options.KubeGroups = nil
			in.Options.Namespaces = nil
		},
		"http options": func(in *ResourceInput) { in.Options.Allow = map[string][]string{"view": {"GET /"}} },
	} {
		in := ok()
		edit(&in)
		if _, err := svc.build(in, "api"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	pg := ResourceInput{Name: "db", Kind: "postgres", Addr: "db:5432", Credentials: map[string]CredentialInput{"read": {User: "u", Password: "p"}},
		Options: ResourceOptions{Namespaces: map[string][]string{"read": {"x"}}}}
	if _, err := svc.build(pg, "api"); err == nil {
		t.Error("namespaces on a postgres resource accepted")
	}
}

// plainSealer seals nothing: build only needs a sealer to call.
type plainSealer struct{}

func (plainSealer) Seal(p, _ []byte) ([]byte, error) { return append([]byte(nil), p...), nil }
func (plainSealer) Open(p, _ []byte) ([]byte, error) { return append([]byte(nil), p...), nil }
