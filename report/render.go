package report

import (
	"bufio"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"
	"time"
)

// Formats a report can be written in.
const (
	FormatJSON = "json"
	FormatCSV  = "csv"
	FormatHTML = "html"
)

// Formats lists them, for flag help and validation.
var Formats = []string{FormatJSON, FormatCSV, FormatHTML}

// csvHeader is the grant table's columns.
var csvHeader = []string{"grant_id", "user", "resource", "access", "starts_at", "ends_at", "state", "reason", "ticket",
	"rule", "policy_version", "approved_by", "break_glass", "acked_by", "acked_at", "revoked_by", "revoke_reason",
	"sessions", "statements", "bytes_in", "bytes_out"}

// WriteCSV writes one row per grant (RFC 4180), every field quoted, so a
// spreadsheet that splits on ';' or ',' (its locale's list separator) keeps
// a field whole; and a field a spreadsheet would read as a formula (it
// starts with = + - @, tab or carriage return — a reason is whatever its
// requester typed) gets a leading single quote.
func (a *Access) WriteCSV(w io.Writer) error {
	bw := bufio.NewWriter(w)
	writeRow := func(rec []string) {
		for i, f := range rec {
			if i > 0 {
				bw.WriteByte(',')
			}
			bw.WriteByte('"')
			bw.WriteString(strings.ReplaceAll(cell(f), `"`, `""`))
			bw.WriteByte('"')
		}
		bw.WriteString("\r\n")
	}
	writeRow(csvHeader)
	for _, g := range a.Grants {
		var approvals []string
		for _, ap := range g.Approvals {
			approvals = append(approvals, ap.By+" ("+ap.MFAMethod+")")
		}
		writeRow([]string{g.ID, g.User, g.Resource, g.Access, stamp(g.StartsAt), stamp(g.EndsAt), g.State, g.Reason, g.Ticket,
			g.Rule, strconv.FormatInt(g.PolicyVersion, 10), strings.Join(approvals, "; "), strconv.FormatBool(g.BreakGlass),
			g.AckedBy, stamp(g.AckedAt), g.RevokedBy, g.RevokeReason, strconv.Itoa(g.Sessions),
			strconv.FormatInt(g.Statements, 10), strconv.FormatInt(g.BytesIn, 10), strconv.FormatInt(g.BytesOut, 10)})
	}
	return bw.Flush()
}

// cell defuses a value a spreadsheet would evaluate.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

//go:embed report.html.tmpl
var templateFS embed.FS

var page = template.Must(template.New("report.html.tmpl").Funcs(template.FuncMap{
	"stamp": stamp,
	"day":   func(t time.Time) string { return t.UTC().Format(time.DateOnly) },
}).ParseFS(templateFS, "report.html.tmpl"))

// bar is one bar of a chart, laid out in SVG user units.
type bar struct {
	Label        string
	Value, Extra int // Extra is drawn over Value (break-glass within grants)
	X, W         int
	H, ExtraH, Y int
	ExtraY       int
}

// chart is an SVG bar chart, drawn here so the page needs no script and
// loads nothing.
type chart struct {
	Title, Legend, ExtraLegend string
	Width, Height              int
	Bars                       []bar
	Max                        int
}

const chartH = 160

func newChart(title, legend, extra string, labels []string, values, extras []int) chart {
	c := chart{Title: title, Legend: legend, ExtraLegend: extra, Height: chartH + 80}
	for _, v := range values {
		c.Max = max(c.Max, v)
	}
	w := 28
	if len(labels) > 30 {
		w = max(6, 840/len(labels))
	}
	c.Width = max(320, len(labels)*(w+4)+40)
	for i, l := range labels {
		b := bar{Label: l, Value: values[i], Extra: extras[i], X: 30 + i*(w+4), W: w}
		if c.Max > 0 {
			b.H = values[i] * chartH / c.Max
			b.ExtraH = extras[i] * chartH / c.Max
		}
		b.Y = chartH - b.H + 10
		b.ExtraY = chartH - b.ExtraH + 10
		c.Bars = append(c.Bars, b)
	}
	return c
}

// WriteHTML writes the report as one self-contained page: inline style,
// charts as inline SVG, no script, and a Content-Security-Policy that lets
// it load nothing, so it can be mailed, archived and opened offline.
func (a *Access) WriteHTML(w io.Writer) error {
	var dl []string
	var dv, de []int
	for _, d := range a.Days {
		dl = append(dl, d.Day)
		dv = append(dv, d.Grants)
		de = append(de, d.BreakGlass)
	}
	var rl []string
	var rv, re []int
	for _, r := range a.Resources {
		rl = append(rl, r.Resource)
		rv = append(rv, r.Grants)
		re = append(re, r.BreakGlass)
	}
	var breakGlass []Grant
	for _, g := range a.Grants {
		if g.BreakGlass {
			breakGlass = append(breakGlass, g)
		}
	}
	return page.Execute(w, struct {
		*Access
		ByDay, ByResource chart
		BreakGlass        []Grant
	}{a, newChart("Grants started per day", "grants", "break-glass", dl, dv, de),
		newChart("Grants per resource", "grants", "break-glass", rl, rv, re), breakGlass})
}

// Write writes a in format.
func (a *Access) Write(w io.Writer, format string) error {
	switch format {
	case FormatJSON, "":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(a)
	case FormatCSV:
		return a.WriteCSV(w)
	case FormatHTML:
		return a.WriteHTML(w)
	}
	return fmt.Errorf("unknown report format %q (want json, csv or html)", format)
}
