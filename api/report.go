package api

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/identity"
	"github.com/airlockhq/airlock/report"
)

// reportTypes are the content types of the report formats.
var reportTypes = map[string]string{
	report.FormatJSON: "application/json",
	report.FormatCSV:  "text/csv; charset=utf-8",
	report.FormatHTML: "text/html; charset=utf-8",
}

func (s *Server) routesReport() {
	s.mux.HandleFunc("GET "+RouteReportAccess, s.enrolled(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		q := r.URL.Query()
		format := q.Get("format")
		if format == "" {
			format = report.FormatJSON
		}
		if !slices.Contains(report.Formats, format) {
			s.writeError(w, r, airlock.Errorf(airlock.EINVALID, "format must be json, csv or html"))
			return
		}
		var since, until time.Time
		for name, dst := range map[string]*time.Time{"since": &since, "until": &until} {
			if v := q.Get(name); v != "" {
				t, err := time.Parse(time.RFC3339, v)
				if err != nil {
					s.writeError(w, r, airlock.Errorf(airlock.EINVALID, "%s must be an RFC 3339 time like 2026-11-27T10:00:00Z", name))
					return
				}
				*dst = t
			}
		}
		if since.IsZero() {
			s.writeError(w, r, airlock.Errorf(airlock.EINVALID, "since is required"))
			return
		}
		rep, err := s.Access.AccessReport(r.Context(), p, since, until)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		h := w.Header()
		h.Set("Content-Type", reportTypes[format])
		// The HTML loads nothing and runs nothing; say so to a browser that
		// opens it from here, and have it saved rather than shown.
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		h.Set("Content-Disposition", `attachment; filename="airlock-access-report.`+format+`"`)
		if err := rep.Write(w, format); err != nil {
			s.Logger.Error("access report", "err", err)
		}
	}))
}

// ReportQuery selects an access report.
type ReportQuery struct {
	Since, Until time.Time // zero Until: now
	Format       string    // report.FormatJSON (default), FormatCSV, FormatHTML
}

func (q ReportQuery) values() url.Values {
	v := url.Values{}
	v.Set("since", q.Since.UTC().Format(time.RFC3339))
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339))
	}
	if q.Format != "" {
		v.Set("format", q.Format)
	}
	return v
}

// AccessReport returns the access report in q.Format, as the server wrote
// it (JSON, CSV or a self-contained HTML page). Admins and auditors only.
func (c *Client) AccessReport(ctx context.Context, q ReportQuery) (io.ReadCloser, error) {
	resp, err := c.Raw(ctx, "GET", withQuery(RouteReportAccess, q.values()), nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
