package access

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/identity"
	"github.com/airlockhq/airlock/policy"
)

// RequestInput asks for access.
type RequestInput struct {
	Resource       string        `json:"resource"`
	Access         string        `json:"access"`
	Duration       time.Duration `json:"duration"`
	Reason         string        `json:"reason"`
	Ticket         string        `json:"ticket,omitempty"`
	StartAt        time.Time     `json:"start_at,omitzero"`
	DryRun         bool          `json:"dry_run,omitempty"`
	ExtendsGrantID string        `json:"extends_grant_id,omitempty"`
	// StepUp, when set, is verified before a break-glass activation.
	identity.StepUp
}

// DryRun explains what a request would do.
type DryRun struct {
	Allowed           bool          `json:"allowed"`
	Rule              string        `json:"rule"`
	Why               string        `json:"why"`
	MaxDuration       time.Duration `json:"max_duration"`
	RequiredApprovals int           `json:"required_approvals"`
	ApproverGroups    []string      `json:"approver_groups"`
	Approvers         []string      `json:"approvers"`
	AutoApprove       bool          `json:"auto_approve"`
	ReasonRequired    bool          `json:"reason_required"`
	ReasonPrompt      string        `json:"reason_prompt,omitempty"`
	BreakGlass        bool          `json:"break_glass_allowed"`
}

// RequestResult is the outcome of a request.
type RequestResult struct {
	Request *airlock.AccessRequest `json:"request,omitempty"`
	Grant   *airlock.Grant         `json:"grant,omitempty"`
	DryRun  *DryRun                `json:"dry_run,omitempty"`
}

// maxScheduleAhead bounds scheduled starts.
const maxScheduleAhead = 30 * 24 * time.Hour

func (s *Service) decide(ctx context.Context, u *airlock.User, r *airlock.Resource, access string, d time.Duration, breakGlass bool) policy.Decision {
	pol, _ := s.Policy()
	return pol.Evaluate(policy.Input{Subject: policy.Subject{Name: u.Name, Groups: u.Groups}, Resource: policyResource(r),
		Access: access, Duration: d, Now: s.now(), BreakGlass: breakGlass})
}

// approvers lists the enabled users who could approve under d, except exclude.
func (s *Service) approvers(ctx context.Context, d policy.Decision, exclude string) []string {
	us, err := s.store.ListUsers(ctx)
	if err != nil {
		return nil
	}
	var out []string
	for _, u := range us {
		if u.ID == exclude || u.Disabled {
			continue
		}
		if policy.CanApprove(policy.Subject{Name: u.Name, Groups: u.Groups}, d) {
			out = append(out, u.Name)
		}
	}
	return out
}

func approverGroups(d policy.Decision) []string {
	if len(d.ApproverGroups) == 0 {
		return []string{airlock.GroupAdmins}
	}
	return append([]string(nil), d.ApproverGroups...)
}

// dryRun explains decision d for u. Who approves, how many and the limits
// are shown only to someone the policy makes eligible for this resource
// and access level (at some duration): to anyone else a dry run says no
// and why, and names no approver, group or limit.
func (s *Service) dryRun(ctx context.Context, u *airlock.User, r *airlock.Resource, in RequestInput, d policy.Decision) *DryRun {
	eligible := d
	if !d.Allowed {
		eligible = s.decide(ctx, u, r, in.Access, 0, false)
	}
	if !eligible.Allowed {
		return &DryRun{Allowed: false, Why: s.refusalShown(u, r, in.Access, d), ApproverGroups: []string{}, Approvers: []string{}}
	}
	approvers := s.approvers(ctx, eligible, u.ID)
	if approvers == nil {
		approvers = []string{}
	}
	return &DryRun{Allowed: d.Allowed, Rule: d.Rule, Why: d.Reason, MaxDuration: eligible.MaxDuration, RequiredApprovals: eligible.RequiredApprovals,
		ApproverGroups: approverGroups(eligible), Approvers: approvers, AutoApprove: d.AutoApprove,
		ReasonRequired: eligible.ReasonRequired, ReasonPrompt: eligible.ReasonPrompt, BreakGlass: eligible.BreakGlassAllowed}
}

