// Package report builds the access report an auditor asks for: who held
// which access to what and when, why, approved by whom with what factor,
// what they did with it (sessions, statements), break-glass uses and their
// acknowledgements, and the standing eligibility nobody used — the
// least-privilege review. Build is pure: it takes rows already read (the
// access service reads them, under the audit-read rule) and returns the
// report; WriteCSV and WriteHTML render it (JSON is the struct itself).
package report

import (
	"cmp"
	"slices"
	"time"

	"github.com/airlockhq/airlock"
)

// Input is what a report is built from. Rows outside [Since, Until) are
// ignored, so a caller may pass more than the window.
type Input struct {
	Since, Until  time.Time
	Now           time.Time // when the report is made; grants active at Now are "active"
	PolicyVersion int64
	Requests      []*airlock.AccessRequest
	// Reviews holds each request's reviews, by request ID.
	Reviews  map[string][]*airlock.Review
	Grants   []*airlock.Grant
	Sessions []*airlock.Session
	// Eligible is, per user name, what the policy in force lets that user
	// request (break-glass included); the report lists the pairs no grant
	// in the window used.
	Eligible []Eligibility
}

// Eligibility is one (user, resource, access level) the policy lets the
// user request.
type Eligibility struct {
	User       string `json:"user"`
	Resource   string `json:"resource"`
	Access     string `json:"access"`
	Rule       string `json:"rule"`
	BreakGlass bool   `json:"break_glass"` // break-glass can open it
}

// Access is the access report.
type Access struct {
	Since         time.Time      `json:"since"`
	Until         time.Time      `json:"until"`
	GeneratedAt   time.Time      `json:"generated_at"`
	PolicyVersion int64          `json:"policy_version"`
	Summary       Summary        `json:"summary"`
	Grants        []Grant        `json:"grants"`
	Requests      []Request      `json:"requests_not_granted"`
	Unused        []Eligibility  `json:"unused_eligibility"`
	Resources     []ResourceLine `json:"by_resource"`
	Days          []Day          `json:"by_day"`
}

// Summary counts the report's rows.
type Summary struct {
	Requests          int   `json:"requests"`
	Grants            int   `json:"grants"`
	Users             int   `json:"users"`
	Resources         int   `json:"resources"`
	Sessions          int   `json:"sessions"`
	Statements        int64 `json:"statements"`
	BreakGlass        int   `json:"break_glass"`
	BreakGlassUnacked int   `json:"break_glass_unacknowledged"`
	Revoked           int   `json:"revoked"`
	Denied            int   `json:"requests_denied"`
	Eligible          int   `json:"eligible_pairs"`
	Unused            int   `json:"unused_eligible_pairs"`
}

// Grant is one grant that overlapped the window, with how it came to be
// and what was done with it.
type Grant struct {
	ID            string     `json:"id"`
	User          string     `json:"user"`
	Resource      string     `json:"resource"`
	Access        string     `json:"access"`
	StartsAt      time.Time  `json:"starts_at"`
	EndsAt        time.Time  `json:"ends_at"`
	State         string     `json:"state"` // active, expired, revoked (as of GeneratedAt)
	Reason        string     `json:"reason"`
	Ticket        string     `json:"ticket,omitempty"`
	Rule          string     `json:"rule,omitempty"`
	PolicyVersion int64      `json:"policy_version,omitempty"`
	Approvals     []Approval `json:"approvals"`
	BreakGlass    bool       `json:"break_glass"`
	AckedBy       string     `json:"acked_by,omitempty"`
	AckedAt       time.Time  `json:"acked_at,omitzero"`
	RevokedBy     string     `json:"revoked_by,omitempty"`
	RevokeReason  string     `json:"revoke_reason,omitempty"`
	MFAMethod     string     `json:"mfa_method,omitempty"`
	Sessions      int        `json:"sessions"`
	Statements    int64      `json:"statements"`
	BytesIn       int64      `json:"bytes_in"`
	BytesOut      int64      `json:"bytes_out"`
}

// Approval is one approving review.
type Approval struct {
	By        string    `json:"by"`
	MFAMethod string    `json:"mfa_method"`
	At        time.Time `json:"at"`
	Comment   string    `json:"comment,omitempty"`
}

