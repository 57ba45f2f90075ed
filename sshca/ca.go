package sshca

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"golang.org/x/crypto/ssh"
)

// Certificate extensions and options Airlock puts into user certificates.
const (
	// ExtGrant binds a user certificate to the grant it was issued for. Its
	// value is the grant ID.
	ExtGrant = "airlock-grant@airlock.dev"
	// ExtLogin optionally names the target login (OS account) the user asked
	// for, for SSH usernames that name only the resource.
	ExtLogin = "airlock-login@airlock.dev"
	// ExtSession carries the gateway session ID in upstream certificates.
	ExtSession = "airlock-session@airlock.dev"
)

// Skew is how far valid-after is backdated on every certificate so that a
// target whose clock runs a little behind still accepts it.
const Skew = 30 * time.Second

// Default paths used in the printed sshd_config lines.
const (
	UserCAPath         = "/etc/ssh/airlock_user_ca.pub"
	PrincipalsFilePath = "/etc/ssh/airlock_principals/%u"
)

// standardExtensions are the OpenSSH permissions a session certificate
// carries; the gateway, not the certificate, decides about forwarding.
var standardExtensions = map[string]string{
	"permit-pty":              "",
	"permit-user-rc":          "",
	"permit-port-forwarding":  "",
	"permit-agent-forwarding": "",
	"permit-X11-forwarding":   "",
}

// CA signs user and host certificates. It is safe for concurrent use.
type CA struct {
	user ssh.Signer
	host ssh.Signer
	// Now is the clock used for validity windows; time.Now when nil.
	Now func() time.Time
}

// New returns a CA signing user certificates with userCA and host
// certificates with hostCA. Either may be nil when the caller only needs
// the other (signing with a nil CA returns an error).
func New(userCA, hostCA ssh.Signer) *CA {
	return &CA{user: userCA, host: hostCA}
}

// NewFromKeys is New for ed25519 private keys.
func NewFromKeys(userCA, hostCA ed25519.PrivateKey) (*CA, error) {
	u, err := ssh.NewSignerFromKey(userCA)
	if err != nil {
		return nil, fmt.Errorf("user ca: %w", err)
	}
	h, err := ssh.NewSignerFromKey(hostCA)
	if err != nil {
		return nil, fmt.Errorf("host ca: %w", err)
	}
	return New(u, h), nil
}

func (c *CA) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// UserCA returns the user CA's public key, or nil.
func (c *CA) UserCA() ssh.PublicKey {
	if c.user == nil {
		return nil
	}
	return c.user.PublicKey()
}

// HostCA returns the host CA's public key, or nil.
func (c *CA) HostCA() ssh.PublicKey {
	if c.host == nil {
		return nil
	}
	return c.host.PublicKey()
}

// SignUserCert certifies pub as a user key for principals, valid from
// now-Skew until now+validFor. keyID is free text logged by sshd (Airlock
// uses "airlock:USER:GRANT" or the session ID). ext is added to the
// standard OpenSSH permit-* extensions.
func (c *CA) SignUserCert(pub ssh.PublicKey, principals []string, keyID string, validFor time.Duration, ext map[string]string) (*ssh.Certificate, error) {
	if c.user == nil {
		return nil, errors.New("sshca: no user CA key")
	}
	exts := make(map[string]string, len(standardExtensions)+len(ext))
	for k, v := range standardExtensions {
		exts[k] = v
	}
	for k, v := range ext {
		exts[k] = v
	}
	return c.sign(c.user, ssh.UserCert, pub, principals, keyID, validFor, exts)
}

// SignHostCert certifies pub as a host key for hostnames (the names and
// addresses clients connect to), valid from now-Skew until now+validFor.
func (c *CA) SignHostCert(pub ssh.PublicKey, hostnames []string, keyID string, validFor time.Duration) (*ssh.Certificate, error) {
	if c.host == nil {
		return nil, errors.New("sshca: no host CA key")
	}
	return c.sign(c.host, ssh.HostCert, pub, hostnames, keyID, validFor, nil)
}

