package web

import (
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/identity"
)

// The admin pages: users and groups, resources, policy. Only members of
// the admins group see them (the services refuse everyone else too), and
// every change needs a fresh second factor: a code in the form itself, or
// the step-up block on the page first.

// adminOnly wraps h: non-admins get 403.
func (c *console) adminOnly(h handler) http.HandlerFunc {
	return c.signedIn(func(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
		if !p.User.IsAdmin() {
			c.renderStatus(w, r, http.StatusForbidden, "The admin pages need the "+airlock.GroupAdmins+" group.")
			return
		}
		h(w, r, p)
	})
}

// adminStepUp verifies the form's optional code (fresh MFA for the action
// that follows); without one the service decides whether MFA is fresh.
func (c *console) adminStepUp(r *http.Request, p *identity.Principal) error {
	return c.cfg.Identity.VerifyStepUp(r.Context(), p, identity.StepUp{OTP: strings.TrimSpace(r.FormValue("otp"))})
}

// adminFresh is how long p's second factor stays fresh for admin actions.
func (c *console) adminFresh(p *identity.Principal) int64 {
	if p.Session.MFAAt.IsZero() {
		return 0
	}
	return max(0, int64((c.cfg.Identity.Freshness(identity.ActionAdmin) - c.cfg.Now().Sub(p.Session.MFAAt)).Seconds()))
}

// splitList splits a comma- or newline-separated field, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// ---- users and groups ----

type adminUsersData struct {
	Users    []*airlock.User
	Groups   []groupRow
	Form     userForm
	StepUp   stepUp
	FreshFor int64
}

type groupRow struct {
	Name    string
	Members []string
}

// userForm is the add-user form as submitted, without the password.
type userForm struct {
	Name, Groups string
}

func (c *console) adminUsersPage(w http.ResponseWriter, r *http.Request, p *identity.Principal, status int, form userForm, errMsg string) {
	ctx := r.Context()
	d := adminUsersData{Form: form, StepUp: stepUp{Next: "/admin/users", Push: c.cfg.Push != nil}, FreshFor: c.adminFresh(p)}
	us, err := c.cfg.Identity.ListUsers(ctx, p)
	if err != nil {
		c.renderStatus(w, r, statusFor(err), c.errMessage(r, err))
		return
	}
	d.Users = us
	gs, err := c.cfg.Identity.ListGroups(ctx, p)
	if err != nil {
		c.renderStatus(w, r, statusFor(err), c.errMessage(r, err))
		return
	}
	for g, ms := range gs {
		sort.Strings(ms)
		d.Groups = append(d.Groups, groupRow{Name: g, Members: ms})
	}
	sort.Slice(d.Groups, func(i, j int) bool { return d.Groups[i].Name < d.Groups[j].Name })
	pg := c.base(r, p, "Users and groups", "admin")
	pg.Error = errMsg
	if pg.Error == "" {
		pg.Error = r.URL.Query().Get("error")
	}
	pg.Data = d
	c.render(w, r, status, "admin_users.html", pg)
}

func (c *console) adminUsers(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	c.adminUsersPage(w, r, p, http.StatusOK, userForm{}, "")
}

func (c *console) adminUserAdd(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	form := userForm{Name: strings.TrimSpace(r.FormValue("name")), Groups: r.FormValue("groups")}
	if err := c.adminStepUp(r, p); err != nil {
		c.adminUsersPage(w, r, p, statusFor(err), form, c.errMessage(r, err))
		return
	}
	if _, err := c.cfg.Identity.CreateUser(r.Context(), p, form.Name, r.FormValue("password"), splitList(form.Groups)); err != nil {
		c.adminUsersPage(w, r, p, statusFor(err), form, c.errMessage(r, err))
		return
	}
	http.Redirect(w, r, "/admin/users?done=user-added", http.StatusSeeOther)
}

func (c *console) adminUserSetDisabled(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	op := r.PathValue("op")
	if op != "disable" && op != "enable" {
		c.renderStatus(w, r, http.StatusNotFound, "Not found")
		return
	}
	if err := c.adminStepUp(r, p); err != nil {
		c.adminUsersPage(w, r, p, statusFor(err), userForm{}, c.errMessage(r, err))
		return
	}
	if err := c.cfg.Identity.SetDisabled(r.Context(), p, r.PathValue("name"), op == "disable"); err != nil {
		c.adminUsersPage(w, r, p, statusFor(err), userForm{}, c.errMessage(r, err))
		return
	}
	http.Redirect(w, r, "/admin/users?done=user-"+op+"d", http.StatusSeeOther)
}

// ---- resources ----

