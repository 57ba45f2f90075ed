package access

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/identity"
	"github.com/airlockhq/airlock/policy"
)

// Statement holds (require_approval): a gateway holds a statement until an
// approver other than the person decides it with fresh MFA. A hold lives
// in the shared KV store, so the gateway that holds it, the replica an
// approver reaches and the one that lists it may all differ:
//
//	stmthold:ID           the hold (StatementHold), readable until it is gone
//	stmthold-pending:ID   present while undecided; taken once, by the one decision or the expiry
//	stmthold-decision:ID  the decision, taken once, by the gateway that waits
//
// Every transition that must happen once is a TakeKV: of concurrent
// approvals (on any replicas) exactly one counts, and a decision applies
// to one run of the statement, once.

// Statement hold states.
const (
	HoldPending  = "pending"
	HoldApproved = "approved"
	HoldDenied   = "denied"
	HoldExpired  = "expired"
)

// holdKeep is how long a hold stays readable after it expires.
const holdKeep = 10 * time.Minute

// maxHoldText bounds the statement text a hold keeps and shows.
const maxHoldText = 4 << 10

// StatementHold is a statement held for approval.
type StatementHold struct {
	ID        string `json:"id"`
	UserID    string `json:"user_id"`
	UserName  string `json:"user"`
	GrantID   string `json:"grant_id"`
	SessionID string `json:"session_id"`
	Resource  string `json:"resource"`
	Access    string `json:"access"`
	Rule      string `json:"rule"`
	// Statement is the statement's text (at most 4 KiB; Truncated says
	// it was cut). Bind parameters are never part of it.
	Statement string `json:"statement"`
	Truncated bool   `json:"truncated,omitempty"`
	// Reason is the requester's reason for the grant the session runs on.
	Reason         string    `json:"reason,omitempty"`
	ApproverGroups []string  `json:"approver_groups"`
	CreatedAt      time.Time `json:"created_at"`
	ExpiresAt      time.Time `json:"expires_at"`
	State          string    `json:"state"`
}

// HoldInput is what a gateway holds: the statement and its session.
type HoldInput struct {
	UserID, UserName, GrantID, SessionID, Resource, Access, Rule string
	Statement                                                    string
	Truncated                                                    bool
	Timeout                                                      time.Duration
}

// HoldDecision is how a hold was decided.
type HoldDecision struct {
	State     string    `json:"state"` // HoldApproved, HoldDenied, HoldExpired
	By        string    `json:"by,omitempty"`
	ByID      string    `json:"by_id,omitempty"`
	MFAMethod string    `json:"mfa_method,omitempty"`
	Comment   string    `json:"comment,omitempty"`
	At        time.Time `json:"at"`
}

// HoldStatement records a held statement and notifies its approvers: the
// approver groups of the policy rule that grants the session's access now
// (admins when it names none). Errors: EFORBIDDEN (the policy no longer
// allows the access), EUNAVAILABLE.
func (s *Service) HoldStatement(ctx context.Context, in HoldInput) (*StatementHold, error) {
	u, err := s.store.UserByID(ctx, in.UserID)
	if err != nil {
		return nil, err
	}
	r, err := s.store.ResourceByName(ctx, in.Resource)
	if err != nil {
		return nil, err
	}
	d := s.decide(ctx, u, r, in.Access, 0, false)
	if !d.Allowed {
		return nil, airlock.Errorf(airlock.EFORBIDDEN, "the policy no longer allows this access: %s", d.Reason)
	}
	now := s.now().UTC()
	timeout := in.Timeout
	if timeout <= 0 || timeout > policy.MaxHoldTimeout {
		timeout = policy.DefaultHoldTimeout
	}
	text, cut := in.Statement, in.Truncated
	if len(text) > maxHoldText {
		text, cut = truncateText(text, maxHoldText), true
	}
	h := &StatementHold{ID: airlock.NewID("hold"), UserID: u.ID, UserName: u.Name, GrantID: in.GrantID, SessionID: in.SessionID,
		Resource: in.Resource, Access: in.Access, Rule: in.Rule, Statement: text, Truncated: cut,
		Reason: s.grantReason(ctx, in.GrantID), ApproverGroups: approverGroups(d), CreatedAt: now, ExpiresAt: now.Add(timeout),
		State: HoldPending}
	b, _ := json.Marshal(h)
	keep := h.ExpiresAt.Add(holdKeep)
	if err := s.store.PutKV(ctx, "stmthold:"+h.ID, b, keep); err != nil {
		return nil, err
	}
	if err := s.store.PutKV(ctx, "stmthold-pending:"+h.ID, nil, keep); err != nil {
		return nil, err
	}
	if s.notify != nil {
		s.notify(context.WithoutCancel(ctx), d.Notify, Notification{Kind: "statement.held", User: h.UserName, Resource: h.Resource,
			Access: h.Access, Reason: h.Reason, Statement: h.Statement, HoldID: h.ID, GrantID: h.GrantID,
			URL: s.consoleURL + "/approvals"})
	}
	return h, nil
}

