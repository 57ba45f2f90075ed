package api

import (
	"context"
	"io"
	"net/http"
	"regexp"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/identity"
)

// grantIDPattern is what a grant ID looks like (airlock.NewID); anything
// else is no grant, and never reaches a header.
var grantIDPattern = regexp.MustCompile(`^[a-z]{1,8}_[a-z0-9]{1,40}$`)

func (s *Server) routesEvidence() {
	ad := s.Audit
	s.mux.HandleFunc("GET "+RouteEvidence, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		if err := s.Identity.RequireAuditReader(p); err != nil {
			s.writeError(w, r, err)
			return
		}
		id := r.PathValue("id")
		if !grantIDPattern.MatchString(id) {
			s.writeError(w, r, airlock.Errorf(airlock.ENOTFOUND, "no grant %q", clipID(id)))
			return
		}
		pack, err := ad.Evidence(r.Context(), id)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		// The export is a read of the log, audited like the others: not an
		// event of the grant (it carries no grant_id), so that exporting a
		// pack never makes the grant's next pack wait for a checkpoint.
		if _, err := ad.Log.Record(r.Context(), airlock.Event{Actor: p.Actor(), Action: "evidence.exported", SourceAddr: p.Source,
			Outcome: airlock.OutcomeSuccess, Details: airlock.EventDetails("grant", id)}); err != nil {
			s.writeError(w, r, airlock.WrapError(airlock.EUNAVAILABLE, "the audit log cannot be written; the export was refused", err))
			return
		}
		w.Header().Set("Content-Type", "application/zip")
		w.Header().Set("Content-Disposition", `attachment; filename="evidence-`+id+`.zip"`)
		if err := pack.WriteTo(r.Context(), w); err != nil {
			// evidence.exported records the export begun; one that broke
			// off says so, so that the log never shows a whole pack
			// handed out when it was not. A request context already
			// canceled (the client went away) must not stop that record.
			s.Logger.Error("evidence pack", "grant", id, "err", err)
			if _, rerr := ad.Log.Record(context.WithoutCancel(r.Context()), airlock.Event{Actor: p.Actor(), Action: "evidence.export_failed", SourceAddr: p.Source,
				Outcome: airlock.OutcomeFailure, Details: airlock.EventDetails("grant", id, "error", airlock.ErrorMessage(err))}); rerr != nil {
				s.Logger.Error("audit evidence.export_failed", "grant", id, "err", rerr)
			}
			// Bytes may have gone: end the response broken rather than let
			// a truncated zip look whole.
			panic(http.ErrAbortHandler)
		}
	}))
}

func clipID(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Evidence streams the evidence pack (a zip) of grant id. Admins and
// auditors only.
func (c *Client) Evidence(ctx context.Context, id string) (io.ReadCloser, error) {
	resp, err := c.Raw(ctx, "GET", routePath(RouteEvidence, id), nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// EvidencePath is the API path of grant id's evidence pack (the console
// links to it; the API takes the console's session cookie).
func EvidencePath(id string) string { return routePath(RouteEvidence, id) }
