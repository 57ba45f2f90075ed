package access

import (
	"context"
	"sort"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/identity"
)

// GrantView is a grant with its time left.
type GrantView struct {
	*airlock.Grant
	Active      bool  `json:"active"`
	SecondsLeft int64 `json:"seconds_left"`
}

func (s *Service) view(g *airlock.Grant) GrantView {
	now := s.now()
	v := GrantView{Grant: g, Active: g.ActiveAt(now)}
	if g.State == airlock.GrantActive && !now.Before(g.EndsAt) {
		v.Grant.State = airlock.GrantExpired
	}
	if v.Active {
		v.SecondsLeft = int64(g.EndsAt.Sub(now).Seconds())
	}
	return v
}

// ListGrants returns p's grants, or with all (admins) everyone's.
func (s *Service) ListGrants(ctx context.Context, p *identity.Principal, all bool) ([]GrantView, error) {
	if err := s.ident.RequireEnrolled(p); err != nil {
		return nil, err
	}
	f := airlock.GrantFilter{UserID: p.User.ID}
	if all {
		if !p.User.IsAdmin() {
			return nil, airlock.Errorf(airlock.EFORBIDDEN, "--all needs the %s group", airlock.GroupAdmins)
		}
		f.UserID = ""
	}
	gs, err := s.store.ListGrants(ctx, f)
	if err != nil {
		return nil, err
	}
	out := []GrantView{}
	for _, g := range gs {
		out = append(out, s.view(g))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Active && !out[j].Active })
	return out, nil
}

// RequestGrant returns the grant made for request requestID, as
// ListGrants shows grants, to whoever may see the request (GetRequest):
// its requester, its reviewers and admins. It is nil when the request has
// no grant. Errors: those of GetRequest, and of reading the grant.
func (s *Service) RequestGrant(ctx context.Context, p *identity.Principal, requestID string) (*GrantView, error) {
	rq, err := s.GetRequest(ctx, p, requestID)
	if err != nil || rq.GrantID == "" {
		return nil, err
	}
	g, err := s.store.GrantByID(ctx, rq.GrantID)
	if err != nil {
		return nil, err
	}
	v := s.view(g)
	return &v, nil
}

// Revoke ends a grant early. The grant's holder, its request's reviewers
// and admins may revoke.
func (s *Service) Revoke(ctx context.Context, p *identity.Principal, grantID, reason string) (*airlock.Grant, error) {
	if err := s.ident.RequireEnrolled(p); err != nil {
		return nil, err
	}
	g, err := s.store.GrantByID(ctx, grantID)
	if err != nil {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "no grant %q; run `airlock grants`", grantID)
	}
	allowed := g.UserID == p.User.ID || p.User.IsAdmin()
	if !allowed {
		rvs, _ := s.store.ListReviews(ctx, g.RequestID)
		for _, rv := range rvs {
			if rv.ReviewerID == p.User.ID {
				allowed = true
			}
		}
	}
	if !allowed {
		return nil, airlock.Errorf(airlock.ENOTFOUND, "no grant %q; run `airlock grants`", grantID)
	}
	if !g.ActiveAt(s.now()) && !(g.State == airlock.GrantActive && s.now().Before(g.StartsAt)) {
		return nil, airlock.Errorf(airlock.EINVALID, "grant %s is no longer active", g.ID)
	}
	if reason == "" {
		reason = "revoked by " + p.User.Name
	}
	if err := s.endGrant(ctx, g, airlock.GrantRevoked, p.Actor(), reason); err != nil {
		return nil, err
	}
	return s.store.GrantByID(ctx, g.ID)
}

// endGrant records and applies the end of a grant and cuts its sessions.
func (s *Service) endGrant(ctx context.Context, g *airlock.Grant, state string, by airlock.Actor, reason string) error {
	action := "grant.expired"
	if state == airlock.GrantRevoked {
		action = "grant.revoked"
	}
	// ECONFLICT: the grant had already ended (expired or revoked
	// concurrently); the announcement is retracted, and its sessions are
	// cut all the same.
	if err := s.change(ctx, airlock.Event{Actor: by, Action: action, Resource: g.Resource, RequestID: g.RequestID, GrantID: g.ID,
		Details: airlock.EventDetails("user", g.UserName, "reason", reason, "ends_at", g.EndsAt)},
		func(ctx context.Context) error {
			return s.store.EndGrant(ctx, g.ID, state, s.now().UTC(), by.Name, reason)
		}); err != nil &&
		!airlock.IsCode(err, airlock.ECONFLICT) {
		return err
	}
	end := airlock.EndGrantRevoked
	if state == airlock.GrantExpired {
		end = airlock.EndGrantExpired
	}
	s.bus.Publish(airlock.Revocation{GrantID: g.ID, Reason: end, By: by.Name, Detail: reason})
	return nil
}

// RevokeUser revokes every active grant of a user and cuts their sessions
// (the identity service calls it when a user is disabled). The sessions
// are cut first, so that they end as user_disabled rather than
// grant_revoked.
func (s *Service) RevokeUser(ctx context.Context, userID, reason string) {
	s.bus.Publish(airlock.Revocation{UserID: userID, Reason: airlock.EndUserDisabled, By: airlock.SystemActor.Name, Detail: reason})
	gs, err := s.store.ListGrants(ctx, airlock.GrantFilter{UserID: userID})
	if err == nil {
		for _, g := range gs {
			if g.State == airlock.GrantActive && s.now().Before(g.EndsAt) {
				s.endGrant(ctx, g, airlock.GrantRevoked, airlock.SystemActor, reason)
			}
		}
	}
}
