package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/api"
)

// as returns a copy of e signed in as user, enrolled with TOTP through the
// console's own forms (so the user may reach every page).
func (e *consoleEnv) as(t *testing.T, user, password string) *consoleEnv {
	t.Helper()
	u := *e
	u.token = ""
	rec := u.do(t, "POST", "/signin", url.Values{"user": {user}, "password": {password}})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("sign-in as %s: %d %s", user, rec.Code, rec.Body.String())
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == api.SessionCookie {
			u.token = c.Value
		}
	}
	body := u.do(t, "POST", "/factors/totp", url.Values{"name": {"phone"}}).Body.String()
	i := strings.Index(body, "otpauth://")
	uri, _ := url.Parse(strings.ReplaceAll(body[i:i+strings.Index(body[i:], "<")], "&amp;", "&"))
	fid := body[strings.Index(body, "/factors/totp/")+len("/factors/totp/"):]
	fid = fid[:strings.Index(fid, "/")]
	code, _ := totp.GenerateCode(uri.Query().Get("secret"), time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	if rec := u.do(t, "POST", "/factors/totp/"+fid+"/confirm", url.Values{"otp": {code}}); rec.Code != http.StatusSeeOther {
		t.Fatalf("confirm TOTP of %s: %d %s", user, rec.Code, rec.Body.String())
	}
	return &u
}

func TestAdminPagesRefuseNonAdmins(t *testing.T) {
	env := newConsoleEnv(t)
	if rec := env.do(t, "POST", "/admin/users", url.Values{"name": {"carol"}, "password": {"carol password 1"}, "groups": {"devs"}}); rec.Code != http.StatusSeeOther {
		t.Fatalf("add carol: %d %s", rec.Code, rec.Body.String())
	}
	carol := env.as(t, "carol", "carol password 1")
	if rec := carol.do(t, "GET", "/", nil); rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), `href="/admin/users"`) {
		t.Fatalf("non-admin home: %d, admin link shown: %v", rec.Code, strings.Contains(rec.Body.String(), "/admin/users"))
	}
	if rec := env.do(t, "GET", "/", nil); !strings.Contains(rec.Body.String(), `href="/admin/users"`) {
		t.Fatal("the admin does not see the admin link")
	}
	for _, tc := range []struct {
		method, path string
		form         url.Values
	}{
		{"GET", "/admin", nil}, {"GET", "/admin/users", nil}, {"GET", "/admin/resources", nil}, {"GET", "/admin/policy", nil},
		{"POST", "/admin/users", url.Values{"name": {"mallory"}, "password": {"mallory password"}, "groups": {"admins"}}},
		{"POST", "/admin/users/admin/disable", url.Values{}},
		{"POST", "/admin/resources", url.Values{"name": {"x"}, "kind": {"postgres"}, "addr": {"h:1"}}},
		{"POST", "/admin/policy", url.Values{"action": {"apply"}, "policy": {"version: 1\n"}}},
	} {
		rec := carol.do(t, tc.method, tc.path, tc.form)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "admins group") {
			t.Errorf("%s %s as a non-admin: %d", tc.method, tc.path, rec.Code)
		}
	}
	if _, err := env.store.UserByName(context.Background(), "mallory"); !airlock.IsCode(err, airlock.ENOTFOUND) {
		t.Fatalf("a non-admin created a user: %v", err)
	}
	// Signed out: the admin pages redirect to sign-in.
	out := *env
	out.token = ""
	if rec := out.do(t, "GET", "/admin/policy", nil); rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), "/signin?next=") {
		t.Fatalf("signed out: %d %s", rec.Code, rec.Header().Get("Location"))
	}
}

