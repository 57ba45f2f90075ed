package api

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/identity"
	"github.com/airlockhq/airlock/sshca"
)

// SSHUserCertLifetime bounds certificates minted for `airlock ssh`.
const SSHUserCertLifetime = 5 * time.Minute

// SSHCertResponse is a short-lived user certificate for the SSH gateway.
type SSHCertResponse struct {
	Certificate string    `json:"certificate"` // authorized_keys format
	GrantID     string    `json:"grant_id"`
	Login       string    `json:"login"`
	Resource    string    `json:"resource"`
	ValidUntil  time.Time `json:"valid_until"`
	SSHAddr     string    `json:"ssh_addr"`
	KnownHosts  string    `json:"known_hosts"` // @cert-authority line for the gateway
}

func (s *Server) routesConnect() {
	s.mux.HandleFunc("POST /api/v1/ssh/certs", s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		if s.SSHCA == nil {
			s.writeError(w, r, airlock.Errorf(airlock.EINVALID, "the SSH gateway is not enabled on this server"))
			return
		}
		var in ConnectRequest
		if err := decode(r, &in); err != nil {
			s.writeError(w, r, err)
			return
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(in.PublicKey))
		if err != nil {
			s.writeError(w, r, airlock.Errorf(airlock.EINVALID, "public_key is not an OpenSSH public key"))
			return
		}
		g, res, _, err := s.Access.AuthorizeConnect(r.Context(), p, in.Resource, in.Access, identity.StepUp{OTP: in.OTP})
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if res.Kind != airlock.KindSSH {
			s.writeError(w, r, airlock.Errorf(airlock.EINVALID, "%s is a %s resource; use `airlock psql` for databases", res.Name, res.Kind))
			return
		}
		keyID := "airlock:" + p.User.Name + ":" + g.ID
		if _, err := s.Audit.Log.Record(r.Context(), airlock.Event{Actor: p.Actor(), Action: "ssh.cert_issued", Resource: res.Name, GrantID: g.ID,
			RequestID: g.RequestID, SourceAddr: p.Source, Outcome: airlock.OutcomeSuccess,
			Details: []byte(`{"login":"` + g.Access + `","key_id":"` + keyID + `","fingerprint":"` + ssh.FingerprintSHA256(pub) + `"}`)}); err != nil {
			s.writeError(w, r, airlock.WrapError(airlock.EUNAVAILABLE, "the audit log cannot be written; refused", err))
			return
		}
		cert, err := s.SSHCA.SignUserCert(pub, []string{p.User.Name}, keyID, SSHUserCertLifetime,
			map[string]string{sshca.ExtGrant: g.ID, "permit-pty": ""})
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		host := hostOnly(s.Gateways.SSHAddr)
		writeJSON(w, http.StatusCreated, SSHCertResponse{Certificate: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert))), GrantID: g.ID,
			Login: g.Access, Resource: res.Name, ValidUntil: time.Unix(int64(cert.ValidBefore), 0).UTC(), SSHAddr: s.Gateways.SSHAddr,
			KnownHosts: s.SSHCA.KnownHostsLine(host, "["+host+"]:*", "localhost", "[localhost]:*")})
	}))
	s.mux.HandleFunc("GET /api/v1/sessions/{id}/recording", s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		ss, err := s.Access.Session(r.Context(), p, r.PathValue("id"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if ss.Recording == "" || s.Recordings == nil {
			s.writeError(w, r, airlock.Errorf(airlock.ENOTFOUND, "session %s has no recording", ss.ID))
			return
		}
		rc, err := s.Recordings(r.Context(), ss.Recording)
		if err != nil {
			s.writeError(w, r, airlock.Errorf(airlock.ENOTFOUND, "the recording of session %s is missing", ss.ID))
			return
		}
		defer rc.Close()
		w.Header().Set("Content-Type", "application/x-asciicast")
		w.Header().Set("X-Airlock-Recording-SHA256", ss.RecordingSHA256)
		io.Copy(w, rc)
	}))
}

// RecordingOpener opens a stored session recording by key.
type RecordingOpener func(ctx context.Context, key string) (io.ReadCloser, error)
