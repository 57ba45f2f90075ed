package web

import (
	"errors"
	"net"
	"net/http"
	"net/url"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/identity"
	"github.com/airlockhq/airlock/policy"
)

// appOpenData is the page a browser sees on its way to an app behind the
// HTTP gateway when it cannot go on at once.
type appOpenData struct {
	App          string
	NoGrant      bool
	StepUp       *stepUp
	Entitlements []policy.Entitlement
}

// appOpen is where the HTTP gateway sends a browser without an app
// session (GET /apps/open?app=&state=&next=). Signed in, with an active
// grant and MFA fresh per policy, it issues a single-use code bound to the
// browser's state and sends it back to the app's own host; without a grant
// it offers the request form for the app; with stale MFA, the step-up.
func (c *console) appOpen(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	q := r.URL.Query()
	app, state, next := q.Get("app"), q.Get("state"), q.Get("next")
	if !airlock.SafeRedirect(next) {
		next = "/"
	}
	gw := c.cfg.API.Gateways
	if gw.HTTPAppsDomain == "" {
		c.renderStatus(w, r, http.StatusNotFound, "The HTTP gateway is not enabled on this server.")
		return
	}
	code, res, err := c.cfg.Access.IssueHTTPCode(r.Context(), p, app, state, next, identity.StepUp{})
	if err != nil {
		d := appOpenData{App: app}
		switch {
		case airlock.IsCode(err, airlock.EMFAREQUIRED):
			d.StepUp = &stepUp{Next: r.URL.RequestURI(), Push: c.cfg.Push != nil}
		case airlock.IsCode(err, airlock.EFORBIDDEN) && noGrant(err):
			d.NoGrant = true
			if rs, err := c.cfg.Access.Resources(r.Context(), p); err == nil {
				for _, e := range rs.Entitlements {
					if e.Resource == app {
						d.Entitlements = append(d.Entitlements, e)
					}
				}
			}
		default:
			c.renderStatus(w, r, statusFor(err), c.errMessage(r, err))
			return
		}
		pg := c.base(r, p, "Open "+app, "")
		pg.Error = r.URL.Query().Get("error")
		pg.Data = d
		c.render(w, r, http.StatusOK, "app_open.html", pg)
		return
	}
	host := access.PublicHost(res, gw.HTTPAppsDomain)
	if gw.HTTPAppsPort != "" && gw.HTTPAppsPort != "443" {
		host = net.JoinHostPort(host, gw.HTTPAppsPort)
	}
	u := url.URL{Scheme: "https", Host: host, Path: "/.airlock/callback", RawQuery: url.Values{"code": {code}}.Encode()}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// noGrant reports whether err is connecting's "you have no active grant".
func noGrant(err error) bool {
	var e *airlock.Error
	return errors.As(err, &e) && e.Details["reason"] == "no_grant"
}
