package access

import (
	"context"
	"crypto/tls"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/identity"
)

// Kubernetes access: a kubernetes resource is an API server (Addr, its
// https URL; TLSCA, the cluster's CA) reached through the Kubernetes
// gateway, which authenticates app tokens exactly like the HTTP gateway
// (MintHTTPToken, AuthenticateHTTP) and forwards with impersonation. Each
// access level's credential is what Airlock itself presents to the API
// server — a service-account token, or a client certificate and key in
// one PEM — and needs only the right to impersonate; the level's
// KubeGroups are the groups it impersonates (the cluster's RBAC decides
// what they may do) and its Namespaces, when set, the only namespaces the
// gateway forwards requests for (defence in depth; RBAC stays the real
// boundary).

// KubeTokenTTL bounds a token for the Kubernetes gateway: kubectl's exec
// credential plugin (airlock kube-credential) mints the next one when it
// runs out, asking for MFA only when the policy's freshness has passed.
const KubeTokenTTL = 10 * time.Minute

// MintKubeToken issues a token for p's grant on kubernetes resource
// resource, with the same checks as connecting (an active grant, MFA fresh
// per policy; a step-up factor is always verified when given).
func (s *Service) MintKubeToken(ctx context.Context, p *identity.Principal, resource, access string, su identity.StepUp) (*HTTPToken, error) {
	t, _, err := s.mintToken(ctx, p, resource, access, su, airlock.KindKubernetes, KubeTokenTTL)
	return t, err
}

// KubeAccess is what a kubernetes grant opens beyond HTTPAccess.
type KubeAccess struct {
	// Groups are impersonated with Impersonate-Group.
	Groups []string
	// Namespaces are the only namespaces requests may touch (none: all,
	// and cluster-scoped resources).
	Namespaces []string
	// ClientCert is the gateway's client certificate when the level's
	// credential is one (nil: the credential is a bearer token in
	// HTTPAccess.Header).
	ClientCert *tls.Certificate
}

// isPEMCredential reports whether a kubernetes credential is a client
// certificate and key rather than a bearer token.
func isPEMCredential(secret string) bool {
	return strings.Contains(secret, "-----BEGIN ")
}

// kubeClientCert parses a certificate-and-key credential.
func kubeClientCert(secret string) (*tls.Certificate, error) {
	c, err := tls.X509KeyPair([]byte(secret), []byte(secret))
	if err != nil {
		return nil, airlock.Errorf(airlock.EINVALID, "the credential is PEM but not a certificate with its private key")
	}
	return &c, nil
}

// validKubeName reports whether s is a DNS-1123 label (a namespace name).
func validKubeName(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range s {
		if !(c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// validKubeGroup reports whether s can go in an Impersonate-Group header.
func validKubeGroup(s string) bool {
	if s == "" || len(s) > 253 || strings.HasPrefix(s, "system:") && s != "system:authenticated" {
		return false // system: groups (system:masters) are the cluster's own, never handed out by a grant
	}
	for _, c := range s {
		if c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// checkKubeResource validates a kubernetes resource: an https API server
// URL, a credential for every access level (a token or a PEM certificate
// and key), and groups and namespaces only for its levels.
func checkKubeResource(name, addr string, o ResourceOptions, sealed map[string][]byte, creds map[string]CredentialInput) error {
	u, err := url.Parse(addr)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return airlock.Errorf(airlock.EINVALID, "resource %s: addr must be the API server's URL, https://HOST[:PORT]", name)
	}
	if o.TLSCA != "" {
		if _, err := airlock.ParseCAPEM([]byte(o.TLSCA)); err != nil {
			return airlock.Errorf(airlock.EINVALID, "resource %s: %s", name, airlock.ErrorMessage(err))
		}
	}
	if len(o.Levels) > 0 || len(o.Allow) > 0 || o.AuthHeader != "" || o.PublicHost != "" {
		return airlock.Errorf(airlock.EINVALID, "resource %s: public_host, levels, allow and auth_header apply to http resources only", name)
	}
	if len(creds) == 0 {
		return airlock.Errorf(airlock.EINVALID, "resource %s needs an access level: --credential LEVEL=:file:TOKEN_OR_PEM (the credential Airlock impersonates with)", name)
	}
	for level, c := range creds {
		switch {
		case c.Password == "":
			return airlock.Errorf(airlock.EINVALID, "resource %s: access level %s has an empty credential", name, level)
		case isPEMCredential(c.Password):
			if _, err := kubeClientCert(c.Password); err != nil {
				return airlock.Errorf(airlock.EINVALID, "resource %s: access level %s: %s", name, level, airlock.ErrorMessage(err))
			}
		case strings.ContainsAny(c.Password, " \t\r\n"):
			return airlock.Errorf(airlock.EINVALID, "resource %s: access level %s: a bearer token has no whitespace", name, level)
		}
	}
	for what, m := range map[string]map[string][]string{"kube_groups": o.KubeGroups, "namespaces": o.Namespaces} {
		for level, vs := range m {
			if _, ok := sealed[level]; !ok {
				return airlock.Errorf(airlock.EINVALID, "resource %s: %s for %q, which is not one of its access levels", name, what, level)
			}
			for _, v := range vs {
				if what == "namespaces" && !validKubeName(v) {
					return airlock.Errorf(airlock.EINVALID, "resource %s: %q is not a namespace name", name, v)
				}
				if what == "kube_groups" && !validKubeGroup(v) {
					return airlock.Errorf(airlock.EINVALID, "resource %s: %q cannot be impersonated (printable, no commas, not a system: group)", name, v)
				}
			}
		}
	}
	return nil
}

// kubeAccess fills a kubernetes grant's impersonation settings and turns
// its credential into a bearer header or a client certificate.
func kubeAccess(a *HTTPAccess, o ResourceOptions) error {
	k := &KubeAccess{Groups: slices.Clone(o.KubeGroups[a.Grant.Access]), Namespaces: slices.Clone(o.Namespaces[a.Grant.Access])}
	a.Kube = k
	a.Header = nil
	if a.Credential == nil {
		return airlock.Errorf(airlock.EINTERNAL, "resource %s has no credential for %s", a.Resource.Name, a.Grant.Access)
	}
	secret := a.Credential.Password.Reveal()
	if isPEMCredential(secret) {
		c, err := kubeClientCert(secret)
		if err != nil {
			return airlock.Errorf(airlock.EINTERNAL, "resource %s: the credential for %s is unusable", a.Resource.Name, a.Grant.Access)
		}
		k.ClientCert = c
		return nil
	}
	a.Header = map[string]string{"Authorization": "Bearer " + secret}
	return nil
}

// kubeSpecOptions reads a kubernetes resource's options from policy:
// groups_LEVEL and namespaces_LEVEL, comma-separated.
func kubeSpecOptions(opts map[string]string, o *ResourceOptions) {
	for k, v := range opts {
		for prefix, m := range map[string]*map[string][]string{"groups_": &o.KubeGroups, "namespaces_": &o.Namespaces} {
			level, ok := strings.CutPrefix(k, prefix)
			if !ok || level == "" {
				continue
			}
			if *m == nil {
				*m = map[string][]string{}
			}
			for _, x := range strings.Split(v, ",") {
				if x = strings.TrimSpace(x); x != "" {
					(*m)[level] = append((*m)[level], x)
				}
			}
		}
	}
}
