package api

import (
	"net/url"
	"strings"
)

// Routes of the API: each path is registered by Server (with its method)
// and called by Client, from these constants only. A route with a
// {wildcard} is filled in by routePath. RouteRequest, RouteStatement and
// RouteAdminUser are also prefixes: the review and user-state routes append
// "/"+decision (airlock.DecisionApprove, airlock.DecisionDeny) and
// "/disable" or "/enable".
const (
	RouteInfo = "/api/v1/info"

	// Identity.
	RouteBootstrap                 = "/api/v1/bootstrap"
	RouteLogin                     = "/api/v1/login"
	RouteLoginFactor               = "/api/v1/login/factor"
	RouteLoginWebAuthnBegin        = "/api/v1/login/webauthn/begin"
	RouteLogout                    = "/api/v1/logout"
	RouteWhoAmI                    = "/api/v1/whoami"
	RouteMFAVerify                 = "/api/v1/mfa/verify"
	RouteMFAWebAuthnVerifyBegin    = "/api/v1/mfa/webauthn/verify/begin"
	RouteMFAFactors                = "/api/v1/mfa/factors"
	RouteMFAFactor                 = "/api/v1/mfa/factors/{id}"
	RouteMFAFactorConfirm          = "/api/v1/mfa/factors/{id}/confirm"
	RouteMFATOTP                   = "/api/v1/mfa/totp"
	RouteMFARecoveryCodes          = "/api/v1/mfa/recovery-codes"
	RouteMFAWebAuthnRegisterBegin  = "/api/v1/mfa/webauthn/register/begin"
	RouteMFAWebAuthnRegisterFinish = "/api/v1/mfa/webauthn/register/finish"
	RouteAdminUsers                = "/api/v1/admin/users"
	RouteAdminUser                 = "/api/v1/admin/users/{name}" // + "/disable" or "/enable"
	RouteAdminGroups               = "/api/v1/admin/groups"

	// Single sign-on.
	RouteOIDCStart    = "/api/v1/oidc/start"
	RouteOIDCCallback = "/api/v1/oidc/callback"
	RouteOIDCPoll     = "/api/v1/oidc/poll"

	// Browser login for the CLI and push step-up (PushHandler, mounted
	// on PrefixWebLogin and PrefixPush).
	RouteWebLoginStart   = "/api/v1/login/web/start"
	RouteWebLoginPoll    = "/api/v1/login/web/poll"
	RoutePushVerifyBegin = "/api/v1/push/verify/begin"
	RoutePushVerify      = "/api/v1/push/verify/{id}"

	// Access.
	RouteAdminResources   = "/api/v1/admin/resources"
	RouteAdminResource    = "/api/v1/admin/resources/{name}"
	RoutePolicyCheck      = "/api/v1/policy/check"
	RoutePolicy           = "/api/v1/policy"
	RouteResources        = "/api/v1/resources"
	RouteRequests         = "/api/v1/requests"
	RouteRequest          = "/api/v1/requests/{id}" // + "/"+decision to review
	RouteGrants           = "/api/v1/grants"
	RouteGrantRevoke      = "/api/v1/grants/{id}/revoke"
	RouteGrantAck         = "/api/v1/grants/{id}/ack"
	RouteBreakGlass       = "/api/v1/break-glass"
	RouteConnectTokens    = "/api/v1/connect-tokens"
	RouteDBCredentials    = "/api/v1/db-credentials"
	RouteResourceCheck    = "/api/v1/admin/resources/{name}/check"
	RouteResourceRotate   = "/api/v1/admin/resources/{name}/rotate"
	RouteSSHCerts         = "/api/v1/ssh/certs"
	RouteHTTPTokens       = "/api/v1/http/tokens"
	RouteKubeTokens       = "/api/v1/kube/tokens"
	RouteSessions         = "/api/v1/sessions"
	RouteSession          = "/api/v1/sessions/{id}"
	RouteSessionKill      = "/api/v1/sessions/{id}/kill"
	RouteSessionRecording = "/api/v1/sessions/{id}/recording"
	// Statements held for approval (require_approval).
	RouteStatements = "/api/v1/statements"
	RouteStatement  = "/api/v1/statements/{id}" // + "/"+decision to decide

	// Audit.
	RouteAuditEvents = "/api/v1/audit/events"
	RouteAuditExport = "/api/v1/audit/export"
	RouteAuditVerify = "/api/v1/audit/verify"
	RouteAuditPubkey = "/api/v1/audit/pubkey"
	// RouteAuditProof: ?seq=N an inclusion proof against the latest
	// signed tree head; ?old=A&new=B a consistency proof between two.
	RouteAuditProof = "/api/v1/audit/proof"

	// Reports and evidence.
	RouteReportAccess = "/api/v1/reports/access"
	RouteEvidence     = "/api/v1/evidence/{id}" // a grant's evidence pack (zip)
)

// The prefixes PushHandler serves, next to Handler.
const (
	PrefixWebLogin = "/api/v1/login/web/"
	PrefixPush     = "/api/v1/push/"
)

// routePath fills route's {wildcard} segments, in order, with args
// (path-escaped).
func routePath(route string, args ...string) string {
	segs := strings.Split(route, "/")
	for i, s := range segs {
		if len(args) > 0 && strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			segs[i] = url.PathEscape(args[0])
			args = args[1:]
		}
	}
	return strings.Join(segs, "/")
}