func TestAdminUsers(t *testing.T) {
	env := newConsoleEnv(t)
	ctx := context.Background()
	rec := env.do(t, "POST", "/admin/users", url.Values{"name": {"alice"}, "password": {"alice password 1"}, "groups": {"devs, oncall"}})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/admin/users?done=user-added" {
		t.Fatalf("add alice: %d %s", rec.Code, rec.Body.String())
	}
	u, err := env.store.UserByName(ctx, "alice")
	if err != nil || strings.Join(u.Groups, ",") != "devs,oncall" {
		t.Fatalf("alice: %+v %v", u, err)
	}
	rec = env.do(t, "GET", "/admin/users?done=user-added", nil)
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, "User added.") || !strings.Contains(body, `data-user="alice"`) ||
		!strings.Contains(body, "<td>devs</td><td>alice</td>") || strings.Contains(body, "alice password 1") || strings.Contains(body, u.PasswordHash) {
		t.Fatalf("users page: %d\n%s", rec.Code, body)
	}
	// A bad name is refused with the form kept (never the password).
	rec = env.do(t, "POST", "/admin/users", url.Values{"name": {"Bad Name"}, "password": {"another password 1"}, "groups": {"devs"}})
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "invalid user name") || strings.Contains(rec.Body.String(), "another password 1") {
		t.Fatalf("bad name: %d\n%s", rec.Code, rec.Body.String())
	}
	// Disable and enable.
	if rec := env.do(t, "POST", "/admin/users/alice/disable", url.Values{}); rec.Code != http.StatusSeeOther {
		t.Fatalf("disable: %d %s", rec.Code, rec.Body.String())
	}
	if u, _ := env.store.UserByName(ctx, "alice"); !u.Disabled {
		t.Fatal("alice not disabled")
	}
	if rec := env.do(t, "POST", "/admin/users/alice/enable", url.Values{}); rec.Code != http.StatusSeeOther {
		t.Fatalf("enable: %d %s", rec.Code, rec.Body.String())
	}
	if u, _ := env.store.UserByName(ctx, "alice"); u.Disabled {
		t.Fatal("alice still disabled")
	}
	if rec := env.do(t, "POST", "/admin/users/admin/disable", url.Values{}); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "cannot disable yourself") {
		t.Fatalf("self-disable: %d", rec.Code)
	}
	// A wrong step-up code is refused and nothing changes.
	if rec := env.do(t, "POST", "/admin/users/alice/disable", url.Values{"otp": {"000000"}}); rec.Code == http.StatusSeeOther {
		t.Fatalf("wrong code accepted: %d", rec.Code)
	}
	if u, _ := env.store.UserByName(ctx, "alice"); u.Disabled {
		t.Fatal("disabled despite a wrong code")
	}
}

