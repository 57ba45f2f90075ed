package pgproxy

import (
	"context"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/policy"
	"github.com/airlockhq/airlock/sqlguard"
)

// Held statements (require_mfa, require_approval): the gateway does not
// forward the statement; the client simply waits. The client→server
// direction stops at the held message, so nothing the client pipelined
// behind it reaches the server before it is decided, responses stay in
// order, and a session holds at most one statement at a time. Before
// waiting, the client is sent a NoticeResponse saying what it waits for
// (the protocol allows one at any time). On approval the message is
// forwarded as written; on a refusal or a timeout it is replaced like a
// denied statement and the client gets an ErrorResponse (42501); the
// session stays usable.
//
// A simple-protocol Query is held where it arrives. In the extended
// protocol a statement is decided at Parse and held at each Execute of a
// portal bound to it (where it would run): the Parse and Bind reach the
// server, which runs nothing until the Execute.

// MaxHoldText bounds the statement text a hold shows its approvers.
const MaxHoldText = 4 << 10

// Hold outcomes (a db.guard event's "hold": held when the hold begins,
// then one of the others).
const (
	HoldHeld     = "held"
	HoldApproved = "approved"
	HoldDenied   = "denied"
	HoldTimeout  = "timeout"
	// HoldFailed: the hold could not be asked (no push device, the store
	// unavailable…); the statement is refused.
	HoldFailed = "failed"
)

// deniedPortal names the portal a refused Execute is sent for in place
// of the client's: none exists, so the server answers an error and skips
// to Sync, and the gateway rewrites that error. Clients may not bind it.
const deniedPortal = "airlock denied"

// Holder asks for and waits on the approval of a held statement. It is
// the gateway's one dependency for holds (an adapter over the services).
type Holder interface {
	// Hold asks for approval of h and blocks until it is approved,
	// refused or h.Timeout has passed, or ctx ends (the session ended).
	// It calls notice, at most once and before it waits, with what the
	// client is told it waits for (no secret: it is sent to the client).
	Hold(ctx context.Context, h HoldRequest, notice func(msg string)) HoldResult
}

// HoldRequest is a statement held for an approval.
type HoldRequest struct {
	// Action is policy.StatementRequireMFA or policy.StatementRequireApproval.
	Action string
	Rule   string
	// Statement is the statement's text, cut to MaxHoldText bytes
	// (Truncated then says so).
	Statement string
	Truncated bool
	Timeout   time.Duration
	// Who and where: the session's.
	SessionID, UserID, UserName, GrantID, Resource, Access, SourceAddr string
}

// HoldResult is how a hold ended.
type HoldResult struct {
	Outcome string // HoldApproved, HoldDenied, HoldTimeout or HoldFailed
	// By is who decided (the approver; for a push, the person) and
	// Factor how they proved it (MFA method or factor id).
	By, Factor string
	// Message says why a hold was refused; the client is told it.
	Message string
}

// holdResultTimeoutGrace is how much longer than its timeout a hold may
// take before the gateway gives up on the Holder: it fails closed.
const holdResultTimeoutGrace = 30 * time.Second

