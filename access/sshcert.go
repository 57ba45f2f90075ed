package access

import (
	"context"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/identity"
	"github.com/airlockhq/airlock/sshca"
)

// SSHUserCertLifetime bounds certificates minted for `airlock ssh`.
const SSHUserCertLifetime = 5 * time.Minute

// SSHCertInput asks for a user certificate for the SSH gateway.
type SSHCertInput struct {
	Resource string
	// Login is the access level (OS account); "" takes the grant that
	// ends last.
	Login string
	// PublicKey is the authorized_keys line of the client's ephemeral key.
	PublicKey string
	identity.StepUp
}

// SSHCert is a short-lived user certificate for the SSH gateway, issued
// under Grant on Resource.
type SSHCert struct {
	Certificate *ssh.Certificate
	Grant       *airlock.Grant
	Resource    *airlock.Resource
}

// IssueSSHCert certifies in.PublicKey for p under p's active grant on
// in.Resource, as AuthorizeConnect authorizes connecting (in.StepUp
// verified first, MFA freshness, every refusal audited). The certificate
// names p as its principal, carries the grant (sshca.ExtGrant) and lives
// SSHUserCertLifetime; it is audited as ssh.cert_issued, with the login,
// key ID and key fingerprint, before it is signed. Errors: EINVALID (the
// SSH gateway is not enabled, not an OpenSSH public key, not an ssh
// resource), those of AuthorizeConnect, EUNAVAILABLE (audit log down).
func (s *Service) IssueSSHCert(ctx context.Context, p *identity.Principal, in SSHCertInput) (*SSHCert, error) {
	if s.sshCA == nil {
		return nil, airlock.Errorf(airlock.EINVALID, "the SSH gateway is not enabled on this server")
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(in.PublicKey))
	if err != nil {
		return nil, airlock.Errorf(airlock.EINVALID, "public_key is not an OpenSSH public key")
	}
	g, r, _, err := s.AuthorizeConnect(ctx, p, in.Resource, in.Login, in.StepUp)
	if err != nil {
		return nil, err
	}
	if r.Kind != airlock.KindSSH {
		return nil, airlock.Errorf(airlock.EINVALID, "%s is a %s resource; use `airlock psql` for databases", r.Name, r.Kind)
	}
	keyID := sshKeyID(p.User.Name, g.ID)
	if err := s.record(ctx, airlock.Event{Actor: p.Actor(), Action: "ssh.cert_issued", Resource: r.Name, GrantID: g.ID,
		RequestID: g.RequestID, SourceAddr: p.Source, Outcome: airlock.OutcomeSuccess,
		Details: airlock.EventDetails("login", g.Access, "key_id", keyID, "fingerprint", ssh.FingerprintSHA256(pub))}); err != nil {
		return nil, err
	}
	cert, err := s.sshCA.SignUserCert(pub, []string{p.User.Name}, keyID, SSHUserCertLifetime,
		map[string]string{sshca.ExtGrant: g.ID, "permit-pty": ""})
	if err != nil {
		return nil, err
	}
	return &SSHCert{Certificate: cert, Grant: g, Resource: r}, nil
}

// sshKeyID is the key ID of a user certificate (sshd logs it).
func sshKeyID(user, grantID string) string { return "airlock:" + user + ":" + grantID }

// SSHKnownHosts is the known_hosts line that trusts the SSH gateway's
// host certificates at host and localhost, on any port ("" when the SSH
// gateway is not enabled).
func (s *Service) SSHKnownHosts(host string) string {
	if s.sshCA == nil {
		return ""
	}
	return s.sshCA.KnownHostsLine(host, "["+host+"]:*", "localhost", "[localhost]:*")
}