func (c *CA) sign(ca ssh.Signer, typ uint32, pub ssh.PublicKey, principals []string, keyID string, validFor time.Duration, exts map[string]string) (*ssh.Certificate, error) {
	if pub == nil {
		return nil, airlock.Errorf(airlock.EINVALID, "no public key to certify")
	}
	if _, isCert := pub.(*ssh.Certificate); isCert {
		return nil, airlock.Errorf(airlock.EINVALID, "cannot certify a certificate")
	}
	if len(principals) == 0 {
		// An empty principal list means "any principal" to OpenSSH: never.
		return nil, airlock.Errorf(airlock.EINVALID, "a certificate needs at least one principal")
	}
	for _, p := range principals {
		if p == "" || strings.ContainsAny(p, ",\x00\n") {
			return nil, airlock.Errorf(airlock.EINVALID, "invalid principal %q", p)
		}
	}
	if validFor <= 0 {
		return nil, airlock.Errorf(airlock.EINVALID, "certificate lifetime must be positive")
	}
	var serial [8]byte
	if _, err := rand.Read(serial[:]); err != nil {
		return nil, fmt.Errorf("sshca: serial: %w", err)
	}
	now := c.now()
	cert := &ssh.Certificate{
		Key:             pub,
		Serial:          binary.BigEndian.Uint64(serial[:]),
		CertType:        typ,
		KeyId:           keyID,
		ValidPrincipals: append([]string(nil), principals...),
		ValidAfter:      uint64(now.Add(-Skew).Unix()),
		ValidBefore:     uint64(now.Add(validFor).Unix()),
		Permissions:     ssh.Permissions{Extensions: exts},
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		return nil, fmt.Errorf("sshca: sign: %w", err)
	}
	return cert, nil
}

// CheckUserCert reports an error unless key is a user certificate signed
// by this CA's user CA, valid at the CA's current time, naming principal
// (skipped when principal is ""), and living no longer than maxLifetime
// (skipped when 0; the Skew backdating is not counted).
func (c *CA) CheckUserCert(key ssh.PublicKey, principal string, maxLifetime time.Duration) (*ssh.Certificate, error) {
	cert, ok := key.(*ssh.Certificate)
	if !ok {
		return nil, errors.New("sshca: not a certificate")
	}
	if cert.CertType != ssh.UserCert {
		return nil, errors.New("sshca: not a user certificate")
	}
	if c.user == nil || !bytes.Equal(cert.SignatureKey.Marshal(), c.user.PublicKey().Marshal()) {
		return nil, errors.New("sshca: certificate not signed by the Airlock user CA")
	}
	if len(cert.ValidPrincipals) == 0 {
		return nil, errors.New("sshca: certificate has no principals")
	}
	if maxLifetime > 0 {
		if cert.ValidBefore == ssh.CertTimeInfinity || cert.ValidBefore < cert.ValidAfter ||
			time.Duration(cert.ValidBefore-cert.ValidAfter)*time.Second > maxLifetime+Skew {
			return nil, fmt.Errorf("sshca: certificate lifetime exceeds %s", maxLifetime)
		}
	}
	checker := &ssh.CertChecker{
		IsUserAuthority: func(auth ssh.PublicKey) bool {
			return bytes.Equal(auth.Marshal(), c.user.PublicKey().Marshal())
		},
		Clock: c.now,
	}
	if principal == "" {
		principal = cert.ValidPrincipals[0]
	}
	if err := checker.CheckCert(principal, cert); err != nil {
		return nil, fmt.Errorf("sshca: %w", err)
	}
	return cert, nil
}

// HostKeyCallback returns a callback accepting a host certificate signed
// by this CA's host CA that names the host being dialled.
func (c *CA) HostKeyCallback() ssh.HostKeyCallback {
	checker := &ssh.CertChecker{
		IsHostAuthority: func(auth ssh.PublicKey, _ string) bool {
			return c.host != nil && bytes.Equal(auth.Marshal(), c.host.PublicKey().Marshal())
		},
		Clock: c.now,
	}
	return checker.CheckHostKey
}

