package main

import (
	"context"
	"fmt"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/identity"
	"github.com/airlockhq/airlock/pgproxy"
	"github.com/airlockhq/airlock/policy"
)

// holdPoll is how often a held statement's wait looks in the store for
// its decision (taken on any replica).
const holdPoll = 500 * time.Millisecond

// statementHolder is the PostgreSQL gateway's pgproxy.Holder: require_mfa
// through push MFA (identity.Push), require_approval through the access
// service's held statements. Both keep their state in the store.
type statementHolder struct{ s *server }

func (h statementHolder) Hold(ctx context.Context, r pgproxy.HoldRequest, notice func(string)) pgproxy.HoldResult {
	switch r.Action {
	case policy.StatementRequireMFA:
		return h.holdMFA(ctx, r, notice)
	case policy.StatementRequireApproval:
		return h.holdApproval(ctx, r, notice)
	}
	return pgproxy.HoldResult{Outcome: pgproxy.HoldFailed}
}

func (h statementHolder) holdMFA(ctx context.Context, r pgproxy.HoldRequest, notice func(string)) pgproxy.HoldResult {
	holdID := airlock.NewID("hold")
	detail := r.Resource + " (" + r.Access + "): " + r.Statement
	if r.Truncated {
		detail += " …"
	}
	ch, err := h.s.push.BeginStatement(ctx, r.UserID, holdID, detail, r.SourceAddr, r.Timeout)
	if err != nil {
		return pgproxy.HoldResult{Outcome: pgproxy.HoldFailed, Message: airlock.ErrorMessage(err)}
	}
	notice(fmt.Sprintf("airlock: statement held for MFA by rule %s: approve on your device, number %d (within %s)",
		r.Rule, ch.Number, airlock.FormatDuration(r.Timeout)))
	t := time.NewTicker(holdPoll)
	defer t.Stop()
	for {
		st, err := h.s.push.StatementStatus(context.WithoutCancel(ctx), ch.ID, r.UserID, holdID)
		switch {
		case err != nil:
			// A store outage: keep trying until the timeout (fail closed).
		case st == identity.PushApproved:
			return pgproxy.HoldResult{Outcome: pgproxy.HoldApproved, By: r.UserName, Factor: identity.MethodPush}
		case st == identity.PushDenied:
			return pgproxy.HoldResult{Outcome: pgproxy.HoldDenied, By: r.UserName, Factor: identity.MethodPush, Message: "wrong number on the device"}
		case st == identity.PushExpired:
			return pgproxy.HoldResult{Outcome: pgproxy.HoldTimeout}
		}
		select {
		case <-ctx.Done():
			return pgproxy.HoldResult{Outcome: pgproxy.HoldTimeout}
		case <-t.C:
		}
	}
}

func (h statementHolder) holdApproval(ctx context.Context, r pgproxy.HoldRequest, notice func(string)) pgproxy.HoldResult {
	hs, err := h.s.access.HoldStatement(ctx, access.HoldInput{UserID: r.UserID, UserName: r.UserName, GrantID: r.GrantID,
		SessionID: r.SessionID, Resource: r.Resource, Access: r.Access, Rule: r.Rule, Statement: r.Statement, Truncated: r.Truncated,
		Timeout: r.Timeout})
	if err != nil {
		return pgproxy.HoldResult{Outcome: pgproxy.HoldFailed, Message: airlock.ErrorMessage(err)}
	}
	notice(fmt.Sprintf("airlock: statement held for approval by rule %s: an approver runs `airlock statements approve %s` (within %s)",
		r.Rule, hs.ID, airlock.FormatDuration(r.Timeout)))
	d := h.s.access.WaitHold(ctx, hs.ID, holdPoll)
	switch d.State {
	case access.HoldApproved:
		return pgproxy.HoldResult{Outcome: pgproxy.HoldApproved, By: d.By, Factor: d.MFAMethod}
	case access.HoldDenied:
		return pgproxy.HoldResult{Outcome: pgproxy.HoldDenied, By: d.By, Factor: d.MFAMethod, Message: d.Comment}
	}
	return pgproxy.HoldResult{Outcome: pgproxy.HoldTimeout}
}
