package access

import (
	"context"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/identity"
)

// BreakGlass self-activates emergency access where policy allows it.
func (s *Service) BreakGlass(ctx context.Context, p *identity.Principal, in RequestInput) (*RequestResult, error) {
	if err := s.ident.RequireEnrolled(p); err != nil {
		return nil, err
	}
	r, err := s.resourceFor(ctx, p.User, in.Resource)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(in.Reason) == "" {
		return nil, airlock.Errorf(airlock.EINVALID, "break-glass needs --reason TEXT")
	}
	if in.Duration <= 0 {
		return nil, airlock.Errorf(airlock.EINVALID, "--for DURATION is required")
	}
	d := s.decide(ctx, p.User, r, in.Access, in.Duration, true)
	if !d.Allowed || !d.BreakGlassAllowed {
		why := d.Reason
		if d.Allowed {
			why = "break-glass is not allowed by rule " + d.Rule
		}
		s.record(ctx, airlock.Event{Actor: p.Actor(), Action: "breakglass.refused", Resource: r.Name, SourceAddr: p.Source, Outcome: airlock.OutcomeDenied,
			Details: airlock.EventDetails("access", in.Access, "why", why)})
		if d.BreakGlassMaxDuration > 0 && in.Duration > d.BreakGlassMaxDuration {
			return nil, airlock.Errorf(airlock.EINVALID, "break-glass duration %s exceeds the maximum of %s", fmtDur(in.Duration), fmtDur(d.BreakGlassMaxDuration))
		}
		return nil, airlock.Errorf(airlock.EFORBIDDEN, "break-glass refused: %s", why)
	}
	bgRefused := func(why string, err error) (*RequestResult, error) {
		s.record(ctx, airlock.Event{Actor: p.Actor(), Action: "breakglass.refused", Resource: r.Name, SourceAddr: p.Source, Outcome: airlock.OutcomeDenied,
			Details: airlock.EventDetails("access", in.Access, "why", why+": "+airlock.ErrorMessage(err))})
		return nil, err
	}
	if err := s.ident.VerifyStepUp(ctx, p, in.StepUp); err != nil {
		return bgRefused("the MFA code was not accepted", err)
	}
	if err := s.ident.RequireFreshWithin(p, identity.ActionBreakGlass, d.Freshness.BreakGlass, factorMethods(d.Factors)); err != nil {
		return bgRefused("MFA not fresh enough for break-glass", err)
	}
	now := s.now().UTC()
	_, ver := s.Policy()
	req := &airlock.AccessRequest{ID: airlock.NewID("req"), UserID: p.User.ID, UserName: p.User.Name, Resource: r.Name, Access: in.Access,
		Duration: in.Duration, Reason: in.Reason, Ticket: in.Ticket, State: airlock.RequestPending, Rule: d.Rule, BreakGlass: true,
		ApproverGroups: approverGroups(d), PolicyVersion: ver, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	if err := s.change(ctx, airlock.Event{Actor: p.Actor(), Action: "request.created", Resource: r.Name, RequestID: req.ID, SourceAddr: p.Source,
		Details: airlock.EventDetails("access", in.Access, "duration", in.Duration.String(), "reason", in.Reason, "ticket", in.Ticket, "rule", d.Rule, "break_glass", true, "policy_version", ver)},
		func(ctx context.Context) error { return s.store.CreateRequest(ctx, req) }); err != nil {
		return nil, err
	}
	g, err := s.grant(ctx, req, p.Actor(), p.Session.MFAMethod, "break-glass: "+in.Reason)
	if err != nil {
		return nil, err
	}
	channels := append(append([]string{}, d.Alert...), d.Notify...)
	s.notify(context.WithoutCancel(ctx), channels, Notification{Kind: "breakglass.activated", RequestID: req.ID, GrantID: g.ID, User: req.UserName,
		Resource: req.Resource, Access: req.Access, Duration: req.Duration, Reason: req.Reason, Ticket: req.Ticket, URL: s.requestURL(req.ID)})
	req, _ = s.store.RequestByID(ctx, req.ID)
	return &RequestResult{Request: req, Grant: g}, nil
}

// Acknowledge records an approver's post-hoc review of a break-glass grant.
func (s *Service) Acknowledge(ctx context.Context, p *identity.Principal, grantID, comment string) (*airlock.Grant, error) {
	if err := s.ident.RequireEnrolled(p); err != nil {
		return nil, err
	}
	g, err := s.store.GrantByID(ctx, grantID)
	if err != nil || !g.BreakGlass {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "no break-glass grant %q; run `airlock requests --review-needed`", grantID)
	}
	if g.UserID == p.User.ID {
		return nil, airlock.Errorf(airlock.EFORBIDDEN, "you cannot acknowledge your own break-glass access")
	}
	req, err := s.store.RequestByID(ctx, g.RequestID)
	if err != nil {
		return nil, err
	}
	if !canReview(p.User, req) && !p.User.IsAdmin() {
		return nil, airlock.Errorf(airlock.EFORBIDDEN, "you are not an approver for %s", g.Resource)
	}
	if !g.AckedAt.IsZero() {
		return nil, airlock.Errorf(airlock.EINVALID, "already acknowledged by %s", g.AckedBy)
	}
	if err := s.ident.RequireFresh(p, identity.ActionApprove); err != nil {
		s.record(ctx, airlock.Event{Actor: p.Actor(), Action: "breakglass.acknowledge_refused", Resource: g.Resource, RequestID: g.RequestID, GrantID: g.ID,
			SourceAddr: p.Source, Outcome: airlock.OutcomeDenied, Details: airlock.EventDetails("why", "MFA not fresh enough to acknowledge: "+airlock.ErrorMessage(err))})
		return nil, err
	}
	if err := s.change(ctx, airlock.Event{Actor: p.Actor(), Action: "breakglass.acknowledged", Resource: g.Resource, RequestID: g.RequestID, GrantID: g.ID,
		SourceAddr: p.Source, Details: airlock.EventDetails("comment", comment)},
		func(ctx context.Context) error { return s.store.AckGrant(ctx, g.ID, p.User.Name, s.now().UTC()) }); err != nil {
		return nil, err
	}
	return s.store.GrantByID(ctx, g.ID)
}
