package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

var t0 = time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)

func fixture() Input {
	h := time.Hour
	return Input{
		Since: t0, Until: t0.Add(90 * 24 * h), Now: t0.Add(90 * 24 * h), PolicyVersion: 7,
		Requests: []*airlock.AccessRequest{
			{ID: "req1", UserName: "alice", Resource: "prod-db", Access: "read", Reason: "INC-42", Ticket: "OPS-1", State: airlock.RequestApproved,
				Rule: "devs-read", PolicyVersion: 6, GrantID: "gr1", CreatedAt: t0.Add(h)},
			{ID: "req2", UserName: "carol", Resource: "prod-db", Access: "write", Reason: "=HYPERLINK(\"http://x\")", State: airlock.RequestDenied, CreatedAt: t0.Add(2 * h)},
			{ID: "req0", UserName: "alice", Resource: "prod-db", Access: "read", Reason: "before the window", State: airlock.RequestDenied, CreatedAt: t0.Add(-h)},
		},
		Reviews: map[string][]*airlock.Review{
			"req1": {{RequestID: "req1", ReviewerName: "bob", Decision: airlock.DecisionApprove, MFAMethod: "totp", CreatedAt: t0.Add(h + time.Minute)}},
			"req2": {{RequestID: "req2", ReviewerName: "bob", Decision: airlock.DecisionDeny, MFAMethod: "webauthn", CreatedAt: t0.Add(3 * h)}},
		},
		Grants: []*airlock.Grant{
			{ID: "gr1", RequestID: "req1", UserName: "alice", Resource: "prod-db", Access: "read", StartsAt: t0.Add(h), EndsAt: t0.Add(2 * h), State: airlock.GrantActive},
			{ID: "gr2", UserName: "alice", Resource: "prod-db", Access: "write", StartsAt: t0.Add(48 * h), EndsAt: t0.Add(49 * h), State: airlock.GrantRevoked,
				BreakGlass: true, RevokedBy: "bob", RevokedAt: t0.Add(48*h + 10*time.Minute), RevokeReason: "done"},
			{ID: "gr3", UserName: "dave", Resource: "web-admin", Access: "admin", StartsAt: t0.Add(49 * h), EndsAt: t0.Add(50 * h), State: airlock.GrantExpired,
				BreakGlass: true, AckedBy: "bob", AckedAt: t0.Add(50 * h)},
			// Ended before the window: not in the report.
			{ID: "gr0", UserName: "alice", Resource: "prod-db", Access: "read", StartsAt: t0.Add(-3 * h), EndsAt: t0.Add(-2 * h), State: airlock.GrantExpired},
			// Revoked before the window although its end was inside it.
			{ID: "grR", UserName: "alice", Resource: "prod-db", Access: "read", StartsAt: t0.Add(-3 * h), EndsAt: t0.Add(h), State: airlock.GrantRevoked, RevokedAt: t0.Add(-2 * h)},
		},
		Sessions: []*airlock.Session{
			{ID: "s1", GrantID: "gr1", Statements: 10, BytesIn: 100, BytesOut: 1000},
			{ID: "s2", GrantID: "gr1", Statements: 5},
			{ID: "s3", GrantID: "gr2", Statements: 1},
			{ID: "s0", GrantID: "gr0", Statements: 99},
		},
		Eligible: []Eligibility{
			{User: "alice", Resource: "prod-db", Access: "read", Rule: "devs-read"},
			{User: "alice", Resource: "prod-db", Access: "write", Rule: "devs-bg", BreakGlass: true},
			{User: "carol", Resource: "prod-db", Access: "read", Rule: "devs-read"},
		},
	}
}

