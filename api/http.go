package api

import (
	"net/http"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/identity"
)

// HTTPTokenResponse is a minted app token for the HTTP gateway, with where
// to reach the app.
type HTTPTokenResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	GrantID   string    `json:"grant_id"`
	Resource  string    `json:"resource"`
	Access    string    `json:"access"`
	GrantEnds time.Time `json:"grant_ends_at"`
	// Host is the app's public host; GatewayAddr and Port are where the
	// gateway listens and the port apps are reached on.
	Host        string `json:"host"`
	GatewayAddr string `json:"gateway_addr"`
	Port        string `json:"port"`
	// TLSCA is the PEM of the CA the gateway's certificate chains to
	// (when it is the data dir's own).
	TLSCA string `json:"tls_ca,omitempty"`
}

// HTTPTokenRenewBefore is when a client renews an app token: this long
// before it expires (a third of access.HTTPTokenTTL).
const HTTPTokenRenewBefore = 5 * time.Minute

// KubeTokenResponse is a minted token for the Kubernetes gateway, with
// the cluster's URL there.
type KubeTokenResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	GrantID   string    `json:"grant_id"`
	Resource  string    `json:"resource"`
	Access    string    `json:"access"`
	GrantEnds time.Time `json:"grant_ends_at"`
	// Server is the cluster's URL on the gateway (a kubeconfig's server).
	Server string `json:"server"`
	// TLSCA is the PEM of the CA the gateway's certificate chains to.
	TLSCA string `json:"tls_ca,omitempty"`
}

func (s *Server) routesHTTP() {
	s.mux.HandleFunc("POST "+RouteKubeTokens, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		serve(s, w, r, http.StatusCreated, func(in ConnectRequest) (*KubeTokenResponse, error) {
			if s.Gateways.KubeURL == "" {
				return nil, airlock.Errorf(airlock.EINVALID, "the Kubernetes gateway is not enabled on this server (--kube-addr)")
			}
			t, err := s.Access.MintKubeToken(r.Context(), p, in.Resource, in.Access, identity.StepUp{OTP: in.OTP})
			if err != nil {
				return nil, err
			}
			return &KubeTokenResponse{Token: t.Token, ExpiresAt: t.ExpiresAt, GrantID: t.GrantID,
				Resource: t.Resource, Access: t.Access, GrantEnds: t.GrantEnds,
				Server: s.Gateways.KubeURL + airlock.KubePathPrefix + t.Resource, TLSCA: s.Gateways.TLSCA}, nil
		})
	}))
	s.mux.HandleFunc("POST "+RouteHTTPTokens, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		serve(s, w, r, http.StatusCreated, func(in ConnectRequest) (*HTTPTokenResponse, error) {
			if s.Gateways.HTTPAppsDomain == "" {
				return nil, airlock.Errorf(airlock.EINVALID, "the HTTP gateway is not enabled on this server (--http-apps-addr)")
			}
			t, err := s.Access.MintHTTPToken(r.Context(), p, in.Resource, in.Access, identity.StepUp{OTP: in.OTP}, s.Gateways.HTTPAppsDomain)
			if err != nil {
				return nil, err
			}
			return &HTTPTokenResponse{Token: t.Token, ExpiresAt: t.ExpiresAt, GrantID: t.GrantID,
				Resource: t.Resource, Access: t.Access, GrantEnds: t.GrantEnds, Host: t.Host,
				GatewayAddr: s.Gateways.HTTPAppsAddr, Port: s.Gateways.HTTPAppsPort, TLSCA: s.Gateways.TLSCA}, nil
		})
	}))
}
