package datadir

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Format is the data directory layout version this binary writes.
const Format = 1

const markerName = "airlock-data.json"

// Dir is an opened data directory with its keys loaded.
type Dir struct {
	Path string

	// AuditKey signs audit checkpoints.
	AuditKey ed25519.PrivateKey
	// MasterKeys maps key id to a 32-byte AES key; MasterKeyID is the current one.
	MasterKeys  map[string][]byte
	MasterKeyID string
	// SSHUserCA and SSHHostCA are the SSH certificate authorities.
	SSHUserCA ssh.Signer
	SSHHostCA ssh.Signer
	// TLSCA and TLSCAKey issue the gateways' server certificates.
	TLSCA    *x509.Certificate
	TLSCAKey crypto.Signer
	// Created reports whether this Open created the directory.
	Created bool
}

type marker struct {
	Format  int       `json:"format"`
	Created time.Time `json:"created"`
}

// Open opens the data directory at path, creating it with fresh keys when it
// does not exist. It refuses a directory that is not an Airlock data
// directory, one written by a newer layout, or one it cannot write.
func Open(path string) (*Dir, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("data dir %s: %w", path, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return createNew(abs)
	case err != nil:
		return nil, fmt.Errorf("data dir %s: %w; check the path and its permissions", abs, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("data dir %s is a file, not a directory; pass --data-dir with a directory path", abs)
	}
	if _, err := os.Stat(filepath.Join(abs, markerName)); errors.Is(err, os.ErrNotExist) {
		entries, _ := os.ReadDir(abs)
		if len(entries) > 0 {
			return nil, fmt.Errorf("data dir %s is not empty and is not an Airlock data directory (no %s); choose an empty or new --data-dir", abs, markerName)
		}
		// An empty directory the user made for us: fill it in place.
		if err := os.Remove(abs); err != nil {
			return nil, fmt.Errorf("data dir %s: %w", abs, err)
		}
		return createNew(abs)
	}
	return load(abs)
}

// createNew creates the data directory abs and loads it, marked Created.
func createNew(abs string) (*Dir, error) {
	if err := create(abs); err != nil {
		return nil, err
	}
	d, err := load(abs)
	if err != nil {
		return nil, err
	}
	d.Created = true
	return d, nil
}

// create builds a complete data directory under a temporary sibling name
// and renames it to path, so a failure leaves nothing behind.
func create(path string) error {
	parent := filepath.Dir(path)
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(path)+".creating-")
	if err != nil {
		return fmt.Errorf("create data dir %s: %w; check that %s exists and is writable", path, err, parent)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if err := generate(tmp); err != nil {
		return fmt.Errorf("create data dir %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("create data dir %s: %w", path, err)
	}
	ok = true
	return nil
}

func writeFile(dir, name string, data []byte) error {
	return os.WriteFile(filepath.Join(dir, name), data, 0o600)
}

func generate(dir string) error {
	// Audit signing key.
	_, auditKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(auditKey)
	if err != nil {
		return err
	}
	if err := writeFile(dir, "audit.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(auditKey.Public())
	if err != nil {
		return err
	}
	if err := writeFile(dir, "audit.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})); err != nil {
		return err
	}
	// Master key.
	mk := make([]byte, 32)
	if _, err := rand.Read(mk); err != nil {
		return err
	}
	id := fmt.Sprintf("mk-%s", time.Now().UTC().Format("20060102"))
	if err := writeFile(dir, "master.key", []byte(id+" "+base64.StdEncoding.EncodeToString(mk)+"\n")); err != nil {
		return err
	}
	// SSH CAs.
	for _, name := range []string{"ssh_user_ca", "ssh_host_ca"} {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		blk, err := ssh.MarshalPrivateKey(k, "airlock "+name)
		if err != nil {
			return err
		}
		if err := writeFile(dir, name, pem.EncodeToMemory(blk)); err != nil {
			return err
		}
	}
	// TLS CA (ECDSA P-256: what every PostgreSQL client's TLS stack accepts).
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Airlock CA", Organization: []string{"Airlock"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(caKey)
	if err != nil {
		return err
	}
	if err := writeFile(dir, "tls_ca.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})); err != nil {
		return err
	}
	if err := writeFile(dir, "tls_ca.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(dir, "recordings"), 0o700); err != nil {
		return err
	}
	m, _ := json.Marshal(marker{Format: Format, Created: time.Now().UTC()})
	return writeFile(dir, markerName, m)
}

func load(path string) (*Dir, error) {
	fail := func(what string, err error) error {
		return fmt.Errorf("data dir %s: %s: %w", path, what, err)
	}
	raw, err := os.ReadFile(filepath.Join(path, markerName))
	if err != nil {
		return nil, fail("read marker", err)
	}
	var m marker
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fail("parse marker", err)
	}
	if m.Format > Format {
		return nil, fmt.Errorf("data dir %s has layout %d, newer than this airlock (%d); upgrade airlock", path, m.Format, Format)
	}
	// Probe writability now rather than failing later mid-request.
	probe := filepath.Join(path, ".write-probe")
	if err := os.WriteFile(probe, nil, 0o600); err != nil {
		return nil, fmt.Errorf("data dir %s is not writable: %w; fix its ownership or permissions", path, err)
	}
	os.Remove(probe)

	d := &Dir{Path: path, MasterKeys: map[string][]byte{}}
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(path, name))
		if err != nil {
			return nil, fail("read "+name, err)
		}
		return b, nil
	}
	// readPEM reads name and returns its (first) PEM block's bytes.
	readPEM := func(name string) ([]byte, error) {
		b, err := read(name)
		if err != nil {
			return nil, err
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fail(name, errors.New("not PEM"))
		}
		return blk.Bytes, nil
	}
	// readKey reads name, a PKCS #8 private key in PEM.
	readKey := func(name string) (any, error) {
		der, err := readPEM(name)
		if err != nil {
			return nil, err
		}
		k, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, fail(name, err)
		}
		return k, nil
	}
	k, err := readKey("audit.key")
	if err != nil {
		return nil, err
	}
	ak, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fail("audit.key", errors.New("not an ed25519 key"))
	}
	d.AuditKey = ak

	b, err := read("master.key")
	if err != nil {
		return nil, err
	}
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fail("master.key", fmt.Errorf("line %d: want \"<key-id> <base64>\"", i+1))
		}
		key, err := base64.StdEncoding.DecodeString(f[1])
		if err != nil || len(key) != 32 {
			return nil, fail("master.key", fmt.Errorf("line %d: key must be 32 bytes base64", i+1))
		}
		d.MasterKeys[f[0]] = key
		if i == 0 {
			d.MasterKeyID = f[0]
		}
	}
	if d.MasterKeyID == "" {
		return nil, fail("master.key", errors.New("no key"))
	}
	for _, name := range []string{"ssh_user_ca", "ssh_host_ca"} {
		b, err := read(name)
		if err != nil {
			return nil, err
		}
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, fail(name, err)
		}
		if name == "ssh_user_ca" {
			d.SSHUserCA = s
		} else {
			d.SSHHostCA = s
		}
	}
	der, err := readPEM("tls_ca.crt")
	if err != nil {
		return nil, err
	}
	if d.TLSCA, err = x509.ParseCertificate(der); err != nil {
		return nil, fail("tls_ca.crt", err)
	}
	ck, err := readKey("tls_ca.key")
	if err != nil {
		return nil, err
	}
	signer, ok := ck.(crypto.Signer)
	if !ok {
		return nil, fail("tls_ca.key", errors.New("not a signing key"))
	}
	d.TLSCAKey = signer
	return d, nil
}

// File returns the path of name inside the data directory.
func (d *Dir) File(name string) string { return filepath.Join(d.Path, name) }

// TLSCertPEM returns the TLS CA certificate in PEM, for clients' sslrootcert.
func (d *Dir) TLSCertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d.TLSCA.Raw})
}

// IssueServerCert issues a TLS server certificate signed by the data dir's
// CA for the given host names and IP addresses, valid for validFor.
func (d *Dir) IssueServerCert(hosts []string, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "airlock gateway"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(validFor),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, d.TLSCA, &key.PublicKey, d.TLSCAKey)
	if err != nil {
		return nil, nil, err
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), nil
}