type adminResourcesData struct {
	Resources []access.ResourceView
	Form      resourceForm
	StepUp    stepUp
	FreshFor  int64
}

// resourceForm is the add-resource form as submitted, without any
// credential password: a password is sent once and never rendered back.
type resourceForm struct {
	Name, Kind, Addr, Database, Labels, ReadOnly, Logins, HostKey string
	SSLMode, SSLRootCert                                          string // postgres: TLS to the database
	Creds                                                         []credRow
}

type credRow struct{ Level, User string }

// credRows is how many credential rows the form offers.
const credRows = 3

func (f *resourceForm) pad() {
	for len(f.Creds) < credRows {
		f.Creds = append(f.Creds, credRow{})
	}
}

func (c *console) adminResourcesPage(w http.ResponseWriter, r *http.Request, p *identity.Principal, status int, form resourceForm, errMsg string) {
	rs, err := c.cfg.Access.ListResources(r.Context(), p)
	if err != nil {
		c.renderStatus(w, r, statusFor(err), c.errMessage(r, err))
		return
	}
	if form.Kind == "" {
		form.Kind = airlock.KindPostgres
	}
	form.pad()
	pg := c.base(r, p, "Resources", "admin")
	pg.Error = errMsg
	if pg.Error == "" {
		pg.Error = r.URL.Query().Get("error")
	}
	pg.Data = adminResourcesData{Resources: rs, Form: form, StepUp: stepUp{Next: "/admin/resources", Push: c.cfg.Push != nil}, FreshFor: c.adminFresh(p)}
	c.render(w, r, status, "admin_resources.html", pg)
}

func (c *console) adminResources(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	c.adminResourcesPage(w, r, p, http.StatusOK, resourceForm{}, "")
}

func (c *console) adminResourceAdd(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	if err := r.ParseForm(); err != nil {
		c.adminResourcesPage(w, r, p, http.StatusBadRequest, resourceForm{}, "malformed form")
		return
	}
	f := r.PostForm
	form := resourceForm{Name: strings.TrimSpace(f.Get("name")), Kind: f.Get("kind"), Addr: strings.TrimSpace(f.Get("addr")),
		Database: strings.TrimSpace(f.Get("database")), Labels: f.Get("labels"), ReadOnly: f.Get("read_only"),
		Logins: f.Get("logins"), HostKey: strings.TrimSpace(f.Get("host_key")),
		SSLMode: f.Get("sslmode"), SSLRootCert: strings.TrimSpace(f.Get("sslrootcert"))}
	in := access.ResourceInput{Name: form.Name, Kind: form.Kind, Addr: form.Addr, Labels: map[string]string{},
		Credentials: map[string]access.CredentialInput{},
		Options: access.ResourceOptions{Database: form.Database, ReadOnly: splitList(form.ReadOnly), Logins: splitList(form.Logins), HostKey: form.HostKey,
			TLS: form.SSLMode, TLSCA: form.SSLRootCert}}
	if in.Kind != airlock.KindPostgres && (form.SSLMode == "" || form.SSLMode == string(airlock.SSLDisable)) && form.SSLRootCert == "" {
		// The browser sends the PostgreSQL fieldset's default for every kind.
		in.Options.TLS = ""
	}
	fail := func(status int, msg string) { c.adminResourcesPage(w, r, p, status, form, msg) }
	levels, users, passwords := f["cred_level"], f["cred_user"], f["cred_password"]
	for i := range levels {
		level := strings.TrimSpace(levels[i])
		user, pw := "", ""
		if i < len(users) {
			user = strings.TrimSpace(users[i])
		}
		if i < len(passwords) {
			pw = passwords[i]
		}
		if level == "" && user == "" && pw == "" {
			continue
		}
		form.Creds = append(form.Creds, credRow{Level: level, User: user})
		if level == "" || user == "" {
			fail(http.StatusBadRequest, "each brokered credential needs an access level and a user")
			return
		}
		if _, dup := in.Credentials[level]; dup {
			fail(http.StatusBadRequest, "access level "+level+" has two credentials")
			return
		}
		in.Credentials[level] = access.CredentialInput{User: user, Password: pw}
	}
	for _, l := range splitList(form.Labels) {
		k, v, ok := strings.Cut(l, "=")
		if k = strings.TrimSpace(k); !ok || k == "" {
			fail(http.StatusBadRequest, "labels look like env=prod, team=payments")
			return
		}
		in.Labels[k] = strings.TrimSpace(v)
	}
	if in.Kind != airlock.KindSSH && (len(in.Options.Logins) > 0 || in.Options.HostKey != "") {
		fail(http.StatusBadRequest, "logins and a host key are for ssh resources")
		return
	}
	if err := c.adminStepUp(r, p); err != nil {
		fail(statusFor(err), c.errMessage(r, err))
		return
	}
	if _, err := c.cfg.Access.AddResource(r.Context(), p, in); err != nil {
		fail(statusFor(err), c.errMessage(r, err))
		return
	}
	http.Redirect(w, r, "/admin/resources?done=resource-added", http.StatusSeeOther)
}

