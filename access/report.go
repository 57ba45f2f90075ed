package access

import (
	"context"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/identity"
	"github.com/airlockhq/airlock/policy"
	"github.com/airlockhq/airlock/report"
)

// MaxReportWindow bounds an access report's period.
const MaxReportWindow = 2 * 366 * 24 * time.Hour

// AccessReport builds the access report of [since, until] — who held which
// access, why, approved by whom, what they did with it, break-glass and
// unused eligibility — for an audit reader (admins and auditors), and
// audits that it was made. A zero until means now.
//
// It reads every request, grant and session row and filters them in
// memory: fine for the tens of thousands a team makes in a year; the
// stores have no time-range filter on those tables yet.
func (s *Service) AccessReport(ctx context.Context, p *identity.Principal, since, until time.Time) (*report.Access, error) {
	if err := s.ident.RequireAuditReader(p); err != nil {
		return nil, err
	}
	now := s.now()
	if until.IsZero() {
		until = now
	}
	if !since.Before(until) {
		return nil, airlock.Errorf(airlock.EINVALID, "the report's start (%s) must be before its end (%s)", since.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
	}
	if until.Sub(since) > MaxReportWindow {
		return nil, airlock.Errorf(airlock.EINVALID, "a report covers at most two years; make one per year")
	}
	in := report.Input{Since: since, Until: until, Now: now, Reviews: map[string][]*airlock.Review{}}
	var err error
	if in.Requests, err = s.store.ListRequests(ctx, airlock.RequestFilter{}); err != nil {
		return nil, err
	}
	if in.Grants, err = s.store.ListGrants(ctx, airlock.GrantFilter{}); err != nil {
		return nil, err
	}
	if in.Sessions, err = s.store.ListSessions(ctx, airlock.SessionFilter{}); err != nil {
		return nil, err
	}
	// Reviews of the requests the report can show: made in the window,
	// or behind a grant that overlaps it.
	wanted := map[string]bool{}
	for _, g := range in.Grants {
		if g.RequestID != "" && !g.StartsAt.After(until) && g.EndsAt.After(since) {
			wanted[g.RequestID] = true
		}
	}
	for _, r := range in.Requests {
		if wanted[r.ID] || (!r.CreatedAt.Before(since) && !r.CreatedAt.After(until)) {
			rvs, err := s.store.ListReviews(ctx, r.ID)
			if err != nil {
				return nil, err
			}
			in.Reviews[r.ID] = rvs
		}
	}

	pol, ver := s.Policy()
	in.PolicyVersion = ver
	users, err := s.store.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	rs, err := s.store.ListResources(ctx)
	if err != nil {
		return nil, err
	}
	prs := make([]policy.Resource, 0, len(rs))
	byName := map[string]*airlock.Resource{}
	for _, r := range rs {
		byName[r.Name] = r
		prs = append(prs, policyResource(r))
	}
	levels := func(r policy.Resource) []string {
		if x := byName[r.Name]; x != nil {
			return sortedLevels(x)
		}
		return nil
	}
	for _, u := range users {
		if u.Disabled {
			continue
		}
		for _, e := range pol.Requestable(policy.Subject{Name: u.Name, Groups: u.Groups}, prs, levels) {
			in.Eligible = append(in.Eligible, report.Eligibility{User: u.Name, Resource: e.Resource, Access: e.Access, Rule: e.Rule,
				BreakGlass: e.BreakGlass})
		}
	}

	if err := s.record(ctx, airlock.Event{Actor: p.Actor(), Action: "report.access", SourceAddr: p.Source, Outcome: airlock.OutcomeSuccess,
		Details: airlock.EventDetails("since", since.UTC().Format(time.RFC3339), "until", until.UTC().Format(time.RFC3339))}); err != nil {
		return nil, airlock.WrapError(airlock.EUNAVAILABLE, "the audit log cannot be written; the report was refused", err)
	}
	return report.Build(in), nil
}