// Request is a request made in the window that gave no grant: denied,
// expired unanswered, canceled, or still pending.
type Request struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Resource  string    `json:"resource"`
	Access    string    `json:"access"`
	Reason    string    `json:"reason"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	DeniedBy  []string  `json:"denied_by,omitempty"`
}

// ResourceLine counts one resource's use.
type ResourceLine struct {
	Resource   string `json:"resource"`
	Grants     int    `json:"grants"`
	BreakGlass int    `json:"break_glass"`
	Sessions   int    `json:"sessions"`
	Statements int64  `json:"statements"`
}

// Day counts the grants that started on one UTC day.
type Day struct {
	Day        string `json:"day"` // YYYY-MM-DD
	Grants     int    `json:"grants"`
	BreakGlass int    `json:"break_glass"`
}

// Build makes the report of in's window.
func Build(in Input) *Access {
	a := &Access{Since: in.Since.UTC(), Until: in.Until.UTC(), GeneratedAt: in.Now.UTC(), PolicyVersion: in.PolicyVersion,
		Grants: []Grant{}, Requests: []Request{}, Unused: []Eligibility{}, Resources: []ResourceLine{}, Days: []Day{}}
	inWindow := func(t time.Time) bool { return !t.Before(in.Since) && !t.After(in.Until) }

	requests := map[string]*airlock.AccessRequest{}
	for _, r := range in.Requests {
		requests[r.ID] = r
		if !inWindow(r.CreatedAt) {
			continue
		}
		a.Summary.Requests++
		if r.State == airlock.RequestDenied {
			a.Summary.Denied++
		}
		if r.GrantID != "" {
			continue
		}
		rq := Request{ID: r.ID, User: r.UserName, Resource: r.Resource, Access: r.Access, Reason: r.Reason, State: r.State, CreatedAt: r.CreatedAt.UTC()}
		for _, rv := range in.Reviews[r.ID] {
			if rv.Decision == airlock.DecisionDeny {
				rq.DeniedBy = append(rq.DeniedBy, rv.ReviewerName)
			}
		}
		a.Requests = append(a.Requests, rq)
	}

	type sessCount struct {
		n              int
		stmts, in, out int64
	}
	byGrant := map[string]*sessCount{}
	for _, s := range in.Sessions {
		c := byGrant[s.GrantID]
		if c == nil {
			c = &sessCount{}
			byGrant[s.GrantID] = c
		}
		c.n++
		c.stmts += s.Statements
		c.in += s.BytesIn
		c.out += s.BytesOut
	}

	users, resources := map[string]bool{}, map[string]*ResourceLine{}
	days := map[string]*Day{}
	used := map[[3]string]bool{}
	for _, g := range in.Grants {
		// A grant is in the report when it gave access at some time in
		// the window: it started before the window's end and ended (or
		// was revoked) after its start.
		end := g.EndsAt
		if g.State == airlock.GrantRevoked && !g.RevokedAt.IsZero() && g.RevokedAt.Before(end) {
			end = g.RevokedAt
		}
		if g.StartsAt.After(in.Until) || !end.After(in.Since) {
			continue
		}
		row := Grant{ID: g.ID, User: g.UserName, Resource: g.Resource, Access: g.Access, StartsAt: g.StartsAt.UTC(), EndsAt: g.EndsAt.UTC(),
			State: g.State, BreakGlass: g.BreakGlass, AckedBy: g.AckedBy, AckedAt: g.AckedAt.UTC(), RevokedBy: g.RevokedBy,
			RevokeReason: g.RevokeReason, MFAMethod: g.MFAMethod, Approvals: []Approval{}}
		if g.State == airlock.GrantActive && !in.Now.Before(g.EndsAt) {
			row.State = airlock.GrantExpired
		}
		if r := requests[g.RequestID]; r != nil {
			row.Reason, row.Ticket, row.Rule, row.PolicyVersion = r.Reason, r.Ticket, r.Rule, r.PolicyVersion
			for _, rv := range in.Reviews[r.ID] {
				if rv.Decision == airlock.DecisionApprove {
					row.Approvals = append(row.Approvals, Approval{By: rv.ReviewerName, MFAMethod: rv.MFAMethod, At: rv.CreatedAt.UTC(), Comment: rv.Comment})
				}
			}
		}
		if c := byGrant[g.ID]; c != nil {
			row.Sessions, row.Statements, row.BytesIn, row.BytesOut = c.n, c.stmts, c.in, c.out
		}
		a.Grants = append(a.Grants, row)

		a.Summary.Grants++
		a.Summary.Sessions += row.Sessions
		a.Summary.Statements += row.Statements
		if row.State == airlock.GrantRevoked {
			a.Summary.Revoked++
		}
		if g.BreakGlass {
			a.Summary.BreakGlass++
			if g.AckedBy == "" {
				a.Summary.BreakGlassUnacked++
			}
		}
		users[g.UserName] = true
		used[[3]string{g.UserName, g.Resource, g.Access}] = true
		rl := resources[g.Resource]
		if rl == nil {
			rl = &ResourceLine{Resource: g.Resource}
			resources[g.Resource] = rl
		}
		rl.Grants++
		rl.Sessions += row.Sessions
		rl.Statements += row.Statements
		day := g.StartsAt.UTC().Format(time.DateOnly)
		d := days[day]
		if d == nil {
			d = &Day{Day: day}
			days[day] = d
		}
		d.Grants++
		if g.BreakGlass {
			rl.BreakGlass++
			d.BreakGlass++
		}
	}
	a.Summary.Users, a.Summary.Resources = len(users), len(resources)

	for _, e := range in.Eligible {
		a.Summary.Eligible++
		if !used[[3]string{e.User, e.Resource, e.Access}] {
			a.Unused = append(a.Unused, e)
		}
	}
	a.Summary.Unused = len(a.Unused)

	slices.SortStableFunc(a.Grants, func(x, y Grant) int {
		return cmp.Or(x.StartsAt.Compare(y.StartsAt), cmp.Compare(x.ID, y.ID))
	})
	slices.SortStableFunc(a.Requests, func(x, y Request) int {
		return cmp.Or(x.CreatedAt.Compare(y.CreatedAt), cmp.Compare(x.ID, y.ID))
	})
	slices.SortStableFunc(a.Unused, func(x, y Eligibility) int {
		return cmp.Or(cmp.Compare(x.User, y.User), cmp.Compare(x.Resource, y.Resource), cmp.Compare(x.Access, y.Access))
	})
	for _, rl := range resources {
		a.Resources = append(a.Resources, *rl)
	}
	slices.SortFunc(a.Resources, func(x, y ResourceLine) int { return cmp.Compare(x.Resource, y.Resource) })
	for _, d := range days {
		a.Days = append(a.Days, *d)
	}
	slices.SortFunc(a.Days, func(x, y Day) int { return cmp.Compare(x.Day, y.Day) })
	return a
}