// Request files an access request (or, with DryRun, explains one). Errors:
// ENOTFOUND (unknown resource, with close names), EFORBIDDEN (policy),
// EINVALID (duration over the max, missing reason, bad start).
func (s *Service) Request(ctx context.Context, p *identity.Principal, in RequestInput) (*RequestResult, error) {
	if err := s.ident.RequireEnrolled(p); err != nil {
		return nil, err
	}
	r, err := s.resourceFor(ctx, p.User, in.Resource)
	if err != nil {
		return nil, err
	}
	if in.Access == "" {
		if !p.User.IsAdmin() && !s.mayRequest(p.User, r) {
			return nil, airlock.Errorf(airlock.EINVALID, "--access is required")
		}
		return nil, airlock.Errorf(airlock.EINVALID, "--access is required; %s offers: %s", r.Name, strings.Join(sortedLevels(r), ", "))
	}
	d := s.decide(ctx, p.User, r, in.Access, in.Duration, false)
	if in.DryRun {
		return &RequestResult{DryRun: s.dryRun(ctx, p.User, r, in, d)}, nil
	}
	if in.Duration <= 0 {
		return nil, airlock.Errorf(airlock.EINVALID, "--for DURATION is required (at most %s for %s %s)", fmtDur(d.MaxDuration), r.Name, in.Access)
	}
	if !d.Allowed {
		if d.MaxDuration > 0 && in.Duration > d.MaxDuration && d.Rule != "" {
			return nil, airlock.Errorf(airlock.EINVALID, "duration %s exceeds the maximum of %s for %s %s (rule %s)", fmtDur(in.Duration), fmtDur(d.MaxDuration), r.Name, in.Access, d.Rule)
		}
		s.record(ctx, airlock.Event{Actor: p.Actor(), Action: "request.refused", Resource: r.Name, SourceAddr: p.Source, Outcome: airlock.OutcomeDenied,
			Details: airlock.EventDetails("access", in.Access, "duration", in.Duration.String(), "why", d.Reason)})
		why := d.Reason
		if !s.decide(ctx, p.User, r, in.Access, 0, false).Allowed {
			why = s.refusalShown(p.User, r, in.Access, d)
		}
		return nil, airlock.Errorf(airlock.EFORBIDDEN, "policy does not allow this request: %s", why)
	}
	if d.ReasonRequired && strings.TrimSpace(in.Reason) == "" {
		prompt := d.ReasonPrompt
		if prompt == "" {
			prompt = "why do you need access?"
		}
		return nil, airlock.Errorf(airlock.EINVALID, "a reason is required (%s): pass --reason TEXT", prompt)
	}
	if len(in.Reason) > 1000 || len(in.Ticket) > 200 {
		return nil, airlock.Errorf(airlock.EINVALID, "reason (1000) or ticket (200 characters) is too long")
	}
	now := s.now().UTC()
	if !in.StartAt.IsZero() {
		if in.StartAt.Before(now) || in.StartAt.Sub(now) > maxScheduleAhead {
			return nil, airlock.Errorf(airlock.EINVALID, "--start must be in the future and within 30 days")
		}
		in.StartAt = in.StartAt.UTC()
	}
	if in.ExtendsGrantID != "" {
		g, err := s.store.GrantByID(ctx, in.ExtendsGrantID)
		if err != nil || g.UserID != p.User.ID {
			return nil, airlock.Errorf(airlock.ENOTFOUND, "no grant %q of yours to extend", in.ExtendsGrantID)
		}
	}
	ttl := d.PendingTTL
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	_, ver := s.Policy()
	req := &airlock.AccessRequest{ID: airlock.NewID("req"), UserID: p.User.ID, UserName: p.User.Name, Resource: r.Name, Access: in.Access,
		Duration: in.Duration, Reason: in.Reason, Ticket: in.Ticket, StartAt: in.StartAt, State: airlock.RequestPending, Rule: d.Rule,
		RequiredApprovals: d.RequiredApprovals, ApproverGroups: approverGroups(d), ExtendsGrantID: in.ExtendsGrantID, PolicyVersion: ver,
		CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := s.change(ctx, airlock.Event{Actor: p.Actor(), Action: "request.created", Resource: r.Name, RequestID: req.ID, SourceAddr: p.Source,
		Details: airlock.EventDetails("access", in.Access, "duration", in.Duration.String(), "reason", in.Reason, "ticket", in.Ticket, "rule", d.Rule,
			"auto_approve", d.AutoApprove, "extends_grant_id", in.ExtendsGrantID, "policy_version", ver)},
		func(ctx context.Context) error { return s.store.CreateRequest(ctx, req) }); err != nil {
		return nil, err
	}
	res := &RequestResult{Request: req}
	if d.AutoApprove {
		g, err := s.grant(ctx, req, airlock.SystemActor, p.Session.MFAMethod, "auto-approved by rule "+d.Rule)
		if err != nil {
			return nil, err
		}
		res.Grant = g
		res.Request, _ = s.store.RequestByID(ctx, req.ID)
		return res, nil
	}
	s.notify(context.WithoutCancel(ctx), d.Notify, Notification{Kind: "request.created", RequestID: req.ID, User: req.UserName,
		Resource: req.Resource, Access: req.Access, Duration: req.Duration, Reason: req.Reason, Ticket: req.Ticket, URL: s.requestURL(req.ID)})
	return res, nil
}

func (s *Service) requestURL(id string) string {
	if s.consoleURL == "" {
		return ""
	}
	return s.consoleURL + "/requests/" + id
}

func (s *Service) lockRequest(id string) func() {
	v, _ := s.reqLocks.LoadOrStore(id, &sync.Mutex{})
	m := v.(*sync.Mutex)
	m.Lock()
	return m.Unlock
}

// eligibility re-evaluates req against the policy in force (reloaded
// from the store, so a version another replica applied counts) and the
// requester and resource as they are now. why is empty when req may still
// be granted; otherwise it says what changed.
func (s *Service) eligibility(ctx context.Context, req *airlock.AccessRequest) (d policy.Decision, why string, err error) {
	if err := s.reloadPolicy(ctx); err != nil {
		return d, "", airlock.WrapError(airlock.EUNAVAILABLE, "the policy in force cannot be loaded; try again", err)
	}
	u, err := s.store.UserByID(ctx, req.UserID)
	switch {
	case airlock.IsCode(err, airlock.ENOTFOUND):
		return d, "the requester no longer exists", nil
	case err != nil:
		return d, "", err
	case u.Disabled:
		return d, "the requester is disabled", nil
	}
	r, err := s.store.ResourceByName(ctx, req.Resource)
	switch {
	case airlock.IsCode(err, airlock.ENOTFOUND):
		return d, "resource " + req.Resource + " no longer exists", nil
	case err != nil:
		return d, "", err
	}
	if len(r.Credentials) > 0 {
		if _, ok := r.Credentials[req.Access]; !ok {
			return d, fmt.Sprintf("resource %s no longer offers access level %q", r.Name, req.Access), nil
		}
	}
	d = s.decide(ctx, u, r, req.Access, req.Duration, req.BreakGlass)
	switch {
	case !d.Allowed:
		return d, "the policy in force no longer allows it: " + d.Reason, nil
	case req.BreakGlass && !d.BreakGlassAllowed:
		return d, "the policy in force no longer allows break-glass by rule " + d.Rule, nil
	}
	return d, "", nil
}

// grant turns an approved request into a grant: re-evaluation against the
// policy in force, audit first, then the atomic store transition that
// makes concurrent approvals yield one grant. A request the policy no
// longer allows is refused (EFORBIDDEN, audited as grant.refused) and
// stays as it was.
func (s *Service) grant(ctx context.Context, req *airlock.AccessRequest, by airlock.Actor, mfaMethod, why string) (*airlock.Grant, error) {
	if _, no, err := s.eligibility(ctx, req); err != nil {
		return nil, err
	} else if no != "" {
		if err := s.record(ctx, airlock.Event{Actor: by, Action: "grant.refused", Resource: req.Resource, RequestID: req.ID, Outcome: airlock.OutcomeDenied,
			Details: airlock.EventDetails("user", req.UserName, "access", req.Access, "why", no)}); err != nil {
			return nil, err
		}
		return nil, airlock.Errorf(airlock.EFORBIDDEN, "no grant was created for request %s: %s", req.ID, no)
	}
	now := s.now().UTC()
	start := now
	if req.StartAt.After(now) {
		start = req.StartAt
	}
	g := &airlock.Grant{ID: airlock.NewID("gr"), RequestID: req.ID, UserID: req.UserID, UserName: req.UserName, Resource: req.Resource,
		Access: req.Access, StartsAt: start, EndsAt: start.Add(req.Duration), State: airlock.GrantActive, MFAMethod: mfaMethod,
		BreakGlass: req.BreakGlass, CreatedAt: now}
	action := "grant.activated"
	if req.BreakGlass {
		action = "breakglass.activated"
	}
	// A request decided concurrently (ECONFLICT) gets no grant: the
	// announcement is retracted like any other failed change.
	if err := s.change(ctx, airlock.Event{Actor: by, Action: action, Resource: g.Resource, RequestID: req.ID, GrantID: g.ID,
		Details: airlock.EventDetails("user", g.UserName, "access", g.Access, "starts_at", g.StartsAt, "ends_at", g.EndsAt, "why", why, "break_glass", g.BreakGlass)},
		func(ctx context.Context) error { return s.store.ApproveRequest(ctx, req.ID, g) }); err != nil {
		if airlock.IsCode(err, airlock.ECONFLICT) {
			return nil, airlock.Errorf(airlock.ECONFLICT, "request %s was already decided", req.ID)
		}
		return nil, err
	}
	s.provisionGrant(ctx, g)
	return g, nil
}

// ReviewInput approves or denies a request.
type ReviewInput struct {
	Decision string `json:"decision"`
	Comment  string `json:"comment,omitempty"`
	// StepUp, when set, is always verified (and refreshes MFA) before the
	// review, however fresh the session's MFA is; a wrong code refuses it.
	identity.StepUp
}

// Review records p's decision on a request. The requester can never review
// their own request; approvals count distinct reviewers; one deny ends it.
//
// An approval is judged against the policy in force now, not the one the
// request was filed under: the requester must still be enabled and
// eligible for the resource, access level and duration, and p must be an
// approver under the rule that allows it now. Only approvals by people who
// are still approvers count towards the rule's required number, and the
// grant is re-evaluated once more when it is created. A request the policy
// no longer allows is not changed: it stays pending (it may be denied, or
// approved again once a policy allows it) until it expires.
//
// Every refusal is audited as request.review_refused with its reason,
// MFA refusals included. Errors: ENOTFOUND, EFORBIDDEN (own request, not
// an approver, no longer allowed by policy), EINVALID (not pending:
// expired, denied, granted), EMFAREQUIRED (MFA not fresh), EUNAUTHORIZED
// (a wrong OTP), ELOCKED, ECONFLICT.
func (s *Service) Review(ctx context.Context, p *identity.Principal, requestID string, in ReviewInput) (*RequestResult, error) {
	if err := s.ident.RequireEnrolled(p); err != nil {
		return nil, err
	}
	if in.Decision != airlock.DecisionApprove && in.Decision != airlock.DecisionDeny {
		return nil, airlock.Errorf(airlock.EINVALID, "decision must be approve or deny")
	}
	unlock := s.lockRequest(requestID)
	defer unlock()
	audit := func(resource, why string) {
		s.record(ctx, airlock.Event{Actor: p.Actor(), Action: "request.review_refused", Resource: resource, RequestID: clip(requestID), SourceAddr: p.Source,
			Outcome: airlock.OutcomeDenied, Details: airlock.EventDetails("decision", in.Decision, "why", why)})
	}
	req, err := s.store.RequestByID(ctx, requestID)
	if err != nil {
		if !airlock.IsCode(err, airlock.ENOTFOUND) {
			return nil, err
		}
		audit("", "no such request")
		return nil, airlock.Errorf(airlock.ENOTFOUND, "no request %q; run `airlock requests --to-review`", requestID)
	}
	refuse := func(code, msg string, args ...any) (*RequestResult, error) {
		m := fmt.Sprintf(msg, args...)
		audit(req.Resource, m)
		return nil, airlock.Errorf(code, "%s", m)
	}
	// refuseErr audits a refusal whose error comes from elsewhere (MFA).
	refuseErr := func(why string, err error) (*RequestResult, error) {
		audit(req.Resource, why+": "+airlock.ErrorMessage(err))
		return nil, err
	}
	if req.UserID == p.User.ID {
		return refuse(airlock.EFORBIDDEN, "you cannot review your own request")
	}
	now := s.now()
	if req.State == airlock.RequestPending && !now.Before(req.ExpiresAt) {
		s.expireRequest(ctx, req)
		req.State = airlock.RequestExpired
	}
	if req.State != airlock.RequestPending {
		return refuse(airlock.EINVALID, "request %s is %s, not pending", req.ID, req.State)
	}
	d, no, err := s.eligibility(ctx, req)
	if err != nil {
		return nil, err
	}
	// The approvers are those of the rule that allows the request now. A
	// request no policy allows any more may still be denied by the
	// approvers it was filed with: denying never widens access.
	groups := req.ApproverGroups
	if no == "" {
		groups = approverGroups(d)
	}
	if !canApprove(p.User, groups) {
		return refuse(airlock.EFORBIDDEN, "you are not an approver for this request (needs a member of %s)", strings.Join(groups, ", "))
	}
	if no != "" && in.Decision == airlock.DecisionApprove {
		return refuse(airlock.EFORBIDDEN, "request %s can no longer be approved: %s", req.ID, no)
	}
	if err := s.ident.VerifyStepUp(ctx, p, in.StepUp); err != nil {
		return refuseErr("the MFA code was not accepted", err)
	}
	if err := s.ident.RequireFreshWithin(p, identity.ActionApprove, d.Freshness.Approve, factorMethods(d.Factors)); err != nil {
		return refuseErr("MFA not fresh enough to review", err)
	}
	reviews, err := s.store.ListReviews(ctx, req.ID)
	if err != nil {
		return nil, err
	}
	// A review of p's already stored, on a request still pending, means
	// what was to follow it (the grant, or the denial) failed: the same
	// decision again retries only that; another decision is refused.
	again := false
	for _, rv := range reviews {
		if rv.ReviewerID == p.User.ID {
			if rv.Decision != in.Decision {
				return refuse(airlock.ECONFLICT, "you already reviewed request %s (%s)", req.ID, rv.Decision)
			}
			again = true
		}
	}
	if !again {
		rv := &airlock.Review{RequestID: req.ID, ReviewerID: p.User.ID, ReviewerName: p.User.Name, Decision: in.Decision, Comment: in.Comment,
			MFAMethod: p.Session.MFAMethod, CreatedAt: now.UTC()}
		if err := s.change(ctx, airlock.Event{Actor: p.Actor(), Action: "request.reviewed", Resource: req.Resource, RequestID: req.ID, SourceAddr: p.Source,
			Details: airlock.EventDetails("decision", in.Decision, "comment", in.Comment, "mfa_method", p.Session.MFAMethod)},
			func(ctx context.Context) error { return s.store.AddReview(ctx, rv) }); err != nil {
			if airlock.IsCode(err, airlock.ECONFLICT) {
				return nil, airlock.Errorf(airlock.ECONFLICT, "you already reviewed request %s", req.ID)
			}
			return nil, err
		}
	}
	if in.Decision == airlock.DecisionDeny {
		if err := s.change(ctx, airlock.Event{Actor: p.Actor(), Action: "request.denied", Resource: req.Resource, RequestID: req.ID, SourceAddr: p.Source,
			Details: airlock.EventDetails("comment", in.Comment)}, func(ctx context.Context) error {
			return s.store.SetRequestState(ctx, req.ID, airlock.RequestPending, airlock.RequestDenied, now.UTC())
		}); err != nil {
			return nil, err
		}
		req, _ = s.store.RequestByID(ctx, req.ID)
		return &RequestResult{Request: req}, nil
	}
	if reviews, err = s.store.ListReviews(ctx, req.ID); err != nil {
		return nil, err
	}
	return s.grantIfApproved(ctx, p, req, reviews, groups, d)
}

// grantIfApproved creates the grant once req has the approvals the rule
// in force (d, groups) needs.
func (s *Service) grantIfApproved(ctx context.Context, p *identity.Principal, req *airlock.AccessRequest, reviews []*airlock.Review, groups []string, d policy.Decision) (*RequestResult, error) {
	distinct, err := s.countApprovals(ctx, req, reviews, groups)
	if err != nil {
		return nil, err
	}
	need := max(d.RequiredApprovals, 1)
	if distinct < need {
		return &RequestResult{Request: req}, nil
	}
	g, err := s.grant(ctx, req, p.Actor(), p.Session.MFAMethod, fmt.Sprintf("%d of %d approvals", distinct, need))
	if err != nil {
		return nil, err
	}
	req, _ = s.store.RequestByID(ctx, req.ID)
	return &RequestResult{Request: req, Grant: g}, nil
}

// countApprovals counts the distinct reviewers of req who approved it and
// are, now, enabled members of groups (never the requester).
func (s *Service) countApprovals(ctx context.Context, req *airlock.AccessRequest, reviews []*airlock.Review, groups []string) (int, error) {
	distinct := map[string]bool{}
	for _, rv := range reviews {
		if rv.Decision != airlock.DecisionApprove || rv.ReviewerID == req.UserID || distinct[rv.ReviewerID] {
			continue
		}
		u, err := s.store.UserByID(ctx, rv.ReviewerID)
		if airlock.IsCode(err, airlock.ENOTFOUND) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if !u.Disabled && canApprove(u, groups) {
			distinct[rv.ReviewerID] = true
		}
	}
	return len(distinct), nil
}

func canApprove(u *airlock.User, groups []string) bool {
	return policy.CanApprove(policy.Subject{Name: u.Name, Groups: u.Groups}, policy.Decision{ApproverGroups: groups})
}

func factorMethods(f string) []string {
	if f == "phishing_resistant" {
		return identity.PhishingResistant
	}
	return nil
}

func (s *Service) expireRequest(ctx context.Context, req *airlock.AccessRequest) {
	s.change(ctx, airlock.Event{Actor: airlock.SystemActor, Action: "request.expired", Resource: req.Resource, RequestID: req.ID},
		func(ctx context.Context) error {
			return s.store.SetRequestState(ctx, req.ID, airlock.RequestPending, airlock.RequestExpired, s.now().UTC())
		})
}

// RequestView is a request with its reviews.
type RequestView struct {
	*airlock.AccessRequest
	Reviews []*airlock.Review `json:"reviews"`
}

// RequestsFilter selects which requests ListRequests returns.
type RequestsFilter struct {
	Mine         bool
	ToReview     bool
	ReviewNeeded bool // break-glass grants awaiting acknowledgement
}

// ListRequests returns requests for p: their own, those they may review,
// or (admins) all.
func (s *Service) ListRequests(ctx context.Context, p *identity.Principal, f RequestsFilter) ([]RequestView, error) {
	if err := s.ident.RequireEnrolled(p); err != nil {
		return nil, err
	}
	var rf airlock.RequestFilter
	switch {
	case f.Mine:
		rf.UserID = p.User.ID
	case f.ToReview:
		rf.State = airlock.RequestPending
	case f.ReviewNeeded:
		t := true
		rf.BreakGlass = &t
	default:
		if !p.User.IsAdmin() {
			rf.UserID = p.User.ID
		}
	}
	reqs, err := s.store.ListRequests(ctx, rf)
	if err != nil {
		return nil, err
	}
	out := []RequestView{}
	now := s.now()
	for _, r := range reqs {
		if r.State == airlock.RequestPending && !now.Before(r.ExpiresAt) {
			r.State = airlock.RequestExpired
		}
		if f.ToReview {
			if r.UserID == p.User.ID || r.State != airlock.RequestPending || !canReview(p.User, r) {
				continue
			}
		}
		if f.ReviewNeeded {
			if r.GrantID == "" {
				continue
			}
			g, err := s.store.GrantByID(ctx, r.GrantID)
			if err != nil || !g.AckedAt.IsZero() || !canReview(p.User, r) && !p.User.IsAdmin() {
				continue
			}
		}
		rvs, _ := s.store.ListReviews(ctx, r.ID)
		if rvs == nil {
			rvs = []*airlock.Review{}
		}
		out = append(out, RequestView{AccessRequest: r, Reviews: rvs})
	}
	return out, nil
}

func canReview(u *airlock.User, r *airlock.AccessRequest) bool {
	return policy.CanApprove(policy.Subject{Name: u.Name, Groups: u.Groups}, policy.Decision{ApproverGroups: r.ApproverGroups})
}

// GetRequest returns one request visible to p.
func (s *Service) GetRequest(ctx context.Context, p *identity.Principal, id string) (*RequestView, error) {
	if err := s.ident.RequireEnrolled(p); err != nil {
		return nil, err
	}
	r, err := s.store.RequestByID(ctx, id)
	if err != nil || (r.UserID != p.User.ID && !canReview(p.User, r) && !p.User.IsAdmin()) {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "no request %q", id)
	}
	if r.State == airlock.RequestPending && !s.now().Before(r.ExpiresAt) {
		r.State = airlock.RequestExpired
	}
	rvs, _ := s.store.ListReviews(ctx, r.ID)
	if rvs == nil {
		rvs = []*airlock.Review{}
	}
	return &RequestView{AccessRequest: r, Reviews: rvs}, nil
}

