package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/identity"
	"github.com/airlockhq/airlock/policy"
)

// stepUp is the inline fresh-MFA form shown where an action needs it.
type stepUp struct {
	Next string
	Push bool
}

type homeData struct {
	Grants    []access.GrantView
	Pending   []access.RequestView
	ToReview  int
	NeedsAck  int
	Factors   int
	MFAMethod string
}

func (c *console) home(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	ctx := r.Context()
	d := homeData{MFAMethod: p.Session.MFAMethod}
	gs, err := c.cfg.Access.ListGrants(ctx, p, false)
	if err != nil {
		c.renderStatus(w, r, http.StatusInternalServerError, c.errMessage(r, err))
		return
	}
	for _, g := range gs {
		if g.Active {
			d.Grants = append(d.Grants, g)
		}
	}
	mine, _ := c.cfg.Access.ListRequests(ctx, p, access.RequestsFilter{Mine: true})
	for _, rq := range mine {
		if rq.State == airlock.RequestPending {
			d.Pending = append(d.Pending, rq)
		}
	}
	rv, _ := c.cfg.Access.ListRequests(ctx, p, access.RequestsFilter{ToReview: true})
	d.ToReview = len(rv)
	ack, _ := c.cfg.Access.ListRequests(ctx, p, access.RequestsFilter{ReviewNeeded: true})
	d.NeedsAck = len(ack)
	pg := c.base(r, p, "Airlock", "home")
	pg.Data = d
	c.render(w, r, http.StatusOK, "home.html", pg)
}

// ---- factors ----

type factorsData struct {
	Factors  []*airlock.Factor
	Enrolled bool
	TOTP     *totpEnroll
	Codes    []string
	StepUp   stepUp
	Phishing bool // the session's MFA is a passkey (push device registration allowed)
	PushOn   bool
}

type totpEnroll struct {
	FactorID string
	URI      string
	QR       string
}

func (c *console) factorsPage(w http.ResponseWriter, r *http.Request, p *identity.Principal, status int, d factorsData, errMsg string) {
	fs, err := c.cfg.Identity.ListFactors(r.Context(), p)
	if err != nil {
		errMsg = c.errMessage(r, err)
	}
	d.Factors = fs
	d.Enrolled = c.cfg.Identity.RequireEnrolled(p) == nil
	d.StepUp = stepUp{Next: "/factors", Push: c.cfg.Push != nil}
	d.Phishing = p.Session.MFAMethod == identity.MethodWebAuthn
	d.PushOn = c.cfg.Push != nil
	pg := c.base(r, p, "Second factors", "factors")
	pg.Error = errMsg
	if pg.Error == "" {
		pg.Error = r.URL.Query().Get("error")
	}
	pg.Data = d
	c.render(w, r, status, "factors.html", pg)
}

func (c *console) factors(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	c.factorsPage(w, r, p, http.StatusOK, factorsData{}, "")
}

func (c *console) factorTOTP(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	f, uri, qr, err := c.cfg.Identity.EnrollTOTP(r.Context(), p, r.FormValue("name"))
	if err != nil {
		c.factorsPage(w, r, p, statusFor(err), factorsData{}, c.errMessage(r, err))
		return
	}
	c.factorsPage(w, r, p, http.StatusOK, factorsData{TOTP: &totpEnroll{FactorID: f.ID, URI: uri, QR: qr}}, "")
}

func (c *console) factorTOTPConfirm(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	if err := c.cfg.Identity.ConfirmTOTP(r.Context(), p, r.PathValue("id"), r.FormValue("otp")); err != nil {
		c.factorsPage(w, r, p, statusFor(err), factorsData{}, c.errMessage(r, err))
		return
	}
	http.Redirect(w, r, "/factors?done=confirmed", http.StatusSeeOther)
}

func (c *console) factorRecovery(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	codes, err := c.cfg.Identity.RecoveryCodes(r.Context(), p)
	if err != nil {
		c.factorsPage(w, r, p, statusFor(err), factorsData{}, c.errMessage(r, err))
		return
	}
	c.factorsPage(w, r, p, http.StatusOK, factorsData{Codes: codes}, "")
}

