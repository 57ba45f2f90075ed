package api

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/identity"
)

// MaxBodyBytes bounds every JSON request body.
const MaxBodyBytes = 1 << 20

// Server serves the JSON API.
type Server struct {
	Identity *identity.Service
	Access   *access.Service
	Audit    *AuditDeps
	Gateways GatewayInfo
	Logger   *slog.Logger
	Now      func() time.Time
	// Recordings opens session recordings (nil: none).
	Recordings RecordingOpener

	mux      *http.ServeMux
	stopOnce sync.Once
	stopMu   sync.Mutex
	stopped  chan struct{}
	follows  map[string]int // user ID -> open following audit reads
}

// CloseStreams ends the responses that stream until the client leaves
// (a following audit read), so that http.Server.Shutdown need not wait
// for them: register it with http.Server.RegisterOnShutdown.
func (s *Server) CloseStreams() {
	s.stopOnce.Do(func() { close(s.streamsDone()) })
}

func (s *Server) streamsDone() chan struct{} {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if s.stopped == nil {
		s.stopped = make(chan struct{})
	}
	return s.stopped
}

// GatewayInfo tells clients where the gateways listen.
type GatewayInfo struct {
	PGAddr    string `json:"pg_addr,omitempty"`
	SSHAddr   string `json:"ssh_addr,omitempty"`
	TLSCA     string `json:"tls_ca,omitempty"`      // PEM of the gateway TLS CA
	SSHHostCA string `json:"ssh_host_ca,omitempty"` // authorized_keys line of the host CA
	SSHUserCA string `json:"ssh_user_ca,omitempty"` // authorized_keys line of the user CA (for TrustedUserCAKeys)
	// The HTTP gateway: its address, the apps domain and the port apps are
	// reached on (https://APP.DOMAIN:PORT).
	HTTPAppsAddr   string `json:"http_apps_addr,omitempty"`
	HTTPAppsDomain string `json:"http_apps_domain,omitempty"`
	HTTPAppsPort   string `json:"http_apps_port,omitempty"`
	// KubeURL is the Kubernetes gateway's base URL (a cluster is
	// KubeURL/k8s/RESOURCE).
	KubeURL string `json:"kube_url,omitempty"`
	// MySQLAddr is the MySQL gateway's address.
	MySQLAddr string `json:"mysql_addr,omitempty"`
}

// Handler returns the API's http.Handler. Call once after the fields are set.
func (s *Server) Handler() http.Handler {
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	s.mux = http.NewServeMux()
	s.routesIdentity()
	s.routesOIDC()
	if s.Access != nil {
		s.routesAccess()
		s.routesConnect()
		s.routesHTTP()
		s.routesReport()
	}
	if s.Audit != nil {
		s.routesAudit()
		if s.Audit.Evidence != nil {
			s.routesEvidence()
		}
	}
	s.mux.HandleFunc("GET "+RouteInfo, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Gateways)
	})
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, airlock.Errorf(airlock.ENOTFOUND, "no API endpoint %s %s", r.Method, r.URL.Path))
	})
	return s.mux
}

// statusOf maps error codes to HTTP status: the one table.
var statusOf = map[string]int{
	airlock.ECONFLICT:     http.StatusConflict,
	airlock.EINTERNAL:     http.StatusInternalServerError,
	airlock.EINVALID:      http.StatusBadRequest,
	airlock.ENOTFOUND:     http.StatusNotFound,
	airlock.EUNAUTHORIZED: http.StatusUnauthorized,
	airlock.EFORBIDDEN:    http.StatusForbidden,
	airlock.EMFAREQUIRED:  http.StatusUnauthorized,
	airlock.ELOCKED:       http.StatusTooManyRequests,
	airlock.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	airlock.EUNAVAILABLE:  http.StatusServiceUnavailable,
	airlock.ENOTIMPL:      http.StatusNotImplemented,
}

// codeOfStatus is statusOf reversed, for the client.
func codeOfStatus(status int) string {
	for c, s := range statusOf {
		if s == status && c != airlock.EMFAREQUIRED {
			return c
		}
	}
	return airlock.EINTERNAL
}

type errorBody struct {
	Error struct {
		Code    string         `json:"code"`
		Message string         `json:"message"`
		Details map[string]any `json:"details,omitempty"`
	} `json:"error"`
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := airlock.ErrorCode(err)
	var b errorBody
	b.Error.Code = code
	b.Error.Message = airlock.ErrorMessage(err)
	var ae *airlock.Error
	if errors.As(err, &ae) {
		b.Error.Details = ae.Details
	}
	if code == airlock.EINTERNAL || code == airlock.EUNAVAILABLE {
		s.Logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	st := HTTPStatus(err)
	SetRetryAfter(w, err)
	writeJSON(w, st, b)
}

// HTTPStatus is the HTTP status for err's code (statusOf; 500 for a code
// it does not list). The console answers with it too.
func HTTPStatus(err error) int {
	if st, ok := statusOf[airlock.ErrorCode(err)]; ok {
		return st
	}
	return http.StatusInternalServerError
}

// SetRetryAfter sets Retry-After (RFC 9110 §10.2.3) when err is a
// throttling refusal (ELOCKED) whose details say when to retry.
func SetRetryAfter(w http.ResponseWriter, err error) {
	var ae *airlock.Error
	if !errors.As(err, &ae) || airlock.ErrorCode(err) != airlock.ELOCKED {
		return
	}
	if secs, ok := ae.Details["retry_after_seconds"].(int); ok && secs > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// decode reads a JSON body into v: at most MaxBodyBytes, unknown fields and
// trailing data refused.
func decode(r *http.Request, v any) error {
	if r.Body == nil {
		return airlock.Errorf(airlock.EINVALID, "request body required")
	}
	body := http.MaxBytesReader(nil, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return airlock.Errorf(airlock.ETOOLARGE, "request body is larger than %d bytes", MaxBodyBytes)
		case errors.Is(err, io.EOF):
			return airlock.Errorf(airlock.EINVALID, "request body required")
		default:
			return airlock.Errorf(airlock.EINVALID, "malformed JSON body: %v", err)
		}
	}
	if dec.More() {
		return airlock.Errorf(airlock.EINVALID, "malformed JSON body: trailing data")
	}
	return nil
}

// sourceAddr returns the caller's address (the TCP peer; proxies' headers are not trusted).
func sourceAddr(r *http.Request) string {
	return r.RemoteAddr
}

// SessionCookie is the console's login cookie name.
const SessionCookie = "airlock_session"

func bearer(r *http.Request) string {
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		return strings.TrimSpace(strings.TrimPrefix(h, "Bearer "))
	}
	if c, err := r.Cookie(SessionCookie); err == nil {
		return c.Value
	}
	return ""
}

type authedHandler func(w http.ResponseWriter, r *http.Request, p *identity.Principal)

// authed wraps h with login-session authentication.
func (s *Server) authed(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.Identity.Authenticate(r.Context(), bearer(r), sourceAddr(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		h(w, r, p)
	}
}

// enrolled is authed plus the requirement that the caller has a factor.
func (s *Server) enrolled(h authedHandler) http.HandlerFunc {
	return s.authed(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		if err := s.Identity.RequireEnrolled(p); err != nil {
			s.writeError(w, r, err)
			return
		}
		h(w, r, p)
	})
}

func hostOnly(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