func (c *console) adminResourceRemove(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	if err := c.adminStepUp(r, p); err != nil {
		c.adminResourcesPage(w, r, p, statusFor(err), resourceForm{}, c.errMessage(r, err))
		return
	}
	if err := c.cfg.Access.RemoveResource(r.Context(), p, r.PathValue("name")); err != nil {
		c.adminResourcesPage(w, r, p, statusFor(err), resourceForm{}, c.errMessage(r, err))
		return
	}
	http.Redirect(w, r, "/admin/resources?done=resource-removed", http.StatusSeeOther)
}

// ---- policy ----

type adminPolicyData struct {
	Info     *access.PolicyInfo
	Files    []policyFile
	File     string // the file name the textarea is checked and applied as
	Text     string
	Result   *access.CheckResult
	Checked  bool // Result is from a check, not an apply
	StepUp   stepUp
	FreshFor int64
}

type policyFile struct{ Name, Text string }

// defaultPolicyFile names the textarea's file when the policy in force has
// none or several.
const defaultPolicyFile = "policy.yaml"

func (c *console) adminPolicyPage(w http.ResponseWriter, r *http.Request, p *identity.Principal, status int, d adminPolicyData, errMsg string) {
	info, err := c.cfg.Access.ShowPolicy(r.Context(), p)
	if err != nil {
		c.renderStatus(w, r, statusFor(err), c.errMessage(r, err))
		return
	}
	d.Info = info
	d.Files = nil
	for n, t := range info.Files {
		d.Files = append(d.Files, policyFile{Name: n, Text: t})
	}
	sort.Slice(d.Files, func(i, j int) bool { return d.Files[i].Name < d.Files[j].Name })
	if d.File == "" {
		d.File = defaultPolicyFile
		if len(d.Files) == 1 {
			d.File, d.Text = d.Files[0].Name, d.Files[0].Text
		}
	}
	d.StepUp = stepUp{Next: "/admin/policy", Push: c.cfg.Push != nil}
	d.FreshFor = c.adminFresh(p)
	pg := c.base(r, p, "Policy", "admin")
	pg.Error = errMsg
	if pg.Error == "" {
		pg.Error = r.URL.Query().Get("error")
	}
	pg.Data = d
	c.render(w, r, status, "admin_policy.html", pg)
}

func (c *console) adminPolicy(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	c.adminPolicyPage(w, r, p, http.StatusOK, adminPolicyData{}, "")
}

func (c *console) adminPolicySubmit(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	ctx := r.Context()
	name := strings.TrimSpace(r.FormValue("file"))
	if name == "" {
		name = defaultPolicyFile
	}
	text := strings.ReplaceAll(r.FormValue("policy"), "\r\n", "\n")
	d := adminPolicyData{File: name, Text: text}
	if strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
		c.adminPolicyPage(w, r, p, http.StatusBadRequest, d, "the file name must be a plain name like policy.yaml")
		return
	}
	files := map[string][]byte{name: []byte(text)}
	if r.FormValue("action") == "check" {
		res, _, err := c.cfg.Access.CheckPolicy(ctx, p, files)
		if err != nil {
			c.adminPolicyPage(w, r, p, statusFor(err), d, c.errMessage(r, err))
			return
		}
		d.Result, d.Checked = res, true
		c.adminPolicyPage(w, r, p, http.StatusOK, d, "")
		return
	}
	if err := c.adminStepUp(r, p); err != nil {
		c.adminPolicyPage(w, r, p, statusFor(err), d, c.errMessage(r, err))
		return
	}
	res, err := c.cfg.Access.ApplyPolicy(ctx, p, files)
	d.Result = res
	if err != nil {
		msg := c.errMessage(r, err)
		if res != nil && !res.OK {
			msg = "The policy has errors; nothing was applied and the policy in force is unchanged."
		}
		c.adminPolicyPage(w, r, p, statusFor(err), d, msg)
		return
	}
	// Show the policy now in force, with the diff just applied.
	r.URL.RawQuery = url.Values{"done": {"policy-applied"}}.Encode()
	c.adminPolicyPage(w, r, p, http.StatusOK, adminPolicyData{Result: res}, "")
}