// holdStatement holds a statement its rules say needs an approval, and
// returns the message the client is told when it is refused ("" when
// approved). It audits db.guard with hold "held" first, and a second
// db.guard with the result (returned, to submit after the statement's
// own db.query): hold approved (outcome success), denied, timeout or
// failed (outcome denied).
func (s *session) holdStatement(stmt int64, v sqlguard.Verdict, text []byte) (string, *airlock.Event) {
	shown := truncateUTF8(string(text), MaxHoldText)
	req := HoldRequest{Action: v.Action, Rule: v.Rule, Statement: shown, Truncated: len(shown) < len(text), Timeout: v.Timeout,
		SessionID: s.id, UserID: s.t.UserID, UserName: s.t.UserName, GrantID: s.t.GrantID, Resource: s.t.Resource,
		Access: s.t.Access, SourceAddr: s.info.SourceAddr}
	if req.Timeout <= 0 || req.Timeout > policy.MaxHoldTimeout {
		req.Timeout = policy.DefaultHoldTimeout
	}
	s.submit(s.event("db.guard", airlock.OutcomeSuccess, guardDetails{Stmt: stmt, Rule: v.Rule, Action: v.Action, Class: string(v.Class),
		Hold: HoldHeld, TimeoutMS: req.Timeout.Milliseconds()}))

	// Whatever the client pipelined before this statement runs now; its
	// responses reach the client while this one waits.
	_ = s.uw.Flush()
	s.holding.Store(true)
	defer s.holding.Store(false)
	start := s.g.now()
	res := s.waitHold(req)
	wait := s.g.now().Sub(start)

	outcome := airlock.OutcomeSuccess
	if res.Outcome != HoldApproved {
		outcome = airlock.OutcomeDenied
	}
	e := s.event("db.guard", outcome, guardDetails{Stmt: stmt, Rule: v.Rule, Action: v.Action, Class: string(v.Class),
		Hold: res.Outcome, By: res.By, Factor: res.Factor, WaitMS: wait.Milliseconds(), Message: res.Message})
	if res.Outcome == HoldApproved {
		return "", &e
	}
	msg := "airlock: statement refused by rule " + v.Rule
	switch res.Outcome {
	case HoldDenied:
		msg += ": denied"
		if res.By != "" {
			msg += " by " + res.By
		}
	case HoldTimeout:
		msg += ": not approved within " + airlock.FormatDuration(req.Timeout)
	default:
		msg += ": the approval could not be asked"
	}
	if res.Message != "" {
		msg += " (" + res.Message + ")"
	}
	return msg, &e
}

// guardDetails are a db.guard event's details.
type guardDetails struct {
	Stmt      int64  `json:"stmt"`
	Rule      string `json:"rule"`
	Action    string `json:"action"`
	Class     string `json:"class"`
	Why       string `json:"why,omitempty"`
	Message   string `json:"message,omitempty"`
	TimeoutMS int64  `json:"timeout_ms,omitempty"`
	Hold      string `json:"hold,omitempty"` // approved, denied, timeout, failed
	By        string `json:"by,omitempty"`
	Factor    string `json:"factor,omitempty"`
	WaitMS    int64  `json:"wait_ms,omitempty"`
}

// waitHold runs the Holder, ending it when the session ends; without a
// Holder every hold fails (closed).
func (s *session) waitHold(req HoldRequest) HoldResult {
	h := s.g.cfg.Holder
	if h == nil {
		return HoldResult{Outcome: HoldFailed, Message: "this gateway cannot hold statements"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), req.Timeout+holdResultTimeoutGrace)
	defer cancel()
	go func() {
		select {
		case <-s.life.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	res := h.Hold(ctx, req, s.notice)
	switch res.Outcome {
	case HoldApproved, HoldDenied, HoldTimeout:
	default:
		res.Outcome = HoldFailed
	}
	if s.life.Ended() {
		// The session ended while it waited: nothing more is forwarded.
		res = HoldResult{Outcome: HoldFailed, Message: "the session ended"}
	}
	return res
}

// notice sends the client a NoticeResponse between two server messages.
func (s *session) notice(msg string) {
	var body []byte
	for _, f := range []struct {
		code byte
		v    string
	}{{'S', "NOTICE"}, {'V', "NOTICE"}, {'C', "00000"}, {'M', msg}} {
		body = append(body, f.code)
		body = append(body, f.v...)
		body = append(body, 0)
	}
	body = append(body, 0)
	s.cwMu.Lock()
	defer s.cwMu.Unlock()
	if _, err := s.cw.Write(appendMsg(nil, 'N', body)); err == nil {
		_ = s.cw.Flush()
	}
	if s.t.StrictAudit {
		s.strictBoundary() // between two messages still
	}
}

// deniedExecute is the Execute forwarded in place of a refused one.
func deniedExecute() []byte {
	return appendMsg(nil, 'E', []byte(deniedPortal+"\x00\x00\x00\x00\x00"))
}
