package main

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/report"
)

// TestE2EAccessReport: a request approved with TOTP and an unacknowledged
// break-glass, then `airlock report access` as an auditor in each format —
// the numbers, the approver and factor, the break-glass flag, eligibility
// never used — refused to a non-auditor, audited, and the HTML page opened
// in real Chromium, where it renders its summary and charts with nothing
// loaded from anywhere.
func TestE2EAccessReport(t *testing.T) {
	needOathtool(t)
	clk := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, filepath.Join(t.TempDir(), "data"), clk, nil)
	tm := setupTeam(t, h, teamPolicy)
	admin, alice, bob, carol := tm.admin, tm.alice, tm.bob, t.TempDir()
	aliceSecret, bobSecret := tm.aliceSecret, tm.bobSecret
	h.must(admin, "dave password 12\ndave password 12\n", "admin", "users", "add", "dave", "--group", "devs", "--password-stdin")
	h.must(admin, "carol password 1\ncarol password 1\n", "admin", "users", "add", "carol", "--group", airlock.GroupAuditors, "--password-stdin")
	t.Setenv("PROD_DB_READ", "s3cret-read-password")
	t.Setenv("PROD_DB_WRITE", "s3cret-write-password")
	h.must(admin, "", "admin", "resources", "add", "prod-db", "--kind", "postgres", "--addr", "127.0.0.1:5432",
		"--credential", "read=app_ro:env:PROD_DB_READ", "--credential", "write=app_rw:env:PROD_DB_WRITE")
	h.must(carol, "carol password 1\n", "login", "--user", "carol", "--password-stdin")
	h.enrollTOTP(carol)

	// A formula in the reason: the CSV must not let a spreadsheet run it.
	// (A break-glass is a request too: two requests, two grants.)
	out := h.must(alice, "", "--output", "json", "request", "prod-db", "--access", "read", "--for", "1h", "--reason", "=HYPERLINK(\"http://evil\") INC-42")
	var res struct {
		Request airlock.AccessRequest `json:"request"`
	}
	json.Unmarshal([]byte(out), &res)
	h.step()
	h.must(bob, "", "approve", res.Request.ID, "--comment", "ok", "--otp", totp(t, bobSecret, clk.Now()))
	h.step()
	h.must(alice, "", "mfa", "verify", "--otp", totp(t, aliceSecret, clk.Now()))
	h.must(alice, "", "break-glass", "prod-db", "--access", "write", "--for", "20m", "--reason", "prod down")

	// Only admins and auditors may make it.
	if _, err := h.run(alice, "", "report", "access"); err == nil || !strings.Contains(err.Error(), airlock.GroupAuditors) {
		t.Fatalf("alice's report: %v", err)
	}
	if _, err := h.run(carol, "", "report", "access", "--since", "yesterday"); err == nil || !strings.Contains(err.Error(), "90d") {
		t.Fatalf("bad --since: %v", err)
	}

	var rep report.Access
	if err := json.Unmarshal([]byte(h.must(carol, "", "report", "access", "--since", "30d")), &rep); err != nil {
		t.Fatal(err)
	}
	s := rep.Summary
	if s.Grants != 2 || s.Requests != 2 || s.BreakGlass != 1 || s.BreakGlassUnacked != 1 || s.Users != 1 || s.Resources != 1 {
		t.Fatalf("summary %+v", s)
	}
	var normal, bg *report.Grant
	for i := range rep.Grants {
		if rep.Grants[i].BreakGlass {
			bg = &rep.Grants[i]
		} else {
			normal = &rep.Grants[i]
		}
	}
	if normal == nil || bg == nil || normal.User != "alice" || normal.Rule != "devs-read-prod" || len(normal.Approvals) != 1 ||
		normal.Approvals[0].By != "bob" || normal.Approvals[0].MFAMethod != "totp" || bg.AckedBy != "" || bg.Reason != "prod down" {
		t.Fatalf("grants %+v", rep.Grants)
	}
	// dave may request read (and break-glass write) and never did.
	var daveUnused int
	for _, u := range rep.Unused {
		if u.User == "alice" {
			t.Fatalf("alice's used eligibility listed as unused: %+v", u)
		}
		if u.User == "dave" {
			daveUnused++
		}
	}
	if daveUnused != 2 {
		t.Fatalf("unused %+v", rep.Unused)
	}

	recs, err := csv.NewReader(strings.NewReader(h.must(carol, "", "report", "access", "--format", "csv"))).ReadAll()
	if err != nil || len(recs) != 3 || recs[0][0] != "grant_id" {
		t.Fatalf("csv %v %v", recs, err)
	}
	for _, rec := range recs[1:] {
		for _, v := range rec {
			if strings.HasPrefix(v, "=") {
				t.Fatalf("csv cell a spreadsheet would run: %q", v)
			}
		}
	}

	page := filepath.Join(t.TempDir(), "report.html")
	h.must(carol, "", "report", "access", "--format", "html", "-o", page)
	if fi, err := os.Stat(page); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("report file: %v %v", fi, err)
	}

	// Making a report is audited.
	h.step()
	h.must(admin, "", "mfa", "verify", "--otp", totp(t, h.adminSecret(), clk.Now()))
	if out := h.must(admin, "", "audit", "tail", "--action", "report.access"); strings.Count(out, "report.access") != 3 || !strings.Contains(out, "carol") {
		t.Fatalf("report.access events: %s", out)
	}

	// The page in a real browser: it renders the summary and two charts,
	// and loads nothing (no request other than the file itself).
	tab := h.newTab(testenv.Chromium(t))
	tab.base = ""
	tab.open("file://" + page)
	if got := tab.text("#n-grants"); got != "2" {
		t.Fatalf("rendered grants %q", got)
	}
	if got := tab.text("#n-breakglass"); got != "1" {
		t.Fatalf("rendered break-glass %q", got)
	}
	if n := tab.eval(`String(document.querySelectorAll("svg rect").length)`); n == "0" {
		t.Fatal("no chart bars rendered")
	}
	if n := tab.eval(`String(performance.getEntriesByType("resource").length)`); n != "0" {
		t.Fatalf("the page loaded %s resources", n)
	}
	if body := tab.text("body"); !strings.Contains(body, "bob (totp)") || !strings.Contains(body, "not acknowledged") {
		t.Fatalf("page text: %s", body)
	}
	tab.shot("report-access")
}