// UserCAAuthorizedKey returns the user CA public key as one authorized_keys
// line ("ssh-ed25519 AAAA… airlock-user-ca\n"), the content of
// /etc/ssh/airlock_user_ca.pub on a target.
func (c *CA) UserCAAuthorizedKey() string {
	if c.user == nil {
		return ""
	}
	return authorizedLine(c.user.PublicKey(), "airlock-user-ca")
}

// HostCAAuthorizedKey returns the host CA public key as one line.
func (c *CA) HostCAAuthorizedKey() string {
	if c.host == nil {
		return ""
	}
	return authorizedLine(c.host.PublicKey(), "airlock-host-ca")
}

func authorizedLine(k ssh.PublicKey, comment string) string {
	return strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(k)), "\n") + " " + comment + "\n"
}

// SSHDConfig returns the sshd_config lines a target needs to trust the
// Airlock user CA. With principalsFile, logins additionally require their
// principal to be listed in /etc/ssh/airlock_principals/LOGIN; without it
// sshd accepts a certificate whose principal equals the login name, which
// is what the gateway issues.
func SSHDConfig(principalsFile bool) string {
	var b strings.Builder
	b.WriteString("# Airlock: trust certificates issued by the Airlock user CA\n")
	b.WriteString("TrustedUserCAKeys " + UserCAPath + "\n")
	if principalsFile {
		b.WriteString("AuthorizedPrincipalsFile " + PrincipalsFilePath + "\n")
	}
	return b.String()
}

// KnownHostsLine returns the known_hosts line that makes an OpenSSH client
// trust every host key certified by the host CA for hostPatterns
// ("*" when none are given).
func (c *CA) KnownHostsLine(hostPatterns ...string) string {
	if c.host == nil {
		return ""
	}
	if len(hostPatterns) == 0 {
		hostPatterns = []string{"*"}
	}
	return "@cert-authority " + strings.Join(hostPatterns, ",") + " " +
		strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(c.host.PublicKey())), "\n") + "\n"
}

// GenerateKey returns a new ed25519 key as an ssh.Signer and its private key.
func GenerateKey() (ssh.Signer, ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("sshca: generate key: %w", err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("sshca: signer: %w", err)
	}
	return s, priv, nil
}

// MarshalPrivateKey encodes priv in the OpenSSH private key format (PEM),
// as ssh -i reads it.
func MarshalPrivateKey(priv ed25519.PrivateKey, comment string) ([]byte, error) {
	blk, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, fmt.Errorf("sshca: marshal key: %w", err)
	}
	return pem.EncodeToMemory(blk), nil
}

// ParsePrivateKey parses an OpenSSH (or PKCS#8) ed25519 private key.
func ParsePrivateKey(pemBytes []byte) (ed25519.PrivateKey, error) {
	k, err := ssh.ParseRawPrivateKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("sshca: parse key: %w", err)
	}
	switch k := k.(type) {
	case ed25519.PrivateKey:
		return k, nil
	case *ed25519.PrivateKey:
		return *k, nil
	}
	return nil, fmt.Errorf("sshca: key is %T, want ed25519", k)
}

// HostSigner returns a signer presenting hostKey together with a fresh
// host certificate for hostnames, valid for validFor (the gateway renews it
// by calling HostSigner again on restart; use a long validFor).
func (c *CA) HostSigner(hostKey ssh.Signer, hostnames []string, validFor time.Duration) (ssh.Signer, error) {
	cert, err := c.SignHostCert(hostKey.PublicKey(), hostnames, "airlock-gateway", validFor)
	if err != nil {
		return nil, err
	}
	s, err := ssh.NewCertSigner(cert, hostKey)
	if err != nil {
		return nil, fmt.Errorf("sshca: cert signer: %w", err)
	}
	return s, nil
}
