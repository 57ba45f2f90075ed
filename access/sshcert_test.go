package access

import (
	"context"
	"encoding/json"
	"maps"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/sshca"
)

// sshTestPolicy lets devs log in to web-1 too.
const sshTestPolicy = grantTestPolicy + `  - name: devs-login-web
    who: {groups: [devs]}
    resources: {names: [web-1]}
    access: [ubuntu]
    max_duration: 2h
`

// TestIssueSSHCert pins what the service checks and records when it
// certifies a key for the SSH gateway: a certificate for the grant's user
// and grant, short-lived, announced as ssh.cert_issued with its login, key
// ID and fingerprint as JSON details; refused without a CA, for a key that
// does not parse, and for a resource that is not ssh.
func TestIssueSSHCert(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	svc, store, al, principal := newIdentityTestService(t, clk)
	savePolicy(t, store, sshTestPolicy)
	if err := svc.reloadPolicy(ctx); err != nil {
		t.Fatal(err)
	}
	p := principal("usr_a", "alice", "devs")
	u := p.User
	for _, r := range []*airlock.Resource{
		{ID: "res_1", Name: "web-1", Kind: airlock.KindSSH, Addr: "127.0.0.1:22", Credentials: map[string][]byte{"ubuntu": nil},
			Labels: map[string]string{}, Source: "api", CreatedAt: t0},
		{ID: "res_2", Name: "prod-db", Kind: airlock.KindPostgres, Addr: "127.0.0.1:5432", Credentials: map[string][]byte{"read": []byte("sealed")},
			Labels: map[string]string{}, Source: "api", CreatedAt: t0},
	} {
		if err := store.CreateResource(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range []*airlock.Grant{
		{ID: "gr_ssh", RequestID: "req_ssh", UserID: u.ID, UserName: u.Name, Resource: "web-1", Access: "ubuntu", StartsAt: t0, EndsAt: t0.Add(time.Hour),
			State: airlock.GrantActive, CreatedAt: t0},
		{ID: "gr_pg", RequestID: "req_pg", UserID: u.ID, UserName: u.Name, Resource: "prod-db", Access: "read", StartsAt: t0, EndsAt: t0.Add(time.Hour),
			State: airlock.GrantActive, CreatedAt: t0},
	} {
		if err := store.CreateGrant(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	key, _, err := sshca.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pubLine := string(ssh.MarshalAuthorizedKey(key.PublicKey()))
	in := SSHCertInput{Resource: "web-1", Login: "ubuntu", PublicKey: pubLine}

	if _, err := svc.IssueSSHCert(ctx, p, in); !airlock.IsCode(err, airlock.EINVALID) || airlock.ErrorMessage(err) != "the SSH gateway is not enabled on this server" {
		t.Fatalf("without a CA: %v", err)
	}
	userCA, _, _ := sshca.GenerateKey()
	hostCA, _, _ := sshca.GenerateKey()
	svc.sshCA = sshca.New(userCA, hostCA)
	svc.sshCA.Now = clk.now

	bad := in
	bad.PublicKey = "not a key"
	if _, err := svc.IssueSSHCert(ctx, p, bad); !airlock.IsCode(err, airlock.EINVALID) {
		t.Fatalf("bad key: %v", err)
	}
	pg := in
	pg.Resource, pg.Login = "prod-db", "read"
	if _, err := svc.IssueSSHCert(ctx, p, pg); !airlock.IsCode(err, airlock.EINVALID) {
		t.Fatalf("postgres resource: %v", err)
	}

	c, err := svc.IssueSSHCert(ctx, p, in)
	if err != nil {
		t.Fatal(err)
	}
	if c.Grant.ID != "gr_ssh" || c.Resource.Name != "web-1" {
		t.Fatalf("grant %s, resource %s", c.Grant.ID, c.Resource.Name)
	}
	cert := c.Certificate
	if cert.CertType != ssh.UserCert || len(cert.ValidPrincipals) != 1 || cert.ValidPrincipals[0] != "alice" || cert.KeyId != "airlock:alice:gr_ssh" ||
		cert.Permissions.Extensions[sshca.ExtGrant] != "gr_ssh" || string(cert.Key.Marshal()) != string(key.PublicKey().Marshal()) {
		t.Fatalf("certificate %+v", cert)
	}
	if until := time.Unix(int64(cert.ValidBefore), 0); !until.Equal(t0.Add(SSHUserCertLifetime)) {
		t.Fatalf("valid until %s, want %s", until, t0.Add(SSHUserCertLifetime))
	}
	al.Flush()
	evs, _ := store.ListEvents(ctx, airlock.EventFilter{Action: "ssh.cert_issued"})
	if len(evs) != 1 {
		t.Fatalf("%d ssh.cert_issued events, want 1 (none for the refusals)", len(evs))
	}
	e := evs[0]
	if e.Actor.Name != "alice" || e.Resource != "web-1" || e.GrantID != "gr_ssh" || e.RequestID != "req_ssh" || e.SourceAddr != p.Source ||
		e.Outcome != airlock.OutcomeSuccess {
		t.Fatalf("event %+v", e)
	}
	var details map[string]string
	if err := json.Unmarshal(e.Details, &details); err != nil {
		t.Fatalf("details %s: %v", e.Details, err)
	}
	want := map[string]string{"login": "ubuntu", "key_id": "airlock:alice:gr_ssh", "fingerprint": ssh.FingerprintSHA256(key.PublicKey())}
	if !maps.Equal(details, want) {
		t.Fatalf("details %v, want %v", details, want)
	}
	if kh := svc.SSHKnownHosts("gw.example"); kh != svc.sshCA.KnownHostsLine("gw.example", "[gw.example]:*", "localhost", "[localhost]:*") {
		t.Fatalf("known hosts %q", kh)
	}
}
