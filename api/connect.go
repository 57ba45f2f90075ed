package api

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/identity"
)

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
	s.mux.HandleFunc("POST "+RouteSSHCerts, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		serve(s, w, r, http.StatusCreated, func(in ConnectRequest) (*SSHCertResponse, error) {
			c, err := s.Access.IssueSSHCert(r.Context(), p, access.SSHCertInput{Resource: in.Resource, Login: in.Access, PublicKey: in.PublicKey,
				StepUp: identity.StepUp{OTP: in.OTP}})
			if err != nil {
				return nil, err
			}
			return &SSHCertResponse{Certificate: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(c.Certificate))), GrantID: c.Grant.ID,
				Login: c.Grant.Access, Resource: c.Resource.Name, ValidUntil: time.Unix(int64(c.Certificate.ValidBefore), 0).UTC(), SSHAddr: s.Gateways.SSHAddr,
				KnownHosts: s.Access.SSHKnownHosts(hostOnly(s.Gateways.SSHAddr))}, nil
		})
	}))
	s.mux.HandleFunc("GET "+RouteSessionRecording, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		ss, err := s.Access.Session(r.Context(), p, r.PathValue("id"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		part := 0
		if q := r.URL.Query().Get("part"); q != "" {
			if part, err = strconv.Atoi(q); err != nil || part < 1 {
				s.writeError(w, r, airlock.Errorf(airlock.EINVALID, "part %q: a number from 1", q))
				return
			}
		}
		key, sha, err := ss.RecordingPart(part)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if s.Recordings == nil {
			s.writeError(w, r, airlock.Errorf(airlock.ENOTFOUND, "session %s has no recording this server can open", ss.ID))
			return
		}
		rc, err := s.Recordings(r.Context(), key)
		if err != nil {
			s.writeError(w, r, airlock.Errorf(airlock.ENOTFOUND, "the recording of session %s is missing", ss.ID))
			return
		}
		defer rc.Close()
		w.Header().Set("Content-Type", "application/x-asciicast")
		w.Header().Set("X-Airlock-Recording-SHA256", sha)
		io.Copy(w, rc)
	}))
}

// RecordingOpener opens a stored session recording by key.
type RecordingOpener func(ctx context.Context, key string) (io.ReadCloser, error)