// truncateText cuts s to at most n bytes on a rune boundary.
func truncateText(s string, n int) string {
	i := n
	for i > 0 && i > n-4 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i]
}

// grantReason is the reason the grant was requested with ("" if none).
func (s *Service) grantReason(ctx context.Context, grantID string) string {
	g, err := s.store.GrantByID(ctx, grantID)
	if err != nil || g.RequestID == "" {
		return ""
	}
	req, err := s.store.RequestByID(ctx, g.RequestID)
	if err != nil {
		return ""
	}
	return req.Reason
}

func (s *Service) loadHold(ctx context.Context, id string) (*StatementHold, error) {
	b, err := s.store.GetKV(ctx, "stmthold:"+id, s.now())
	var h StatementHold
	if err != nil || json.Unmarshal(b, &h) != nil {
		if err != nil && !airlock.IsCode(err, airlock.ENOTFOUND) {
			return nil, err
		}
		return nil, airlock.Errorf(airlock.ENOTFOUND, "no held statement %q; run `airlock statements list`", clip(id))
	}
	return &h, nil
}

// holdState reads h's state: the decision's, pending while its pending
// key is there and it has not expired, else expired.
func (s *Service) holdState(ctx context.Context, h *StatementHold) string {
	if b, err := s.store.GetKV(ctx, "stmthold-decision:"+h.ID, s.now()); err == nil {
		var d HoldDecision
		if json.Unmarshal(b, &d) == nil {
			return d.State
		}
	}
	if _, err := s.store.GetKV(ctx, "stmthold-pending:"+h.ID, s.now()); err == nil && s.now().Before(h.ExpiresAt) {
		return HoldPending
	}
	return HoldExpired
}

// CanDecideHold reports whether p may decide h: an approver of h who is
// not its requester. It is the one rule for who decides a held statement
// (the API and the console ask it, DecideHold enforces it).
func CanDecideHold(p *identity.Principal, h *StatementHold) bool {
	return p != nil && p.User != nil && p.User.ID != h.UserID && canApprove(p.User, h.ApproverGroups)
}