func TestAdminResources(t *testing.T) {
	env := newConsoleEnv(t)
	ctx := context.Background()
	const pw = "sup3r-s3cret-brokered-pw"
	var bodies []string
	rec := env.do(t, "POST", "/admin/resources", url.Values{"name": {"prod-db"}, "kind": {"postgres"}, "addr": {"127.0.0.1:5544"},
		"database": {"app"}, "labels": {"env=prod, team=payments"},
		"cred_level": {"read", "", ""}, "cred_user": {"app_ro", "", ""}, "cred_password": {pw, "", ""}})
	bodies = append(bodies, rec.Body.String())
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/admin/resources?done=resource-added" {
		t.Fatalf("add prod-db: %d %s", rec.Code, rec.Body.String())
	}
	r, err := env.store.ResourceByName(ctx, "prod-db")
	if err != nil || r.Kind != airlock.KindPostgres || r.Labels["team"] != "payments" || len(r.Credentials["read"]) == 0 {
		t.Fatalf("prod-db: %+v %v", r, err)
	}
	if strings.Contains(string(r.Credentials["read"]), pw) {
		t.Fatal("credential stored in the clear")
	}
	rec = env.do(t, "GET", "/admin/resources?done=resource-added", nil)
	bodies = append(bodies, rec.Body.String())
	if !strings.Contains(rec.Body.String(), `data-resource="prod-db"`) || !strings.Contains(rec.Body.String(), "<code>env=prod</code>") {
		t.Fatalf("resources page:\n%s", rec.Body.String())
	}
	// A duplicate comes back with the form but without the password.
	rec = env.do(t, "POST", "/admin/resources", url.Values{"name": {"prod-db"}, "kind": {"postgres"}, "addr": {"127.0.0.1:5544"},
		"cred_level": {"read"}, "cred_user": {"app_ro"}, "cred_password": {pw}})
	bodies = append(bodies, rec.Body.String())
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "already exists") || !strings.Contains(rec.Body.String(), `value="app_ro"`) {
		t.Fatalf("duplicate: %d\n%s", rec.Code, rec.Body.String())
	}
	// A credential without a user.
	rec = env.do(t, "POST", "/admin/resources", url.Values{"name": {"other-db"}, "kind": {"postgres"}, "addr": {"h:5432"},
		"cred_level": {"read"}, "cred_user": {""}, "cred_password": {pw}})
	bodies = append(bodies, rec.Body.String())
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("credential without a user: %d", rec.Code)
	}
	// TLS to the database: a mode that is not libpq's verify modes is
	// refused with the form back; verify-full is stored.
	rec = env.do(t, "POST", "/admin/resources", url.Values{"name": {"tls-db"}, "kind": {"postgres"}, "addr": {"db.internal:5432"},
		"sslmode": {"prefer"}, "cred_level": {"read"}, "cred_user": {"app_ro"}, "cred_password": {pw}})
	bodies = append(bodies, rec.Body.String())
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "unknown upstream sslmode") {
		t.Fatalf("sslmode prefer: %d\n%s", rec.Code, rec.Body.String())
	}
	rec = env.do(t, "POST", "/admin/resources", url.Values{"name": {"tls-db"}, "kind": {"postgres"}, "addr": {"db.internal:5432"},
		"sslmode": {"verify-full"}, "cred_level": {"read"}, "cred_user": {"app_ro"}, "cred_password": {pw}})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("add tls-db: %d %s", rec.Code, rec.Body.String())
	}
	if r, err := env.store.ResourceByName(ctx, "tls-db"); err != nil || access.Options(r).TLS != "verify-full" {
		t.Fatalf("tls-db: %+v %v", r, err)
	}
	// An ssh resource with logins and a pinned host key.
	hostKey := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	rec = env.do(t, "POST", "/admin/resources", url.Values{"name": {"web-1"}, "kind": {"ssh"}, "addr": {"10.0.0.5:22"},
		"logins": {"deploy, root"}, "host_key": {hostKey}, "sslmode": {"disable"}, "sslrootcert": {""}}) // as a browser sends the form
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("add web-1: %d %s", rec.Code, rec.Body.String())
	}
	if r, err := env.store.ResourceByName(ctx, "web-1"); err != nil || len(r.AccessLevels()) != 2 || !strings.Contains(string(r.Options), "ssh-ed25519") {
		t.Fatalf("web-1: %+v %v", r, err)
	}
	// Remove.
	rec = env.do(t, "POST", "/admin/resources/web-1/remove", url.Values{})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/admin/resources?done=resource-removed" {
		t.Fatalf("remove: %d %s", rec.Code, rec.Body.String())
	}
	if _, err := env.store.ResourceByName(ctx, "web-1"); !airlock.IsCode(err, airlock.ENOTFOUND) {
		t.Fatalf("web-1 still there: %v", err)
	}
	if rec := env.do(t, "POST", "/admin/resources/nope/remove", url.Values{}); rec.Code != http.StatusNotFound {
		t.Fatalf("remove unknown: %d", rec.Code)
	}
	rec = env.do(t, "GET", "/admin/resources", nil)
	bodies = append(bodies, rec.Body.String())
	for _, path := range []string{"/admin/policy", "/admin/users", "/"} {
		bodies = append(bodies, env.do(t, "GET", path, nil).Body.String())
	}
	for i, b := range bodies {
		if strings.Contains(b, pw) {
			t.Fatalf("response %d contains the brokered password:\n%s", i, b)
		}
	}
	// The audit trail records the add without the secret.
	evs, _ := env.store.ListEvents(ctx, airlock.EventFilter{Action: "resource.added"})
	if len(evs) != 3 || strings.Contains(string(evs[0].Details), pw) {
		t.Fatalf("resource.added events: %d", len(evs))
	}
}

