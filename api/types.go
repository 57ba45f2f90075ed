package api

import (
	"net/url"
	"strconv"

	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/identity"
)

// Wire types the API shares with the services it serves: the JSON is the
// service's own type, named here so that clients need only this package.
type (
	FactorInput     = identity.FactorInput
	ResourceInput   = access.ResourceInput
	ResourceOptions = access.ResourceOptions
	CredentialInput = access.CredentialInput
	ResourceView    = access.ResourceView
	CheckResult     = access.CheckResult
	PolicyInfo      = access.PolicyInfo
	Requestable     = access.Requestable
	RequestInput    = access.RequestInput
	RequestResult   = access.RequestResult
	RequestView     = access.RequestView
	RequestsFilter  = access.RequestsFilter
	ReviewInput     = access.ReviewInput
	StatementHold   = access.StatementHold
	GrantView       = access.GrantView
	ConnectToken    = access.ConnectToken
	DBCredential    = access.DirectCredential
	ResourceCheck   = access.ResourceCheck
	KillResult      = access.KillResult
	AuditReport     = audit.Report
	AuditProof      = audit.Proof
)

// TOTPEnrollRequest starts enrolling a TOTP factor.
type TOTPEnrollRequest struct {
	Name string `json:"name"`
	OTP  string `json:"otp,omitempty"`
}

// RecoveryCodes answers a request for new recovery codes.
type RecoveryCodes struct {
	Codes []string `json:"codes"`
}

// AckRequest acknowledges a break-glass grant.
type AckRequest struct {
	Comment string `json:"comment,omitempty"`
	OTP     string `json:"otp,omitempty"`
}

// AuditQuery selects audit events (the query of the audit routes). Zero
// fields select nothing.
type AuditQuery struct {
	Action   string // exact, or a prefix ending in * (grant.*)
	User     string
	Resource string
	Session  string
	Grant    string
	After    int64 // only events after this sequence number
	Limit    int
	Since    string // RFC 3339
	Until    string // RFC 3339
	Desc     bool   // newest first
	Follow   bool   // stream new events as they are written (AuditFollow)
}

func (q AuditQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"action": q.Action, "user": q.User, "resource": q.Resource, "session": q.Session,
		"grant": q.Grant, "since": q.Since, "until": q.Until} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.After != 0 || q.Follow {
		v.Set("after", strconv.FormatInt(q.After, 10))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Desc {
		v.Set("desc", "1")
	}
	if q.Follow {
		v.Set("follow", "1")
	}
	return v
}

// withQuery appends q to path, if q has any value.
func withQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}
