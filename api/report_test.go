package api

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/report"
)

// TestClientAccessReport: the report through the typed client — refused
// to a non-auditor and for a bad period, then in each format with its
// content type, counting the approved grant.
func TestClientAccessReport(t *testing.T) {
	env := newAPIEnv(t)
	ctx := context.Background()
	admin := env.admin
	if _, err := admin.ApplyPolicy(ctx, PolicyFiles{Files: map[string]string{"team.yaml": flowPolicy}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddResource(ctx, ResourceInput{Name: "prod-db", Kind: airlock.KindPostgres, Addr: "127.0.0.1:5432",
		Credentials: map[string]CredentialInput{"read": {User: "app_ro", Password: "s3cret"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateUser(ctx, CreateUserRequest{Name: "alice", Password: "alice password 1", Groups: []string{"devs"}}); err != nil {
		t.Fatal(err)
	}
	alice := env.enroll("alice", "alice password 1")
	req, err := alice.CreateRequest(ctx, RequestInput{Resource: "prod-db", Access: "read", Duration: time.Hour, Reason: "debug INC-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Review(ctx, req.Request.ID, airlock.DecisionApprove, ReviewInput{Comment: "ok"}); err != nil {
		t.Fatal(err)
	}

	since := env.now().Add(-24 * time.Hour)
	_, err = alice.AccessReport(ctx, ReportQuery{Since: since})
	wantCode(t, "alice's report", err, airlock.EFORBIDDEN)
	_, err = admin.AccessReport(ctx, ReportQuery{Since: since, Until: since.Add(-time.Hour)})
	wantCode(t, "until before since", err, airlock.EINVALID)
	_, err = admin.AccessReport(ctx, ReportQuery{Since: since.Add(-3 * 366 * 24 * time.Hour)})
	wantCode(t, "three years", err, airlock.EINVALID)
	_, err = admin.AccessReport(ctx, ReportQuery{Since: since, Format: "pdf"})
	wantCode(t, "pdf", err, airlock.EINVALID)

	body, err := admin.AccessReport(ctx, ReportQuery{Since: since})
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Access
	err = json.NewDecoder(body).Decode(&rep)
	body.Close()
	if err != nil || rep.Summary.Grants != 1 || len(rep.Grants) != 1 || rep.Grants[0].User != "alice" || rep.Grants[0].Reason != "debug INC-1" ||
		len(rep.Grants[0].Approvals) != 1 || rep.Grants[0].Approvals[0].By != "admin" || rep.Grants[0].Rule != "devs-read" {
		t.Fatalf("report: %+v, %v", rep, err)
	}
	for format, want := range map[string]string{report.FormatCSV: `"grant_id","user",`, report.FormatHTML: "<!doctype html>"} {
		resp, err := admin.Raw(ctx, "GET", withQuery(RouteReportAccess, ReportQuery{Since: since, Format: format}.values()), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != reportTypes[format] || !strings.HasPrefix(string(b), want) ||
			resp.Header.Get("Content-Security-Policy") == "" {
			t.Fatalf("%s: %s %q", format, ct, b[:min(len(b), 80)])
		}
	}
}