func (c *console) factorPush(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	if c.cfg.Push == nil {
		c.factorsPage(w, r, p, http.StatusBadRequest, factorsData{}, "push is not enabled on this server")
		return
	}
	_, tok, err := c.cfg.Push.RegisterDevice(r.Context(), p, r.FormValue("name"))
	if err != nil {
		c.factorsPage(w, r, p, statusFor(err), factorsData{}, c.errMessage(r, err))
		return
	}
	c.setCookie(w, deviceCookie, tok, "/", 400*24*3600, http.SameSiteStrictMode)
	http.Redirect(w, r, "/factors?done=device", http.StatusSeeOther)
}

func (c *console) factorRemove(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	if err := c.cfg.Identity.RemoveFactor(r.Context(), p, r.PathValue("id")); err != nil {
		c.factorsPage(w, r, p, statusFor(err), factorsData{}, c.errMessage(r, err))
		return
	}
	http.Redirect(w, r, "/factors?done=removed", http.StatusSeeOther)
}

// statusFor is the HTTP status for err: the API's one table.
func statusFor(err error) int { return api.HTTPStatus(err) }

// ---- request access ----

type requestData struct {
	Entitlements []policy.Entitlement
	Durations    []time.Duration
	Form         access.RequestInput
	Choice       string
	DryRun       *access.DryRun
}

var durationChoices = []time.Duration{15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour}

func (c *console) requestForm(w http.ResponseWriter, r *http.Request, p *identity.Principal, status int, d requestData, errMsg string) {
	res, err := c.cfg.Access.Resources(r.Context(), p)
	if err != nil {
		errMsg = c.errMessage(r, err)
	} else {
		d.Entitlements = res.Entitlements
	}
	var maxD time.Duration
	for _, e := range d.Entitlements {
		maxD = max(maxD, e.MaxDuration)
	}
	for _, dur := range durationChoices {
		if maxD == 0 || dur <= maxD {
			d.Durations = append(d.Durations, dur)
		}
	}
	pg := c.base(r, p, "Request access", "request")
	pg.Error = errMsg
	pg.Data = d
	c.render(w, r, status, "request.html", pg)
}

func (c *console) requestPage(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	c.requestForm(w, r, p, http.StatusOK, requestData{Choice: r.URL.Query().Get("choice")}, "")
}

func (c *console) requestSubmit(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	choice := r.FormValue("choice")
	res, level, _ := strings.Cut(choice, "|")
	dur, err := time.ParseDuration(r.FormValue("duration"))
	in := access.RequestInput{Resource: res, Access: level, Duration: dur, Reason: r.FormValue("reason"), Ticket: r.FormValue("ticket"),
		DryRun: r.FormValue("action") == "preview"}
	d := requestData{Form: in, Choice: choice}
	if err != nil {
		c.requestForm(w, r, p, http.StatusBadRequest, d, "choose a duration")
		return
	}
	out, err := c.cfg.Access.Request(r.Context(), p, in)
	if err != nil {
		c.requestForm(w, r, p, statusFor(err), d, c.errMessage(r, err))
		return
	}
	if in.DryRun {
		d.DryRun = out.DryRun
		c.requestForm(w, r, p, http.StatusOK, d, "")
		return
	}
	http.Redirect(w, r, "/requests/"+out.Request.ID+"?done=requested", http.StatusSeeOther)
}

// ---- my requests and grants ----

type myData struct {
	Requests []access.RequestView
	Grants   []access.GrantView
}

func (c *console) myPage(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	ctx := r.Context()
	rq, err := c.cfg.Access.ListRequests(ctx, p, access.RequestsFilter{Mine: true})
	if err != nil {
		c.renderStatus(w, r, statusFor(err), c.errMessage(r, err))
		return
	}
	gs, err := c.cfg.Access.ListGrants(ctx, p, false)
	if err != nil {
		c.renderStatus(w, r, statusFor(err), c.errMessage(r, err))
		return
	}
	pg := c.base(r, p, "My access", "my")
	pg.Error = r.URL.Query().Get("error")
	pg.Data = myData{Requests: rq, Grants: gs}
	c.render(w, r, http.StatusOK, "my.html", pg)
}