func TestBuild(t *testing.T) {
	a := Build(fixture())
	want := Summary{Requests: 2, Grants: 3, Users: 2, Resources: 2, Sessions: 3, Statements: 16, BreakGlass: 2, BreakGlassUnacked: 1,
		Revoked: 1, Denied: 1, Eligible: 3, Unused: 1}
	if a.Summary != want {
		t.Fatalf("summary = %+v\nwant      %+v", a.Summary, want)
	}
	var ids []string
	for _, g := range a.Grants {
		ids = append(ids, g.ID)
	}
	if strings.Join(ids, ",") != "gr1,gr2,gr3" {
		t.Fatalf("grants %v", ids)
	}
	g1 := a.Grants[0]
	if g1.State != airlock.GrantExpired || g1.Reason != "INC-42" || g1.Ticket != "OPS-1" || g1.Rule != "devs-read" || g1.PolicyVersion != 6 ||
		len(g1.Approvals) != 1 || g1.Approvals[0].By != "bob" || g1.Approvals[0].MFAMethod != "totp" ||
		g1.Sessions != 2 || g1.Statements != 15 || g1.BytesIn != 100 || g1.BytesOut != 1000 {
		t.Fatalf("gr1 row %+v", g1)
	}
	if len(a.Requests) != 1 || a.Requests[0].ID != "req2" || len(a.Requests[0].DeniedBy) != 1 || a.Requests[0].DeniedBy[0] != "bob" {
		t.Fatalf("requests %+v", a.Requests)
	}
	if len(a.Unused) != 1 || a.Unused[0].User != "carol" {
		t.Fatalf("unused %+v", a.Unused)
	}
	if len(a.Days) != 2 || a.Days[0].Day != "2026-09-01" || a.Days[1].Day != "2026-09-03" || a.Days[1].Grants != 2 || a.Days[1].BreakGlass != 2 {
		t.Fatalf("days %+v", a.Days)
	}
	if len(a.Resources) != 2 || a.Resources[0].Resource != "prod-db" || a.Resources[0].Grants != 2 || a.Resources[0].Statements != 16 {
		t.Fatalf("resources %+v", a.Resources)
	}
}

func TestBuildEmpty(t *testing.T) {
	a := Build(Input{Since: t0, Until: t0.Add(time.Hour), Now: t0})
	var buf bytes.Buffer
	for _, f := range Formats {
		buf.Reset()
		if err := a.Write(&buf, f); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	// Empty lists are [] in JSON, never null.
	buf.Reset()
	_ = a.Write(&buf, FormatJSON)
	if strings.Contains(buf.String(), "null") {
		t.Fatalf("null in empty report: %s", buf.String())
	}
	if err := a.Write(&buf, "pdf"); err == nil {
		t.Fatal("unknown format accepted")
	}
}

func TestWriteCSV(t *testing.T) {
	in := fixture()
	in.Requests[0].Reason = "+cmd|' /C calc'!A0"
	var buf bytes.Buffer
	if err := Build(in).WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || strings.Join(recs[0], ",") != strings.Join(csvHeader, ",") {
		t.Fatalf("csv %v", recs)
	}
	row := map[string]string{}
	for i, h := range recs[0] {
		row[h] = recs[1][i]
	}
	if row["grant_id"] != "gr1" || row["approved_by"] != "bob (totp)" || row["statements"] != "15" || row["starts_at"] != "2026-09-01T01:00:00Z" {
		t.Fatalf("row %v", row)
	}
	// A reason that a spreadsheet would run as a formula is defused.
	if row["reason"] != "'+cmd|' /C calc'!A0" {
		t.Fatalf("formula not defused: %q", row["reason"])
	}
}

func TestWriteHTML(t *testing.T) {
	in := fixture()
	in.Requests[0].Reason = `<script>alert(1)</script><img src=http://evil/x>`
	var buf bytes.Buffer
	if err := Build(in).WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if strings.Contains(page, "<script") || strings.Contains(page, "<img") {
		t.Fatal("requester's text not escaped")
	}
	// The page loads nothing: no src or href attributes at all, and a CSP
	// that forbids it anyway.
	if m := regexp.MustCompile(`(?i)<[^>]*\s(src|href)=`).FindString(page); m != "" {
		t.Fatalf("page references something: %q", m)
	}
	if !strings.Contains(page, `default-src 'none'`) {
		t.Fatal("no CSP")
	}
	for _, want := range []string{`id="n-grants">3<`, `id="n-breakglass">2<`, `id="n-unused">1<`, "<svg", "bob (totp)", "not acknowledged", "SOC 2 CC6.1", "PCI DSS 8.4.2"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestJSONShape(t *testing.T) {
	var buf bytes.Buffer
	if err := Build(fixture()).Write(&buf, FormatJSON); err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"since", "until", "generated_at", "policy_version", "summary", "grants", "requests_not_granted", "unused_eligibility", "by_resource", "by_day"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no key %q", k)
		}
	}
}
