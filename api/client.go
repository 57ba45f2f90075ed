package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
)

// Client calls the Airlock API. The zero value is not usable; set BaseURL.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// NewClient returns a client for baseURL with token (may be empty).
func NewClient(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: &http.Client{Timeout: 60 * time.Second}}
}

// Do sends in (JSON, if non-nil) to method path and decodes the response
// into out (if non-nil). API errors come back as *airlock.Error with the
// server's code, message and details.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.Raw(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s %s response: %w", method, path, err)
	}
	return nil
}

// Raw sends a request and returns the response for a 2xx status; any
// other status is turned into an error.
func (c *Client) Raw(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, airlock.WrapError(airlock.EUNAVAILABLE,
			fmt.Sprintf("cannot reach the Airlock server at %s; is `airlock server` running? (set --server or AIRLOCK_SERVER)", c.BaseURL), err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	var eb errorBody
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err := json.Unmarshal(raw, &eb); err != nil || eb.Error.Code == "" {
		return nil, &airlock.Error{Code: codeOfStatus(resp.StatusCode), Message: fmt.Sprintf("server answered %s", resp.Status)}
	}
	return nil, &airlock.Error{Code: eb.Error.Code, Message: eb.Error.Message, Details: eb.Error.Details}
}

// call is Do for a typed method: it decodes the response into a new Out.
func call[Out any](ctx context.Context, c *Client, method, path string, in any) (*Out, error) {
	out := new(Out)
	if err := c.Do(ctx, method, path, in, out); err != nil {
		return nil, err
	}
	return out, nil
}

// list is call for a route that answers a JSON array.
func list[T any](ctx context.Context, c *Client, path string) ([]T, error) {
	var out []T
	if err := c.Do(ctx, "GET", path, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Info tells where the gateways listen (no login needed).
func (c *Client) Info(ctx context.Context) (*GatewayInfo, error) {
	return call[GatewayInfo](ctx, c, "GET", RouteInfo, nil)
}

// Identity.

// Bootstrap creates the first admin with the server's bootstrap token.
func (c *Client) Bootstrap(ctx context.Context, in BootstrapRequest) (*airlock.User, error) {
	return call[airlock.User](ctx, c, "POST", RouteBootstrap, in)
}

// Login sends the first login step. A second factor, when needed and not
// in in.FactorInput, is asked for with an mfa_required error whose
// details carry the challenge for LoginFactor.
func (c *Client) Login(ctx context.Context, in LoginRequest) (*LoginResponse, error) {
	return call[LoginResponse](ctx, c, "POST", RouteLogin, in)
}

// LoginFactor completes a login with a second factor.
func (c *Client) LoginFactor(ctx context.Context, in LoginFactorRequest) (*LoginResponse, error) {
	return call[LoginResponse](ctx, c, "POST", RouteLoginFactor, in)
}

// OIDCStartURL is the page that starts a browser SSO login whose result
// OIDCPoll fetches with poll.
func (c *Client) OIDCStartURL(poll string) string {
	return c.BaseURL + withQuery(RouteOIDCStart, url.Values{"cli": {poll}})
}

// OIDCPoll fetches the result of a browser SSO login (not_found while it
// is not complete).
func (c *Client) OIDCPoll(ctx context.Context, in OIDCPollRequest) (*LoginResponse, error) {
	return call[LoginResponse](ctx, c, "POST", RouteOIDCPoll, in)
}

// WebLoginStart starts a browser login for the CLI.
func (c *Client) WebLoginStart(ctx context.Context) (*WebLoginStart, error) {
	return call[WebLoginStart](ctx, c, "POST", RouteWebLoginStart, struct{}{})
}

// WebLoginPoll asks whether the browser login is done: a nil response
// (and nil error) while it is pending.
func (c *Client) WebLoginPoll(ctx context.Context, in WebLoginPoll) (*LoginResponse, error) {
	resp, err := c.Raw(ctx, "POST", RouteWebLoginPoll, in)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return nil, nil
	}
	var res LoginResponse
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return nil, fmt.Errorf("decode login response: %w", err)
	}
	return &res, nil
}

// Logout ends the login session.
func (c *Client) Logout(ctx context.Context) error {
	return c.Do(ctx, "POST", RouteLogout, nil, nil)
}

// WhoAmI describes the caller's session.
func (c *Client) WhoAmI(ctx context.Context) (*WhoAmI, error) {
	return call[WhoAmI](ctx, c, "GET", RouteWhoAmI, nil)
}

// VerifyMFA refreshes the session's MFA with a factor (always verified and
// audited, however fresh the session is).
func (c *Client) VerifyMFA(ctx context.Context, in FactorInput) (*WhoAmI, error) {
	return call[WhoAmI](ctx, c, "POST", RouteMFAVerify, in)
}

// Factors lists the caller's second factors.
func (c *Client) Factors(ctx context.Context) ([]airlock.Factor, error) {
	return list[airlock.Factor](ctx, c, RouteMFAFactors)
}

// EnrollTOTP adds a pending TOTP factor (ConfirmFactor activates it).
func (c *Client) EnrollTOTP(ctx context.Context, in TOTPEnrollRequest) (*TOTPEnrollResponse, error) {
	return call[TOTPEnrollResponse](ctx, c, "POST", RouteMFATOTP, in)
}

// ConfirmFactor activates a pending TOTP factor with a code from it.
func (c *Client) ConfirmFactor(ctx context.Context, id string, in OTPRequest) error {
	return c.Do(ctx, "POST", routePath(RouteMFAFactorConfirm, id), in, nil)
}

// RemoveFactor removes one of the caller's factors.
func (c *Client) RemoveFactor(ctx context.Context, id string) error {
	return c.Do(ctx, "DELETE", routePath(RouteMFAFactor, id), nil, nil)
}

// RecoveryCodes replaces the caller's recovery codes.
func (c *Client) RecoveryCodes(ctx context.Context, in OTPRequest) (*RecoveryCodes, error) {
	return call[RecoveryCodes](ctx, c, "POST", RouteMFARecoveryCodes, in)
}

// Users lists the users (admins).
func (c *Client) Users(ctx context.Context) ([]airlock.User, error) {
	return list[airlock.User](ctx, c, RouteAdminUsers)
}

// CreateUser adds a user (admins).
func (c *Client) CreateUser(ctx context.Context, in CreateUserRequest) (*airlock.User, error) {
	return call[airlock.User](ctx, c, "POST", RouteAdminUsers, in)
}

// SetUserDisabled disables or enables a user (admins).
func (c *Client) SetUserDisabled(ctx context.Context, name string, disabled bool, in OTPRequest) error {
	op := "/enable"
	if disabled {
		op = "/disable"
	}
	return c.Do(ctx, "POST", routePath(RouteAdminUser, name)+op, in, nil)
}

// Groups lists the groups and their members (admins).
func (c *Client) Groups(ctx context.Context) (map[string][]string, error) {
	var gs map[string][]string
	if err := c.Do(ctx, "GET", RouteAdminGroups, nil, &gs); err != nil {
		return nil, err
	}
	return gs, nil
}

// Access.

// AdminResources lists the resources with their settings (admins).
func (c *Client) AdminResources(ctx context.Context) ([]ResourceView, error) {
	return list[ResourceView](ctx, c, RouteAdminResources)
}

// AddResource adds or replaces a resource (admins).
func (c *Client) AddResource(ctx context.Context, in ResourceInput) (*ResourceView, error) {
	return call[ResourceView](ctx, c, "POST", RouteAdminResources, in)
}

// CheckResource reports the provisioning state of a resource with
// ephemeral credentials (admins).
func (c *Client) CheckResource(ctx context.Context, name string) (*ResourceCheck, error) {
	return call[ResourceCheck](ctx, c, "GET", routePath(RouteResourceCheck, name), nil)
}

// RotateProvisioner rotates the provisioning credential of a resource
// with ephemeral credentials on its database (admins).
func (c *Client) RotateProvisioner(ctx context.Context, name string, in OTPRequest) error {
	return c.Do(ctx, "POST", routePath(RouteResourceRotate, name), in, nil)
}

// RemoveResource removes a resource (admins).
func (c *Client) RemoveResource(ctx context.Context, name string) error {
	return c.Do(ctx, "DELETE", routePath(RouteAdminResource, name), nil, nil)
}

// CheckPolicy validates policy files without applying them.
func (c *Client) CheckPolicy(ctx context.Context, in PolicyFiles) (*CheckResult, error) {
	return call[CheckResult](ctx, c, "POST", RoutePolicyCheck, in)
}

// ApplyPolicy validates and applies policy files (admins).
func (c *Client) ApplyPolicy(ctx context.Context, in PolicyFiles) (*CheckResult, error) {
	return call[CheckResult](ctx, c, "POST", RoutePolicy, in)
}

// Policy shows the policy in force.
func (c *Client) Policy(ctx context.Context) (*PolicyInfo, error) {
	return call[PolicyInfo](ctx, c, "GET", RoutePolicy, nil)
}

// Resources lists what the caller may request.
func (c *Client) Resources(ctx context.Context) (*Requestable, error) {
	return call[Requestable](ctx, c, "GET", RouteResources, nil)
}

// CreateRequest asks for access (or, with DryRun, says what would happen).
func (c *Client) CreateRequest(ctx context.Context, in RequestInput) (*RequestResult, error) {
	return call[RequestResult](ctx, c, "POST", RouteRequests, in)
}

// Requests lists access requests.
func (c *Client) Requests(ctx context.Context, f RequestsFilter) ([]RequestView, error) {
	q := url.Values{}
	for k, on := range map[string]bool{"mine": f.Mine, "to_review": f.ToReview, "review_needed": f.ReviewNeeded} {
		if on {
			q.Set(k, "1")
		}
	}
	return list[RequestView](ctx, c, withQuery(RouteRequests, q))
}

// Request reads one access request.
func (c *Client) Request(ctx context.Context, id string) (*RequestView, error) {
	return call[RequestView](ctx, c, "GET", routePath(RouteRequest, id), nil)
}

// Review approves or denies a request (decision is
// airlock.DecisionApprove or airlock.DecisionDeny; in.Decision is not sent
// apart from it).
func (c *Client) Review(ctx context.Context, id, decision string, in ReviewInput) (*RequestResult, error) {
	return call[RequestResult](ctx, c, "POST", routePath(RouteRequest, id)+"/"+url.PathEscape(decision), in)
}

// Statements lists the held statements the caller may decide, and the
// caller's own.
func (c *Client) Statements(ctx context.Context) ([]StatementHold, error) {
	return list[StatementHold](ctx, c, RouteStatements)
}

// Statement returns held statement id.
func (c *Client) Statement(ctx context.Context, id string) (*StatementHold, error) {
	return call[StatementHold](ctx, c, "GET", routePath(RouteStatement, id), nil)
}

// DecideStatement approves or denies held statement id
// (airlock.DecisionApprove, airlock.DecisionDeny).
func (c *Client) DecideStatement(ctx context.Context, id, decision string, in ReviewInput) (*StatementHold, error) {
	return call[StatementHold](ctx, c, "POST", routePath(RouteStatement, id)+"/"+url.PathEscape(decision), in)
}

// Grants lists the caller's grants (all: everyone's, for admins).
func (c *Client) Grants(ctx context.Context, all bool) ([]GrantView, error) {
	q := url.Values{}
	if all {
		q.Set("all", "1")
	}
	return list[GrantView](ctx, c, withQuery(RouteGrants, q))
}

// RevokeGrant ends a grant early.
func (c *Client) RevokeGrant(ctx context.Context, id string, in RevokeRequest) (*airlock.Grant, error) {
	return call[airlock.Grant](ctx, c, "POST", routePath(RouteGrantRevoke, id), in)
}

// AckGrant acknowledges a break-glass grant.
func (c *Client) AckGrant(ctx context.Context, id string, in AckRequest) (*airlock.Grant, error) {
	return call[airlock.Grant](ctx, c, "POST", routePath(RouteGrantAck, id), in)
}

// BreakGlass grants emergency access at once (reviewed afterwards).
func (c *Client) BreakGlass(ctx context.Context, in RequestInput) (*RequestResult, error) {
	return call[RequestResult](ctx, c, "POST", RouteBreakGlass, in)
}

// MintConnectToken issues a one-use token for a database connection under
// the caller's grant.
func (c *Client) MintConnectToken(ctx context.Context, in ConnectRequest) (*ConnectToken, error) {
	return call[ConnectToken](ctx, c, "POST", RouteConnectTokens, in)
}

// DeliverDBCredential hands the caller the database login of their grant
// on a resource with ephemeral credentials, where the rule allows it.
func (c *Client) DeliverDBCredential(ctx context.Context, in ConnectRequest) (*DBCredential, error) {
	return call[DBCredential](ctx, c, "POST", RouteDBCredentials, in)
}

// MintHTTPToken mints an app token for the HTTP gateway under the caller's
// grant on an http resource.
func (c *Client) MintHTTPToken(ctx context.Context, in ConnectRequest) (*HTTPTokenResponse, error) {
	return call[HTTPTokenResponse](ctx, c, "POST", RouteHTTPTokens, in)
}

// MintKubeToken mints a token for the Kubernetes gateway under the
// caller's grant on a kubernetes resource.
func (c *Client) MintKubeToken(ctx context.Context, in ConnectRequest) (*KubeTokenResponse, error) {
	return call[KubeTokenResponse](ctx, c, "POST", RouteKubeTokens, in)
}

// SSHCert signs in.PublicKey for the SSH gateway under the caller's grant.
func (c *Client) SSHCert(ctx context.Context, in ConnectRequest) (*SSHCertResponse, error) {
	return call[SSHCertResponse](ctx, c, "POST", RouteSSHCerts, in)
}

// Sessions lists gateway sessions (active: only live ones).
func (c *Client) Sessions(ctx context.Context, active bool) ([]airlock.Session, error) {
	q := url.Values{}
	if active {
		q.Set("active", "1")
	}
	return list[airlock.Session](ctx, c, withQuery(RouteSessions, q))
}

// Session reads one gateway session.
func (c *Client) Session(ctx context.Context, id string) (*airlock.Session, error) {
	return call[airlock.Session](ctx, c, "GET", routePath(RouteSession, id), nil)
}

// KillSession ends a live session.
func (c *Client) KillSession(ctx context.Context, id string, in OTPRequest) (*KillResult, error) {
	return call[KillResult](ctx, c, "POST", routePath(RouteSessionKill, id), in)
}

// Recording is a session recording as the server streams it.
type Recording struct {
	Body   io.ReadCloser // asciicast v2; the caller closes it
	SHA256 string        // the digest stored when the session ended (may be empty)
}

// Recording opens a recording of session id: part 0 its only one (an SSH
// session's terminal, or a Kubernetes session with one exec -it), part N
// its Nth (each exec or attach with a terminal has its own).
func (c *Client) Recording(ctx context.Context, id string, part int) (*Recording, error) {
	route := routePath(RouteSessionRecording, id)
	if part > 0 {
		route = withQuery(route, url.Values{"part": {strconv.Itoa(part)}})
	}
	resp, err := c.Raw(ctx, "GET", route, nil)
	if err != nil {
		return nil, err
	}
	return &Recording{Body: resp.Body, SHA256: resp.Header.Get("X-Airlock-Recording-SHA256")}, nil
}

// Audit.

// AuditEvents reads audit events.
func (c *Client) AuditEvents(ctx context.Context, q AuditQuery) ([]airlock.Event, error) {
	q.Follow = false
	return list[airlock.Event](ctx, c, withQuery(RouteAuditEvents, q.values()))
}

// EventStream is a following audit read: the events after the query's
// After as the server writes them.
type EventStream struct {
	body io.ReadCloser
	dec  *json.Decoder
}

// Next returns the next event; io.EOF when the server ended the stream.
func (s *EventStream) Next() (airlock.Event, error) {
	var e airlock.Event
	err := s.dec.Decode(&e)
	return e, err
}

// Close ends the stream.
func (s *EventStream) Close() error { return s.body.Close() }

// AuditFollow opens a following audit read. It lasts until ctx ends or
// the server ends it, whatever the client's timeout.
func (c *Client) AuditFollow(ctx context.Context, q AuditQuery) (*EventStream, error) {
	q.Follow = true
	stream := *c
	hc := http.Client{}
	if c.HTTP != nil {
		hc = *c.HTTP
	}
	hc.Timeout = 0
	stream.HTTP = &hc
	resp, err := stream.Raw(ctx, "GET", withQuery(RouteAuditEvents, q.values()), nil)
	if err != nil {
		return nil, err
	}
	return &EventStream{body: resp.Body, dec: json.NewDecoder(resp.Body)}, nil
}

// AuditExport streams the log with its signed checkpoints as JSON Lines;
// the caller closes it.
func (c *Client) AuditExport(ctx context.Context, q AuditQuery) (io.ReadCloser, error) {
	q.Follow = false
	resp, err := c.Raw(ctx, "GET", withQuery(RouteAuditExport, q.values()), nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// AuditVerify checks the stored hash chain and checkpoints.
func (c *Client) AuditVerify(ctx context.Context) (*AuditReport, error) {
	return call[AuditReport](ctx, c, "GET", RouteAuditVerify, nil)
}

// AuditProve returns the inclusion proof of event seq against the latest
// signed tree head.
func (c *Client) AuditProve(ctx context.Context, seq int64) (*AuditProof, error) {
	return call[AuditProof](ctx, c, "GET", withQuery(RouteAuditProof, url.Values{"seq": {strconv.FormatInt(seq, 10)}}), nil)
}

// AuditConsistency returns the consistency proof between the signed tree
// heads of sizes old and new.
func (c *Client) AuditConsistency(ctx context.Context, old, new int64) (*AuditProof, error) {
	return call[AuditProof](ctx, c, "GET", withQuery(RouteAuditProof, url.Values{
		"old": {strconv.FormatInt(old, 10)}, "new": {strconv.FormatInt(new, 10)}}), nil)
}

// AuditPublicKey is the checkpoint public key (PEM), for offline
// verification of an export.
func (c *Client) AuditPublicKey(ctx context.Context) ([]byte, error) {
	resp, err := c.Raw(ctx, "GET", RouteAuditPubkey, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}