func (c *console) grantRevoke(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	next := safeNext(r.FormValue("next"))
	if _, err := c.cfg.Access.Revoke(r.Context(), p, r.PathValue("id"), r.FormValue("reason")); err != nil {
		http.Redirect(w, r, withParam(next, "error", c.errMessage(r, err)), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, withParam(next, "done", "revoked"), http.StatusSeeOther)
}

func (c *console) grantAck(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	next := safeNext(r.FormValue("next"))
	if err := c.cfg.Identity.VerifyStepUp(r.Context(), p, identity.StepUp{OTP: r.FormValue("otp")}); err != nil {
		http.Redirect(w, r, withParam(next, "error", c.errMessage(r, err)), http.StatusSeeOther)
		return
	}
	if _, err := c.cfg.Access.Acknowledge(r.Context(), p, r.PathValue("id"), r.FormValue("comment")); err != nil {
		http.Redirect(w, r, withParam(next, "error", c.errMessage(r, err)), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, withParam(next, "done", "acked"), http.StatusSeeOther)
}

// ---- approvals ----

type approvalsData struct {
	ToReview []access.RequestView
	NeedsAck []access.RequestView
	// Statements are the held statements p may decide (not p's own).
	Statements []access.StatementHold
	StepUp     stepUp
	FreshFor   int64
}

func (c *console) freshFor(p *identity.Principal) int64 {
	if p.Session.MFAAt.IsZero() {
		return 0
	}
	return max(0, int64((c.cfg.Identity.Freshness(identity.ActionApprove) - c.cfg.Now().Sub(p.Session.MFAAt)).Seconds()))
}

func (c *console) approvals(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	ctx := r.Context()
	rv, err := c.cfg.Access.ListRequests(ctx, p, access.RequestsFilter{ToReview: true})
	if err != nil {
		c.renderStatus(w, r, statusFor(err), c.errMessage(r, err))
		return
	}
	ack, _ := c.cfg.Access.ListRequests(ctx, p, access.RequestsFilter{ReviewNeeded: true})
	holds, _ := c.cfg.Access.ListHolds(ctx, p)
	var decide []access.StatementHold
	for i := range holds {
		if access.CanDecideHold(p, &holds[i]) {
			decide = append(decide, holds[i])
		}
	}
	pg := c.base(r, p, "Approvals", "approvals")
	pg.Error = r.URL.Query().Get("error")
	pg.Data = approvalsData{ToReview: rv, NeedsAck: ack, Statements: decide, StepUp: stepUp{Next: "/approvals", Push: c.cfg.Push != nil},
		FreshFor: c.freshFor(p)}
	c.render(w, r, http.StatusOK, "approvals.html", pg)
}

type requestDetailData struct {
	Request   *access.RequestView
	Grant     *access.GrantView
	CanReview bool
	Mine      bool
	StepUp    stepUp
	FreshFor  int64
	// Evidence is the grant's evidence pack download, for audit readers.
	Evidence string
}

func (c *console) requestDetail(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	c.requestDetailStatus(w, r, p, http.StatusOK, r.URL.Query().Get("error"))
}

func (c *console) requestDetailStatus(w http.ResponseWriter, r *http.Request, p *identity.Principal, status int, errMsg string) {
	ctx := r.Context()
	id := r.PathValue("id")
	rq, err := c.cfg.Access.GetRequest(ctx, p, id)
	if err != nil {
		c.renderStatus(w, r, statusFor(err), c.errMessage(r, err))
		return
	}
	d := requestDetailData{Request: rq, Mine: rq.UserID == p.User.ID,
		StepUp: stepUp{Next: "/requests/" + id, Push: c.cfg.Push != nil}, FreshFor: c.freshFor(p)}
	d.CanReview = !d.Mine && rq.State == airlock.RequestPending
	if d.CanReview {
		already := false
		for _, rv := range rq.Reviews {
			already = already || rv.ReviewerID == p.User.ID
		}
		d.CanReview = !already
	}
	if rq.GrantID != "" {
		if g, err := c.cfg.Access.RequestGrant(ctx, p, id); err == nil {
			d.Grant = g
			if c.cfg.Identity.RequireAuditReader(p) == nil && c.cfg.API != nil && c.cfg.API.Audit != nil && c.cfg.API.Audit.Evidence != nil {
				d.Evidence = api.EvidencePath(g.ID)
			}
		}
	}
	pg := c.base(r, p, "Request "+id, "approvals")
	pg.Error = errMsg
	pg.Data = d
	c.render(w, r, status, "request_detail.html", pg)
}

func (c *console) review(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	dec := r.PathValue("decision")
	if dec != airlock.DecisionApprove && dec != airlock.DecisionDeny {
		c.renderStatus(w, r, http.StatusNotFound, "Not found")
		return
	}
	ctx := r.Context()
	if err := c.cfg.Identity.VerifyStepUp(ctx, p, identity.StepUp{OTP: r.FormValue("otp")}); err != nil {
		c.requestDetailStatus(w, r, p, statusFor(err), c.errMessage(r, err))
		return
	}
	if _, err := c.cfg.Access.Review(ctx, p, r.PathValue("id"), access.ReviewInput{Decision: dec, Comment: r.FormValue("comment")}); err != nil {
		c.requestDetailStatus(w, r, p, statusFor(err), c.errMessage(r, err))
		return
	}
	done := "approved"
	if dec == airlock.DecisionDeny {
		done = "denied"
	}
	http.Redirect(w, r, "/requests/"+r.PathValue("id")+"?done="+done, http.StatusSeeOther)
}

// The flashes of a held statement's decision (beside flashes in web.go).
func init() {
	flashes["statement-approved"] = "Statement approved: it runs now."
	flashes["statement-denied"] = "Statement denied: its session gets an error."
}

// statementDecide approves or denies a held statement from the approvals
// page (access.DecideHold checks who may, and MFA).
func (c *console) statementDecide(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	dec := r.PathValue("decision")
	if dec != airlock.DecisionApprove && dec != airlock.DecisionDeny {
		c.renderStatus(w, r, http.StatusNotFound, "Not found")
		return
	}
	h, err := c.cfg.Access.DecideHold(r.Context(), p, r.PathValue("id"), access.ReviewInput{Decision: dec, Comment: r.FormValue("comment"),
		StepUp: identity.StepUp{OTP: r.FormValue("otp")}})
	if err != nil {
		http.Redirect(w, r, withParam("/approvals", "error", c.errMessage(r, err)), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, withParam("/approvals", "done", "statement-"+h.State), http.StatusSeeOther)
}

// ---- gateway sessions ----

type sessionsData struct {
	Sessions []*airlock.Session
	Active   bool
}

func (c *console) sessions(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	active := r.URL.Query().Get("all") == ""
	ss, err := c.cfg.Access.ListSessions(r.Context(), p, active)
	if err != nil {
		c.renderStatus(w, r, statusFor(err), c.errMessage(r, err))
		return
	}
	pg := c.base(r, p, "Sessions", "sessions")
	pg.Error = r.URL.Query().Get("error")
	pg.Data = sessionsData{Sessions: ss, Active: active}
	c.render(w, r, http.StatusOK, "sessions.html", pg)
}

func (c *console) sessionKill(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	next := safeNext(r.FormValue("next"))
	if err := c.cfg.Identity.VerifyStepUp(r.Context(), p, identity.StepUp{OTP: r.FormValue("otp")}); err != nil {
		http.Redirect(w, r, withParam(next, "error", c.errMessage(r, err)), http.StatusSeeOther)
		return
	}
	if _, err := c.cfg.Access.KillSession(r.Context(), p, r.PathValue("id")); err != nil {
		http.Redirect(w, r, withParam(next, "error", c.errMessage(r, err)), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, withParam(next, "done", "killed"), http.StatusSeeOther)
}

type sessionDetailData struct {
	Session *airlock.Session
	Queries []airlock.Event
	Replay  bool
}

func (c *console) sessionDetail(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	ctx := r.Context()
	ss, err := c.cfg.Access.Session(ctx, p, r.PathValue("id"))
	if err != nil {
		c.renderStatus(w, r, statusFor(err), c.errMessage(r, err))
		return
	}
	// An SSH session has one recording (its terminal); a Kubernetes
	// session one per exec or attach with a terminal.
	d := sessionDetailData{Session: ss, Replay: ss.Recording != "" || len(ss.Recordings) > 0}
	if ss.Kind == airlock.KindPostgres && c.cfg.API != nil && c.cfg.API.Audit != nil {
		ad := c.cfg.API.Audit
		if _, err := ad.Log.Record(ctx, airlock.Event{Actor: p.Actor(), Action: "audit.read", SessionID: ss.ID, SourceAddr: p.Source, Outcome: airlock.OutcomeSuccess}); err != nil {
			c.renderStatus(w, r, http.StatusServiceUnavailable, "the audit log cannot be written; the read was refused")
			return
		}
		d.Queries, err = ad.Store.ListEvents(ctx, airlock.EventFilter{SessionID: ss.ID, Action: "db.query", Limit: 5000})
		if err != nil {
			c.renderStatus(w, r, statusFor(err), c.errMessage(r, err))
			return
		}
	}
	pg := c.base(r, p, "Session "+ss.ID, "sessions")
	pg.Data = d
	c.render(w, r, http.StatusOK, "session.html", pg)
}

// ---- audit ----

type auditData struct {
	Query  auditQuery
	Events []airlock.Event
	Verify *verifyResult
}

type auditQuery struct {
	User, Action, Resource, Since, Until string
}

type verifyResult struct {
	OK          bool   `json:"ok"`
	Events      int64  `json:"events"`
	Checkpoints int    `json:"checkpoints"`
	Message     string `json:"message"`
	FirstBadSeq int64  `json:"first_bad_seq"`
}

// parseLocal reads a datetime-local field (taken as UTC) or RFC 3339.
func parseLocal(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, airlock.Errorf(airlock.EINVALID, "times look like 2026-11-27T10:00")
}

func (c *console) auditPage(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	ctx := r.Context()
	if c.cfg.Identity.RequireAuditReader(p) != nil {
		c.renderStatus(w, r, http.StatusForbidden, "Reading the audit log needs the "+airlock.GroupAdmins+" or "+airlock.GroupAuditors+" group.")
		return
	}
	if c.cfg.API == nil || c.cfg.API.Audit == nil {
		c.renderStatus(w, r, http.StatusNotFound, "The audit log is not available on this server.")
		return
	}
	ad := c.cfg.API.Audit
	q := r.URL.Query()
	d := auditData{Query: auditQuery{User: q.Get("user"), Action: q.Get("action"), Resource: q.Get("resource"), Since: q.Get("since"), Until: q.Get("until")}}
	pg := c.base(r, p, "Audit log", "audit")
	f := airlock.EventFilter{ActorName: d.Query.User, Action: d.Query.Action, Resource: d.Query.Resource, Limit: 200, Desc: true}
	var err error
	if f.Since, err = parseLocal(d.Query.Since); err == nil {
		f.Until, err = parseLocal(d.Query.Until)
	}
	if err != nil {
		pg.Error = c.errMessage(r, err)
	} else {
		if _, err := ad.Log.Record(ctx, airlock.Event{Actor: p.Actor(), Action: "audit.read", SourceAddr: p.Source, Outcome: airlock.OutcomeSuccess}); err != nil {
			c.renderStatus(w, r, http.StatusServiceUnavailable, "the audit log cannot be written; the read was refused")
			return
		}
		if d.Events, err = ad.Store.ListEvents(ctx, f); err != nil {
			pg.Error = c.errMessage(r, err)
		}
	}
	if ad.Verify != nil {
		if rep, err := ad.Verify(ctx); err == nil {
			b, _ := json.Marshal(rep)
			var v verifyResult
			if json.Unmarshal(b, &v) == nil {
				d.Verify = &v
			}
		} else {
			d.Verify = &verifyResult{Message: c.errMessage(r, err)}
		}
	}
	pg.Data = d
	c.render(w, r, http.StatusOK, "audit.html", pg)
}

// ---- browser login for the CLI ----

type deviceData struct {
	Code   string
	Source string
	StepUp stepUp
}

func (c *console) devicePage(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	c.deviceRender(w, r, p, http.StatusOK, "")
}

func (c *console) deviceRender(w http.ResponseWriter, r *http.Request, p *identity.Principal, status int, errMsg string) {
	code := identity.NormalizeUserCode(r.FormValue("code"))
	pg := c.base(r, p, "Sign in the command line", "")
	pg.Error = errMsg
	src, err := c.cfg.Identity.WebLoginSource(r.Context(), code)
	if err != nil && r.URL.Query().Get("done") == "" {
		pg.Error = c.errMessage(r, err)
		code = ""
	}
	pg.Data = deviceData{Code: code, Source: src, StepUp: stepUp{Next: "/device?code=" + code, Push: c.cfg.Push != nil}}
	c.render(w, r, status, "device.html", pg)
}

func (c *console) deviceApprove(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	if err := c.cfg.Identity.ApproveWebLogin(r.Context(), p, r.FormValue("code")); err != nil {
		c.deviceRender(w, r, p, statusFor(err), c.errMessage(r, err))
		return
	}
	http.Redirect(w, r, "/device?done=weblogin", http.StatusSeeOther)
}