// ListHolds returns the pending held statements p may decide, and p's
// own, oldest first.
func (s *Service) ListHolds(ctx context.Context, p *identity.Principal) ([]StatementHold, error) {
	if err := s.ident.RequireEnrolled(p); err != nil {
		return nil, err
	}
	keys, err := s.store.ScanKV(ctx, "stmthold-pending:", s.now())
	if err != nil {
		return nil, err
	}
	out := []StatementHold{}
	for k := range keys {
		h, err := s.loadHold(ctx, k[len("stmthold-pending:"):])
		if err != nil || !s.now().Before(h.ExpiresAt) {
			continue
		}
		if h.UserID == p.User.ID || CanDecideHold(p, h) {
			out = append(out, *h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// GetHold returns held statement id to its requester or an approver.
// Errors: ENOTFOUND (also for anyone else).
func (s *Service) GetHold(ctx context.Context, p *identity.Principal, id string) (*StatementHold, error) {
	if err := s.ident.RequireEnrolled(p); err != nil {
		return nil, err
	}
	h, err := s.loadHold(ctx, id)
	if err != nil {
		return nil, err
	}
	if h.UserID != p.User.ID && !CanDecideHold(p, h) {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "no held statement %q; run `airlock statements list`", clip(id))
	}
	h.State = s.holdState(ctx, h)
	return h, nil
}

// DecideHold approves or denies held statement id. p must be an approver
// of it, not its requester, with MFA fresh for approvals (in.StepUp, when
// given, is verified first). Of concurrent decisions, on any replicas,
// exactly one counts; a decided or expired hold cannot be decided again.
// Refusals are audited as statement.review_refused. Errors: ENOTFOUND,
// EFORBIDDEN (own statement, not an approver), EINVALID (decided,
// expired, bad decision), EMFAREQUIRED, EUNAUTHORIZED (wrong OTP),
// EUNAVAILABLE.
func (s *Service) DecideHold(ctx context.Context, p *identity.Principal, id string, in ReviewInput) (*StatementHold, error) {
	audit := func(resource, why string) {
		s.record(ctx, airlock.Event{Actor: p.Actor(), Action: "statement.review_refused", Resource: resource, SourceAddr: p.Source,
			Outcome: airlock.OutcomeDenied, Details: airlock.EventDetails("hold_id", clip(id), "decision", clip(in.Decision), "why", why)})
	}
	if err := s.ident.RequireEnrolled(p); err != nil {
		audit("", "not enrolled in MFA")
		return nil, err
	}
	if in.Decision != airlock.DecisionApprove && in.Decision != airlock.DecisionDeny {
		audit("", "not a decision")
		return nil, airlock.Errorf(airlock.EINVALID, "decision must be approve or deny")
	}
	in.Comment = clip(in.Comment) // the client is told it
	h, err := s.loadHold(ctx, id)
	if err != nil {
		if airlock.IsCode(err, airlock.ENOTFOUND) {
			audit("", "no such held statement")
		}
		return nil, err
	}
	refuse := func(code, msg string) (*StatementHold, error) {
		audit(h.Resource, msg)
		return nil, airlock.Errorf(code, "%s", msg)
	}
	if h.UserID == p.User.ID {
		return refuse(airlock.EFORBIDDEN, "you cannot decide your own statement")
	}
	if !CanDecideHold(p, h) {
		return refuse(airlock.EFORBIDDEN, "you are not an approver for this statement")
	}
	if !s.now().Before(h.ExpiresAt) {
		return refuse(airlock.EINVALID, "held statement "+h.ID+" expired")
	}
	if err := s.ident.VerifyStepUp(ctx, p, in.StepUp); err != nil {
		audit(h.Resource, "the MFA code was not accepted: "+airlock.ErrorMessage(err))
		return nil, err
	}
	if in.Decision == airlock.DecisionApprove {
		if err := s.ident.RequireFreshWithin(p, identity.ActionApprove, 0, nil); err != nil {
			audit(h.Resource, "MFA not fresh enough to approve: "+airlock.ErrorMessage(err))
			return nil, err
		}
	}
	if _, err := s.store.TakeKV(ctx, "stmthold-pending:"+h.ID, s.now()); err != nil {
		if !airlock.IsCode(err, airlock.ENOTFOUND) {
			return nil, err
		}
		return refuse(airlock.EINVALID, "held statement "+h.ID+" is already "+s.holdState(ctx, h))
	}
	dec := HoldDecision{State: HoldApproved, By: p.User.Name, ByID: p.User.ID, MFAMethod: p.Session.MFAMethod, Comment: in.Comment, At: s.now().UTC()}
	action := "statement.approved"
	if in.Decision == airlock.DecisionDeny {
		dec.State, action = HoldDenied, "statement.denied"
	}
	b, _ := json.Marshal(dec)
	// Audit first: an approval whose event the log refused never takes
	// effect (the gateway's wait then times out: refused).
	if err := s.change(ctx, airlock.Event{Actor: p.Actor(), Action: action, Resource: h.Resource, GrantID: h.GrantID, SessionID: h.SessionID,
		SourceAddr: p.Source, Details: airlock.EventDetails("hold_id", h.ID, "rule", h.Rule, "requester", h.UserName, "comment", in.Comment,
			"mfa_method", dec.MFAMethod)},
		func(ctx context.Context) error {
			return s.store.PutKV(ctx, "stmthold-decision:"+h.ID, b, h.ExpiresAt.Add(holdKeep))
		}); err != nil {
		return nil, err
	}
	h.State = dec.State
	return h, nil
}

// holdGrace is how long past its expiry a wait still looks for a decision
// taken just before it (its pending key gone, its decision not yet
// written).
const holdGrace = 5 * time.Second

// WaitHold waits for the decision on hold id, polling the store every
// poll, until it is decided or expires, or ctx ends. A decision is taken
// once: a second wait never sees it. At the expiry (or when ctx ends) the
// wait takes the pending key itself, so no later approval counts.
func (s *Service) WaitHold(ctx context.Context, id string, poll time.Duration) HoldDecision {
	// The store calls outlive ctx: an ended wait must still take the
	// pending key, so that no later approval counts.
	sctx := context.WithoutCancel(ctx)
	h, err := s.loadHold(sctx, id)
	if err != nil {
		_, _ = s.store.TakeKV(sctx, "stmthold-pending:"+id, s.now())
		return HoldDecision{State: HoldExpired}
	}
	if poll <= 0 {
		poll = time.Second
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	var graceUntil time.Time
	for {
		if b, err := s.store.TakeKV(sctx, "stmthold-decision:"+h.ID, s.now()); err == nil {
			var d HoldDecision
			if json.Unmarshal(b, &d) == nil {
				return d
			}
			return HoldDecision{State: HoldExpired}
		}
		now := s.now()
		if ctx.Err() != nil || !now.Before(h.ExpiresAt) {
			if graceUntil.IsZero() {
				if _, err := s.store.TakeKV(sctx, "stmthold-pending:"+h.ID, now); err == nil || ctx.Err() != nil {
					return HoldDecision{State: HoldExpired, At: now.UTC()}
				}
				graceUntil = now.Add(holdGrace) // decided just now: its decision follows
			} else if !now.Before(graceUntil) {
				return HoldDecision{State: HoldExpired, At: now.UTC()}
			}
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}
