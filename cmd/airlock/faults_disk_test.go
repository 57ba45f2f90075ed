package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/sqlite"
)

// TestFaultsDiskFull runs the server on a real tmpfs data dir and, before
// each state-changing operation, fills the disk so that only leave bytes
// stay free, for leave = 0, 4 KiB, 8 KiB, … until the operation succeeds.
// Small leaves refuse the operation at its audit event; larger ones let
// the event commit and fail the change itself (the issue 13 case: a
// user.created for a user who does not exist). After each attempt the
// space is freed and `airlock audit verify` must exit 0; at the end every
// success event that no retraction names must match the store, every
// retracted change must be absent, and every row must have its event.
func TestFaultsDiskFull(t *testing.T) {
	needOathtool(t)
	// The data dir is created by the server inside the tmpfs (a mount
	// point itself cannot be renamed into place).
	disk := filepath.Join(t.TempDir(), "disk")
	testenv.Tmpfs(t, disk, 8<<20)
	dataDir := filepath.Join(disk, "data")
	clk := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	// The clock stands still: MFA stays fresh, so no step needs a code.
	// A login is counted as a guess before it is checked, so each login
	// the full disk fails still counts; with the clock still, the sixth
	// would wait forever behind the growing delay. The limit is raised
	// past the attempts the loop below can make (33 per operation).
	h := startHarness(t, dataDir, clk, func(c *serverConfig) {
		c.SweepInterval = time.Hour
		c.LockoutFailures = 100
	})
	admin, alice, bob, carol := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	h.bootstrapAdmin(admin, "admin", "admin password 1")
	h.must(admin, "alice password 1\nalice password 1\n", "admin", "users", "add", "alice", "--group", "devs", "--password-stdin")
	h.must(admin, "bob password 123\nbob password 123\n", "admin", "users", "add", "bob", "--group", "leads", "--password-stdin")
	t.Setenv("PROD_DB_READ", "s3cret-read-password")
	h.must(admin, "", "admin", "resources", "add", "prod-db", "--kind", "postgres", "--addr", "127.0.0.1:5432",
		"--credential", "read=app_ro:env:PROD_DB_READ")
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	os.WriteFile(pol, []byte(teamPolicy), 0o600)
	h.must(admin, "", "policy", "apply", "-f", pol)
	h.must(alice, "alice password 1\n", "login", "--user", "alice", "--password-stdin")
	h.enrollTOTP(alice)
	h.must(bob, "bob password 123\n", "login", "--user", "bob", "--password-stdin")
	h.enrollTOTP(bob)

	var reqID, grantID string
	request := func() error {
		out, err := h.run(alice, "", "--output", "json", "request", "prod-db", "--access", "read", "--for", "1h", "--reason", "INC-7")
		if err != nil {
			return err
		}
		var res struct {
			Request airlock.AccessRequest `json:"request"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.Request.ID == "" {
			return fmt.Errorf("request output %q: %v", out, err)
		}
		reqID = res.Request.ID
		return nil
	}
	ops := []struct {
		name string
		do   func() error
	}{
		{"user-add", func() error {
			_, err := h.run(admin, "carol password 1\ncarol password 1\n", "admin", "users", "add", "carol", "--group", "devs", "--password-stdin")
			return err
		}},
		{"user-disable", func() error { _, err := h.run(admin, "", "admin", "users", "disable", "carol"); return err }},
		{"user-enable", func() error { _, err := h.run(admin, "", "admin", "users", "enable", "carol"); return err }},
		{"resource-add", func() error {
			_, err := h.run(admin, "", "admin", "resources", "add", "db2", "--kind", "postgres", "--addr", "127.0.0.1:5433",
				"--credential", "read=app_ro:env:PROD_DB_READ")
			return err
		}},
		{"policy-apply", func() error { _, err := h.run(admin, "", "policy", "apply", "-f", pol); return err }},
		{"request", request},
		{"approve", func() error {
			if reqID == "" {
				if err := request(); err != nil {
					return err
				}
			}
			// When the review was stored but the grant failed, the same
			// approval again retries the grant.
			_, err := h.run(bob, "", "approve", reqID, "--comment", "ok")
			return err
		}},
		{"revoke", func() error {
			var grants []struct {
				ID     string `json:"id"`
				Active bool   `json:"active"`
			}
			out, err := h.run(alice, "", "--output", "json", "grants")
			if err != nil {
				return err
			}
			json.Unmarshal([]byte(out), &grants)
			for _, g := range grants {
				if g.Active {
					grantID = g.ID
				}
			}
			if grantID == "" {
				t.Fatalf("no active grant to revoke: %s", out)
			}
			_, err = h.run(alice, "", "revoke", grantID, "--reason", "done")
			return err
		}},
		{"deny", func() error {
			if reqID == "" || !strings.Contains(h.must(bob, "", "requests", "--to-review"), reqID) {
				if err := request(); err != nil {
					return err
				}
			}
			_, err := h.run(bob, "", "deny", reqID, "--comment", "no")
			return err
		}},
		{"factor-add", func() error { _, err := h.run(alice, "", "--output", "json", "mfa", "add", "totp"); return err }},
		{"recovery-codes", func() error { _, err := h.run(alice, "", "mfa", "recovery-codes"); return err }},
		// carol has no second factor yet: her login is password only.
		{"login", func() error {
			_, err := h.run(carol, "carol password 1\n", "login", "--user", "carol", "--password-stdin")
			return err
		}},
		{"resource-rm", func() error { _, err := h.run(admin, "", "admin", "resources", "rm", "db2"); return err }},
	}
	// The SQLite WAL is reused once checkpointed, so a full disk bites
	// only where it must grow. Emptying it before each attempt makes the
	// attempt's writes (its audit event, then its change) need new space,
	// so the leaves below hit both.
	raw, err := sql.Open("sqlite", filepath.Join(dataDir, "airlock.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	filler := filepath.Join(disk, "filler")
	faults, refused := 0, 0
	for _, op := range ops {
		done := false
		for leave := int64(0); leave <= 128<<10 && !done; leave += 4 << 10 {
			raw.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
			free := testenv.Fill(t, filler, leave)
			err := op.do()
			free()
			if err == nil {
				done = true
				continue
			}
			faults++
			msg := err.Error()
			if !strings.Contains(msg, "/readyz") || strings.Contains(msg, "internal error") {
				t.Fatalf("%s with %d bytes free: %v\nwant a store-unavailable message", op.name, leave, err)
			}
			if !strings.Contains(msg, "action refused") {
				refused++ // the event was written, the change failed: a retraction follows
			}
			if out, err := h.run(admin, "", "audit", "verify"); err != nil {
				t.Fatalf("audit verify after %s with %d bytes free: %v\n%s", op.name, leave, err, out)
			}
		}
		if !done {
			t.Fatalf("%s never succeeded with up to 128 KiB free", op.name)
		}
	}
	t.Logf("%d faults, %d of them after the event was written", faults, refused)
	if faults == 0 || refused == 0 {
		t.Fatalf("%d faults, %d after the event: the disk never filled where it matters", faults, refused)
	}

	// Readiness recovers by itself once the disk is freed: fill it, let
	// an action fail so /readyz turns 503, free it, then send nothing but
	// GET /readyz (a load balancer sends an unready replica no traffic).
	raw.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	free := testenv.Fill(t, filler, 0)
	h.run(admin, "", "admin", "users", "add", "dave", "--group", "devs", "--password-stdin")
	code, body := readyz(t, h.url)
	if code != http.StatusServiceUnavailable {
		free()
		t.Fatalf("/readyz with a full disk after a failed write = %d %q, want 503", code, body)
	}
	free()
	freed := time.Now()
	if !testenv.PollEvery(100*time.Millisecond, 15*time.Second, func() bool { code, _ = readyz(t, h.url); return code == http.StatusOK }) {
		t.Fatalf("/readyz still %d 15s after the disk was freed, with no other traffic", code)
	}
	t.Logf("/readyz 200 again %v after the disk was freed (bound: 5s)", time.Since(freed).Round(10*time.Millisecond))
	h.stop()
	checkTruthful(t, filepath.Join(dataDir, "airlock.db"))
}

// checkTruthful reads the store and its audit log: no success event that
// is not retracted claims a change the store does not hold, no retracted
// change is there, and no row is missing its event.
func checkTruthful(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	evs, err := db.ListEvents(ctx, airlock.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	type det struct {
		User        string `json:"user"`
		UserID      string `json:"user_id"`
		RetractsSeq int64  `json:"retracts_seq"`
		Kind        string `json:"kind"`
	}
	d := func(e airlock.Event) det {
		var x det
		json.Unmarshal(e.Details, &x)
		return x
	}
	retracted := map[int64]bool{}
	retractions := 0
	for _, e := range evs {
		if s := d(e).RetractsSeq; s > 0 && e.Outcome == airlock.OutcomeFailure {
			retracted[s] = true
			retractions++
		}
	}
	t.Logf("%d events, %d retractions", len(evs), retractions)
	users, grants, requests, reviews := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	disabled := map[string]bool{}
	resources := map[string]bool{}
	policies, totp := 0, map[string]int{}
	for _, e := range evs {
		if e.Outcome != airlock.OutcomeSuccess {
			continue
		}
		ok := !retracted[e.Seq]
		x := d(e)
		switch e.Action {
		case "user.created", "user.bootstrap":
			if _, err := db.UserByID(ctx, x.UserID); (err == nil) != ok {
				t.Errorf("seq %d %s %s (retracted %v): user in store: %v", e.Seq, e.Action, x.User, !ok, err)
			}
			users[x.UserID] = users[x.UserID] || ok
		case "user.disabled", "user.enabled":
			if ok {
				disabled[x.UserID] = e.Action == "user.disabled"
			}
		case "request.created":
			if _, err := db.RequestByID(ctx, e.RequestID); (err == nil) != ok {
				t.Errorf("seq %d request.created %s (retracted %v): in store: %v", e.Seq, e.RequestID, !ok, err)
			}
			requests[e.RequestID] = requests[e.RequestID] || ok
		case "grant.activated", "breakglass.activated":
			if _, err := db.GrantByID(ctx, e.GrantID); (err == nil) != ok {
				t.Errorf("seq %d %s %s (retracted %v): in store: %v", e.Seq, e.Action, e.GrantID, !ok, err)
			}
			grants[e.GrantID] = grants[e.GrantID] || ok
		case "grant.revoked":
			if g, err := db.GrantByID(ctx, e.GrantID); ok && (err != nil || g.State != airlock.GrantRevoked) {
				t.Errorf("seq %d grant.revoked %s: grant %+v %v", e.Seq, e.GrantID, g, err)
			}
		case "request.reviewed":
			if ok {
				reviews[e.RequestID+"/"+e.Actor.ID] = true
			}
		case "request.denied":
			if r, err := db.RequestByID(ctx, e.RequestID); ok && (err != nil || r.State != airlock.RequestDenied) {
				t.Errorf("seq %d request.denied %s: request %+v %v", e.Seq, e.RequestID, r, err)
			}
		case "resource.added":
			if ok {
				resources[e.Resource] = true
			}
		case "resource.removed":
			if ok {
				resources[e.Resource] = false
			}
		case "policy.applied":
			if ok {
				policies++
			}
		case "mfa.enrolled":
			if ok && x.Kind == airlock.FactorTOTP {
				totp[e.Actor.ID]++
			}
		}
	}
	us, _ := db.ListUsers(ctx)
	for _, u := range us {
		if !users[u.ID] {
			t.Errorf("user %s (%s) has no unretracted user.created", u.Name, u.ID)
		}
		if u.Disabled != disabled[u.ID] {
			t.Errorf("user %s disabled=%v, the log says %v", u.Name, u.Disabled, disabled[u.ID])
		}
		fs, _ := db.ListFactors(ctx, u.ID)
		n := 0
		for _, f := range fs {
			if f.Kind == airlock.FactorTOTP {
				n++
			}
		}
		if n != totp[u.ID] {
			t.Errorf("user %s has %d TOTP factors, the log enrolled %d", u.Name, n, totp[u.ID])
		}
	}
	rs, _ := db.ListRequests(ctx, airlock.RequestFilter{})
	for _, r := range rs {
		if !requests[r.ID] {
			t.Errorf("request %s has no unretracted request.created", r.ID)
		}
		rvs, _ := db.ListReviews(ctx, r.ID)
		for _, rv := range rvs {
			if !reviews[r.ID+"/"+rv.ReviewerID] {
				t.Errorf("review of %s by %s has no unretracted request.reviewed", r.ID, rv.ReviewerName)
			}
		}
	}
	gs, _ := db.ListGrants(ctx, airlock.GrantFilter{})
	for _, g := range gs {
		if !grants[g.ID] {
			t.Errorf("grant %s has no unretracted grant.activated", g.ID)
		}
	}
	res, _ := db.ListResources(ctx)
	have := map[string]bool{}
	for _, r := range res {
		have[r.Name] = true
	}
	for name, want := range resources {
		if have[name] != want {
			t.Errorf("resource %s in store %v, the log says %v", name, have[name], want)
		}
	}
	if pv, err := db.CurrentPolicy(ctx); err != nil || pv.Version != int64(policies) {
		t.Errorf("policy version %v (%v), the log applied %d", pv, err, policies)
	}
}

// readyz returns GET /readyz's status code and body.
func readyz(t *testing.T, base string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