const goodPolicy = `version: 1
rules:
  - name: devs-read
    who: {groups: [devs]}
    resources: {names: [prod-db]}
    access: [read]
    max_duration: 2h
    approval: {required: 1, groups: [leads]}
`

func TestAdminPolicy(t *testing.T) {
	env := newConsoleEnv(t)
	rec := env.do(t, "GET", "/admin/policy", nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "No policy applied yet") {
		t.Fatalf("policy page: %d\n%s", rec.Code, rec.Body.String())
	}
	// Check shows the diff and applies nothing.
	rec = env.do(t, "POST", "/admin/policy", url.Values{"action": {"check"}, "file": {"team.yaml"}, "policy": {goodPolicy}})
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, "Check: valid") || !strings.Contains(body, "devs-read") || !strings.Contains(body, `id="policy-diff"`) ||
		!strings.Contains(body, "No policy applied yet") {
		t.Fatalf("check: %d\n%s", rec.Code, body)
	}
	// Apply.
	rec = env.do(t, "POST", "/admin/policy", url.Values{"action": {"apply"}, "file": {"team.yaml"}, "policy": {goodPolicy}})
	body = rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, "Policy applied.") || !strings.Contains(body, "applied as version 1") ||
		!strings.Contains(body, "Version 1, applied by admin") || !strings.Contains(body, "<h3>team.yaml</h3>") {
		t.Fatalf("apply: %d\n%s", rec.Code, body)
	}
	// A broken policy: the diagnostic names file and line, nothing changes.
	bad := "version: 1\nrules:\n  - name: x\n    who: {groups: [devs]\n"
	rec = env.do(t, "POST", "/admin/policy", url.Values{"action": {"apply"}, "file": {"team.yaml"}, "policy": {bad}})
	body = rec.Body.String()
	if rec.Code != http.StatusBadRequest || !strings.Contains(body, "nothing was applied") || !strings.Contains(body, "<li>team.yaml:") ||
		!strings.Contains(body, "Version 1, applied by admin") {
		t.Fatalf("bad apply: %d\n%s", rec.Code, body)
	}
	i := strings.Index(body, "<li>team.yaml:")
	if line := strings.SplitN(body[i+len("<li>team.yaml:"):], ":", 2)[0]; line == "0" || strings.Trim(line, "0123456789") != "" {
		t.Fatalf("diagnostic without a line number: %s", body[i:i+80])
	}
	// The textarea keeps what was submitted so it can be fixed.
	if !strings.Contains(body, "who: {groups: [devs]\n</textarea>") {
		t.Fatalf("submitted text lost:\n%s", body)
	}
	// A rule error (valid YAML) also carries file:line.
	rec = env.do(t, "POST", "/admin/policy", url.Values{"action": {"check"}, "file": {"team.yaml"}, "policy": {strings.Replace(goodPolicy, "max_duration: 2h", "max_duration: soon", 1)}})
	if !strings.Contains(rec.Body.String(), "<li>team.yaml:7:") {
		t.Fatalf("rule error:\n%s", rec.Body.String())
	}
	pv, err := env.store.CurrentPolicy(context.Background())
	if err != nil || pv.Version != 1 || !strings.Contains(string(pv.Document), "devs-read") {
		t.Fatalf("the old policy is not in force: %v %+v", err, pv)
	}
}