// Requestable is what p may request and what p holds now.
type Requestable struct {
	Entitlements []policy.Entitlement `json:"requestable"`
	Held         []GrantView          `json:"held"`
}

// Resources returns what p may request and the grants p holds.
func (s *Service) Resources(ctx context.Context, p *identity.Principal) (*Requestable, error) {
	if err := s.ident.RequireEnrolled(p); err != nil {
		return nil, err
	}
	rs, err := s.store.ListResources(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]*airlock.Resource{}
	var prs []policy.Resource
	for _, r := range rs {
		byName[r.Name] = r
		prs = append(prs, policyResource(r))
	}
	pol, _ := s.Policy()
	ents := pol.Requestable(policy.Subject{Name: p.User.Name, Groups: p.User.Groups}, prs, func(r policy.Resource) []string {
		if x := byName[r.Name]; x != nil {
			return sortedLevels(x)
		}
		return nil
	})
	if ents == nil {
		ents = []policy.Entitlement{}
	}
	gs, err := s.store.ListGrants(ctx, airlock.GrantFilter{UserID: p.User.ID, ActiveAt: s.now()})
	if err != nil {
		return nil, err
	}
	out := &Requestable{Entitlements: ents, Held: []GrantView{}}
	for _, g := range gs {
		out.Held = append(out.Held, s.view(g))
	}
	return out, nil
}

// fmtDur prints d as airlock.FormatDuration does, but a zero or negative
// d as "0" (in refusals of a request's duration).
func fmtDur(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	return airlock.FormatDuration(d)
}

// refusalShown is the reason a refusal d of access on r gives u, who is
// not eligible for it at any duration: d's own reason for admins and
// policy readers, otherwise one that names no rule (a deny rule's name is
// policy content; the audit event keeps it).
func (s *Service) refusalShown(u *airlock.User, r *airlock.Resource, access string, d policy.Decision) string {
	if u.IsAdmin() || u.InGroup(airlock.GroupPolicyReaders) || d.Rule == "" {
		return d.Reason
	}
	return fmt.Sprintf("no rule lets %s request %s on %s", u.Name, access, r.Name)
}
