package policy

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/airlockhq/airlock"
)

// maxPolicyFiles and maxPolicyBytes bound what Load reads.
const (
	maxPolicyFiles = 1000
	maxPolicyBytes = 16 << 20
)

// Load reads a policy file, or every *.yaml and *.yml file directly in a
// directory, and returns them by path for Parse. It is the package's only I/O.
func Load(path string) (map[string][]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, airlock.WrapError(airlock.EINVALID, fmt.Sprintf("cannot read policy %s", path), err)
	}
	var paths []string
	if fi.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, airlock.WrapError(airlock.EINVALID, fmt.Sprintf("cannot read policy directory %s", path), err)
		}
		for _, e := range entries {
			ext := filepath.Ext(e.Name())
			if e.Type().IsRegular() && (ext == ".yaml" || ext == ".yml") {
				paths = append(paths, filepath.Join(path, e.Name()))
			}
		}
		if len(paths) == 0 {
			return nil, airlock.Errorf(airlock.EINVALID, "policy directory %s has no *.yaml or *.yml files", path)
		}
		if len(paths) > maxPolicyFiles {
			return nil, airlock.Errorf(airlock.EINVALID, "policy directory %s has more than %d files", path, maxPolicyFiles)
		}
	} else {
		paths = []string{path}
	}
	files := make(map[string][]byte, len(paths))
	total := 0
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, airlock.WrapError(airlock.EINVALID, fmt.Sprintf("cannot read policy file %s", p), err)
		}
		total += len(b)
		if total > maxPolicyBytes {
			return nil, airlock.Errorf(airlock.EINVALID, "policy is larger than %d bytes", maxPolicyBytes)
		}
		files[p] = b
	}
	return files, nil
}

// Parse parses and validates policy files (name -> content; files are
// read in name order and their resources, notify channels and rules are
// concatenated). It returns the policy and every diagnostic, sorted by
// position. err is an *airlock.Error with code EINVALID, listing the first
// few errors, when any diagnostic is an error; the returned policy then
// cannot Evaluate (it denies everything).
func Parse(files map[string][]byte) (*Policy, []Diagnostic, error) {
	p := &Policy{}
	d := &decoder{}
	ps := &parseState{pos: map[string]pos{}}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	if len(names) == 0 {
		d.report(pos{}, SeverityError, "no policy files given")
	}
	for _, name := range names {
		d.file = name
		root := d.document(files[name])
		if root == nil {
			continue
		}
		ps.top(d, root, p)
	}
	if len(names) > 0 && p.Version == 0 && !ps.sawVersion {
		d.report(pos{file: names[0], line: 1, col: 1}, SeverityError, "missing key \"version\" (use version: 1)")
	}
	ps.validate(d, p)
	diags := sortDiagnostics(d.diags)
	if err := diagnosticsError(diags); err != nil {
		return p, diags, err
	}
	c, err := compile(p, ps.pos)
	if err != nil { // unreachable after validation; fail closed anyway
		return p, diags, airlock.WrapError(airlock.EINVALID, "policy cannot be compiled", err)
	}
	p.c = c
	return p, diags, nil
}

func sortDiagnostics(diags []Diagnostic) []Diagnostic {
	slices.SortStableFunc(diags, func(a, b Diagnostic) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	return diags
}

// diagnosticsError returns an EINVALID error listing the first few errors,
// or nil when there are none.
func diagnosticsError(diags []Diagnostic) error {
	var errs []string
	n := 0
	for _, dg := range diags {
		if dg.Severity != SeverityError {
			continue
		}
		n++
		if len(errs) < 5 {
			errs = append(errs, dg.String())
		}
	}
	if n == 0 {
		return nil
	}
	msg := strings.Join(errs, "; ")
	if n > len(errs) {
		msg += fmt.Sprintf("; and %d more", n-len(errs))
	}
	return airlock.Errorf(airlock.EINVALID, "policy has %d error(s): %s", n, msg)
}

// parseState carries positions across files for cross-checks.
type parseState struct {
	pos         map[string]pos // see posKey
	sawVersion  bool
	sawDefaults bool
	refs        []ref // notify channel references to check
}

type ref struct {
	name string
	at   pos
}

func posKey(kind, name, field string) string { return kind + "\x00" + name + "\x00" + field }

func (ps *parseState) top(d *decoder, root *yaml.Node, p *Policy) {
	f := d.mapping(root, "policy", "version", "defaults", "resources", "notify", "rules")
	if f == nil {
		return
	}
	if v, ok := f["version"]; ok {
		if s, ok := d.scalar(v.v, "version"); ok {
			if s != "1" {
				d.errf(v.v, "unsupported policy version %q (this Airlock understands version 1)", s)
			} else {
				p.Version = 1
			}
		}
		ps.sawVersion = true
	}
	if v, ok := f["defaults"]; ok {
		if ps.sawDefaults {
			d.errf(v.k, "defaults are already defined in another file")
		} else {
			ps.sawDefaults = true
			ps.defaults(d, v.v, &p.Defaults)
		}
	}
	if v, ok := f["resources"]; ok {
		if list := d.seq(v.v, "resources"); list != nil {
			for _, n := range list {
				if r, ok := ps.resource(d, n); ok {
					p.Resources = append(p.Resources, r)
				}
			}
		}
	}
	if v, ok := f["notify"]; ok {
		if list := d.seq(v.v, "notify"); list != nil {
			for _, n := range list {
				if c, ok := ps.channel(d, n); ok {
					p.Notify = append(p.Notify, c)
				}
			}
		}
	}
	if v, ok := f["rules"]; ok {
		if list := d.seq(v.v, "rules"); list != nil {
			for _, n := range list {
				if r, ok := ps.rule(d, n); ok {
					p.Rules = append(p.Rules, r)
				}
			}
		}
	}
}

func (d *decoder) seq(n *yaml.Node, what string) []*yaml.Node {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errf(n, "%s must be a list", what)
		return nil
	}
	return n.Content
}

func (ps *parseState) defaults(d *decoder, n *yaml.Node, df *Defaults) {
	f := d.mapping(n, "defaults", "max_duration", "pending_ttl", "reason", "factors", "freshness", "session")
	if f == nil {
		return
	}
	if v, ok := f["max_duration"]; ok {
		df.MaxDuration = d.duration(v.v, "defaults.max_duration")
		ps.pos[posKey("defaults", "", "max_duration")] = d.at(v.v)
	}
	if v, ok := f["pending_ttl"]; ok {
		df.PendingTTL = d.duration(v.v, "defaults.pending_ttl")
	}
	if v, ok := f["reason"]; ok {
		df.Reason = d.reason(v.v, "defaults.reason")
	}
	if v, ok := f["factors"]; ok {
		df.Factors = d.enum(v.v, "defaults.factors", FactorsAny, FactorsPhishingResistant)
	}
	if v, ok := f["freshness"]; ok {
		df.Freshness = d.freshness(v.v, "defaults.freshness")
	}
	if v, ok := f["session"]; ok {
		df.Session = d.session(v.v, "defaults.session")
	}
}

func (d *decoder) reason(n *yaml.Node, what string) *ReasonSpec {
	f := d.mapping(n, what, "required", "prompt")
	if f == nil {
		return nil
	}
	r := &ReasonSpec{}
	if v, ok := f["required"]; ok {
		r.Required = d.boolPtr(v.v, what+".required")
	}
	if v, ok := f["prompt"]; ok {
		r.Prompt = d.str(v.v, what+".prompt")
	}
	return r
}

func (d *decoder) freshness(n *yaml.Node, what string) Freshness {
	var fr Freshness
	f := d.mapping(n, what, "approve", "connect", "break_glass")
	if f == nil {
		return fr
	}
	if v, ok := f["approve"]; ok {
		fr.Approve = d.duration(v.v, what+".approve")
	}
	if v, ok := f["connect"]; ok {
		fr.Connect = d.duration(v.v, what+".connect")
	}
	if v, ok := f["break_glass"]; ok {
		fr.BreakGlass = d.duration(v.v, what+".break_glass")
	}
	return fr
}

func (d *decoder) session(n *yaml.Node, what string) SessionSpec {
	var s SessionSpec
	f := d.mapping(n, what, "record", "idle_timeout", "max_concurrent", "audit", "log_parameters", "token_uses", "direct_credentials")
	if f == nil {
		return s
	}
	if v, ok := f["record"]; ok {
		s.Record = d.boolPtr(v.v, what+".record")
	}
	if v, ok := f["idle_timeout"]; ok {
		s.IdleTimeout = d.duration(v.v, what+".idle_timeout")
	}
	if v, ok := f["max_concurrent"]; ok {
		s.MaxConcurrent = d.integer(v.v, what+".max_concurrent", 1)
	}
	if v, ok := f["audit"]; ok {
		s.Audit = d.enum(v.v, what+".audit", AuditStandard, AuditStrict)
	}
	if v, ok := f["log_parameters"]; ok {
		s.LogParameters = d.boolPtr(v.v, what+".log_parameters")
	}
	if v, ok := f["token_uses"]; ok {
		s.TokenUses = d.integer(v.v, what+".token_uses", 1)
	}
	if v, ok := f["direct_credentials"]; ok {
		s.DirectCredentials = d.boolPtr(v.v, what+".direct_credentials")
	}
	return s
}

// postgresOptionNames are the options a postgres resource takes. Others
// are refused: a misspelt sslmode must not silently mean plaintext.
var postgresOptionNames = []string{"database", "databases", "read_only", "sslmode", "sslrootcert", "allow_cleartext_password",
	"credentials", "owner", "connection_limit", TemplatePrefix + "LEVEL"}

// maxRoleName is PostgreSQL's limit on a role name (NAMEDATALEN-1).
const maxRoleName = 63

// validRoleName reports whether n can name a template or owner role: not
// empty, at most 63 bytes, no NUL (it is quoted wherever it is used).
func validRoleName(n string) bool {
	return n != "" && len(n) <= maxRoleName && !strings.ContainsRune(n, 0)
}

// listOptions decodes options given as a YAML list (databases: [a, b])
// into the comma-separated form options hold, and returns n with each
// such list replaced by a scalar, for strMap. Items must be non-empty
// scalars without commas.
func listOptions(d *decoder, n *yaml.Node, what string, names ...string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return n
	}
	out := *n
	out.Content = slices.Clone(n.Content)
	for i := 0; i+1 < len(out.Content); i += 2 {
		k, v := out.Content[i], out.Content[i+1]
		if !slices.Contains(names, k.Value) || v.Kind != yaml.SequenceNode {
			continue
		}
		items := d.strList(v, what+": "+k.Value)
		for _, it := range items {
			if it == "" || strings.Contains(it, ",") {
				d.errf(v, "%s: %s items must be non-empty names without commas, not %q", what, k.Value, it)
			}
		}
		out.Content[i+1] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: strings.Join(items, ","), Line: v.Line, Column: v.Column}
	}
	return &out
}

// postgresOptions checks a postgres resource's options (n is their
// mapping node, for positions).
func postgresOptions(d *decoder, n *yaml.Node, what, kind string, opts map[string]string) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if l, ok := strings.CutPrefix(k, TemplatePrefix); ok && l != "" {
			continue
		}
		if !slices.Contains(postgresOptionNames, k) {
			d.errf(n.Content[i], "%s: unknown option %q (postgres and mysql resources take %s)", what, k, strings.Join(postgresOptionNames, ", "))
		}
	}
	if m, ok := opts["sslmode"]; ok && !slices.Contains([]string{"disable", "require", "verify-ca", "verify-full"}, m) {
		d.errf(n, "%s: sslmode must be disable, require, verify-ca or verify-full, not %q", what, m)
	}
	if _, ok := opts["sslrootcert"]; ok && (opts["sslmode"] == "" || opts["sslmode"] == "disable") {
		d.errf(n, "%s: sslrootcert needs sslmode require, verify-ca or verify-full", what)
	}
	if v, ok := opts["allow_cleartext_password"]; ok && v != "true" && v != "false" {
		d.errf(n, "%s: allow_cleartext_password must be true or false, not %q", what, v)
	}
	ephemeralOptions(d, n, what, kind, opts)
	if v, ok := opts["databases"]; ok {
		for _, db := range strings.Split(v, ",") {
			if db == "" || len(db) > 63 {
				d.errf(n, "%s: databases must name databases of at most 63 bytes, not %q", what, v)
				break
			}
		}
	}
}

// ephemeralOptions checks the options of ephemeral credentials
// (credentials, owner, connection_limit, template_LEVEL): incomplete
// configuration is refused, never guessed. owner is PostgreSQL's
// (REASSIGN OWNED); MySQL objects have no owner, so mysql takes none.
func ephemeralOptions(d *decoder, n *yaml.Node, what, kind string, opts map[string]string) {
	mode, ok := opts["credentials"]
	if ok && mode != "static" && mode != CredentialsEphemeral {
		d.errf(n, "%s: credentials must be static or ephemeral, not %q", what, mode)
		return
	}
	var templates int
	for k, v := range opts {
		l, ok := strings.CutPrefix(k, TemplatePrefix)
		if !ok || l == "" {
			continue
		}
		templates++
		if !validName(l) {
			d.errf(n, "%s: %s names an invalid access level %q", what, k, l)
		}
		if !validRoleName(v) {
			d.errf(n, "%s: %s must name a role of at most %d bytes", what, k, maxRoleName)
		}
	}
	if mode != CredentialsEphemeral {
		if templates > 0 || opts["owner"] != "" || opts["connection_limit"] != "" {
			d.errf(n, "%s: template_LEVEL, owner and connection_limit need credentials: ephemeral", what)
		}
		return
	}
	if templates == 0 {
		d.errf(n, "%s: credentials: ephemeral needs a template role per access level (template_read: app_read)", what)
	}
	if o, ok := opts["owner"]; kind == airlock.KindMySQL {
		if ok {
			d.errf(n, "%s: owner is for postgres: what a MySQL user creates belongs to its schema and stays", what)
		}
	} else if !ok || !validRoleName(o) {
		d.errf(n, "%s: credentials: ephemeral needs owner: the role that keeps what a grant's role created (REASSIGN OWNED), at most %d bytes", what, maxRoleName)
	}
	if v, ok := opts["connection_limit"]; ok {
		if c, err := strconv.Atoi(v); err != nil || c < 1 || c > 10000 {
			d.errf(n, "%s: connection_limit must be an integer from 1 to 10000, not %q", what, v)
		}
	}
}

func (ps *parseState) resource(d *decoder, n *yaml.Node) (ResourceSpec, bool) {
	var r ResourceSpec
	f := d.mapping(n, "resource", "name", "kind", "addr", "labels", "options", "credentials", "logins", "host_key", "provisioner")
	if f == nil {
		return r, false
	}
	var ok bool
	if r.Name, ok = ps.named(d, n, f, "resource", "resource"); !ok {
		return r, false
	}
	what := fmt.Sprintf("resource %s", r.Name)
	if v, ok := f["kind"]; ok {
		r.Kind = d.enum(v.v, what+": kind", airlock.KindPostgres, airlock.KindMySQL, airlock.KindSSH, airlock.KindHTTP, airlock.KindKubernetes)
	} else {
		d.errf(n, "%s needs a kind (postgres, mysql, ssh, http or kubernetes)", what)
	}
	if v, ok := f["addr"]; ok {
		r.Addr = d.str(v.v, what+": addr")
		if r.Addr != "" && r.Kind != airlock.KindHTTP && !strings.Contains(r.Addr, ":") {
			d.errf(v.v, "%s: addr %q must be host:port", what, r.Addr)
		}
	} else {
		d.errf(n, "%s needs an addr", what)
	}
	if v, ok := f["labels"]; ok {
		r.Labels = d.strMap(v.v, what+": labels")
	}
	if v, ok := f["options"]; ok {
		r.Options = d.strMap(listOptions(d, v.v, what+": options", "databases", "levels"), what+": options")
		if airlock.IsDatabaseKind(r.Kind) {
			postgresOptions(d, v.v, what, r.Kind, r.Options)
		}
	}
	if v, ok := f["credentials"]; ok {
		if v.v.Kind != yaml.MappingNode {
			d.errf(v.v, "%s: credentials must be a mapping of access level to credential", what)
		} else {
			r.Credentials = map[string]CredentialRef{}
			for i := 0; i+1 < len(v.v.Content); i += 2 {
				k, cv := v.v.Content[i], v.v.Content[i+1]
				level := d.name(k, what+": access level")
				if level == "" {
					continue
				}
				if _, dup := r.Credentials[level]; dup {
					d.errf(k, "%s: duplicate access level %q", what, level)
					continue
				}
				r.Credentials[level] = d.credential(cv, fmt.Sprintf("%s: credential %s", what, level))
			}
			if len(r.Credentials) == 0 {
				r.Credentials = nil
			}
		}
	}
	if v, ok := f["logins"]; ok {
		if r.Kind != airlock.KindSSH && r.Kind != "" {
			d.errf(v.k, "%s: logins are only for ssh resources", what)
		}
		r.Logins = d.strList(v.v, what+": logins")
	}
	if v, ok := f["host_key"]; ok {
		if r.Kind != airlock.KindSSH && r.Kind != "" {
			d.errf(v.k, "%s: host_key is only for ssh resources", what)
		}
		r.HostKey = d.str(v.v, what+": host_key")
	}
	if v, ok := f["provisioner"]; ok {
		c := d.credential(v.v, what+": provisioner")
		r.Provisioner = &c
	}
	switch {
	case r.Ephemeral():
		if !airlock.IsDatabaseKind(r.Kind) {
			d.errf(n, "%s: credentials: ephemeral is for postgres and mysql resources", what)
		}
		if r.Provisioner == nil {
			d.errf(n, "%s: credentials: ephemeral needs a provisioner ({user, password_env|password_file}: a role with CREATEROLE, or a MySQL account with CREATE USER)", what)
		}
		if len(r.Credentials) > 0 {
			d.errf(n, "%s: credentials: ephemeral makes a login per grant; remove the standing credentials (access levels are template_LEVEL options)", what)
		}
	case r.Provisioner != nil:
		d.errf(n, "%s: provisioner needs options credentials: ephemeral", what)
	case airlock.IsDatabaseKind(r.Kind) && len(r.Credentials) == 0:
		d.errf(n, "%s: a %s resource needs credentials (access level -> {user, password_env|password_file})", what, r.Kind)
	}
	if r.Kind == airlock.KindSSH && len(r.Logins) == 0 {
		d.errf(n, "%s: an ssh resource needs logins", what)
	}
	return r, true
}

func (d *decoder) credential(n *yaml.Node, what string) CredentialRef {
	var c CredentialRef
	f := d.mapping(n, what, "user", "password_env", "password_file")
	if f == nil {
		return c
	}
	if v, ok := f["user"]; ok {
		c.User = d.str(v.v, what+": user")
	} else {
		d.errf(n, "%s needs a user", what)
	}
	if v, ok := f["password_env"]; ok {
		c.PasswordEnv = d.str(v.v, what+": password_env")
	}
	if v, ok := f["password_file"]; ok {
		c.PasswordFile = d.str(v.v, what+": password_file")
	}
	if (c.PasswordEnv == "") == (c.PasswordFile == "") {
		d.errf(n, "%s needs exactly one of password_env or password_file", what)
	}
	return c
}

func (ps *parseState) channel(d *decoder, n *yaml.Node) (Channel, bool) {
	var c Channel
	f := d.mapping(n, "notify channel", "name", "type", "url", "url_env", "url_file", "secret_env", "secret_file")
	if f == nil {
		return c, false
	}
	var ok bool
	if c.Name, ok = ps.named(d, n, f, "notify channel", "notify"); !ok {
		return c, false
	}
	what := "notify channel " + c.Name
	if v, ok := f["type"]; ok {
		c.Type = d.enum(v.v, what+": type", ChannelWebhook, ChannelSlack)
	} else {
		d.errf(n, "%s needs a type (webhook or slack)", what)
	}
	if v, ok := f["url"]; ok {
		c.URL = d.str(v.v, what+": url")
		if c.URL != "" && !strings.HasPrefix(c.URL, "https://") && !strings.HasPrefix(c.URL, "http://") {
			d.errf(v.v, "%s: url must start with https:// or http://", what)
		}
	}
	if v, ok := f["url_env"]; ok {
		c.URLEnv = d.str(v.v, what+": url_env")
	}
	if v, ok := f["url_file"]; ok {
		c.URLFile = d.str(v.v, what+": url_file")
	}
	if v, ok := f["secret_env"]; ok {
		c.SecretEnv = d.str(v.v, what+": secret_env")
	}
	if v, ok := f["secret_file"]; ok {
		c.SecretFile = d.str(v.v, what+": secret_file")
	}
	set := 0
	for _, s := range []string{c.URL, c.URLEnv, c.URLFile} {
		if s != "" {
			set++
		}
	}
	if set != 1 {
		d.errf(n, "%s needs exactly one of url, url_env or url_file", what)
	}
	if c.SecretEnv != "" && c.SecretFile != "" {
		d.errf(n, "%s: give secret_env or secret_file, not both", what)
	}
	if c.Type == ChannelWebhook && c.SecretEnv == "" && c.SecretFile == "" {
		d.errf(n, "%s: a webhook needs secret_env or secret_file (the HMAC signing key)", what)
	}
	if c.Type == ChannelSlack && (c.SecretEnv != "" || c.SecretFile != "") {
		d.errf(n, "%s: slack channels are not signed; remove secret_env/secret_file", what)
	}
	return c, true
}

func (ps *parseState) rule(d *decoder, n *yaml.Node) (Rule, bool) {
	var r Rule
	f := d.mapping(n, "rule", "name", "effect", "who", "resources", "access", "max_duration", "pending_ttl",
		"reason", "approval", "break_glass", "factors", "freshness", "session", "notify", "statements")
	if f == nil {
		return r, false
	}
	var ok bool
	if r.Name, ok = ps.named(d, n, f, "rule", "rule"); !ok {
		return r, false
	}
	what := "rule " + r.Name
	key := func(field string) string { return posKey("rule", r.Name, field) }
	r.Effect = EffectAllow
	if v, ok := f["effect"]; ok {
		r.Effect = d.enum(v.v, what+": effect", EffectAllow, EffectDeny)
	}
	if v, ok := f["who"]; ok {
		wf := d.mapping(v.v, what+": who", "users", "groups")
		if wf != nil {
			if x, ok := wf["users"]; ok {
				r.Who.Users = d.strList(x.v, what+": who.users")
			}
			if x, ok := wf["groups"]; ok {
				r.Who.Groups = d.strList(x.v, what+": who.groups")
			}
		}
		if len(r.Who.Users) == 0 && len(r.Who.Groups) == 0 {
			d.errf(v.v, "%s: who selects nobody (give users or groups; \"*\" for everyone)", what)
		}
	} else {
		d.errf(n, "%s needs who (users and/or groups)", what)
	}
	if v, ok := f["resources"]; ok {
		ps.pos[key("resources")] = d.at(v.v)
		rf := d.mapping(v.v, what+": resources", "names", "labels")
		if rf != nil {
			if x, ok := rf["names"]; ok {
				r.Resources.Names = d.strList(x.v, what+": resources.names")
				if x.v.Kind == yaml.SequenceNode {
					for i, c := range x.v.Content {
						ps.pos[key(fmt.Sprintf("names.%d", i))] = d.at(c)
					}
				} else {
					ps.pos[key("names.0")] = d.at(x.v)
				}
				for i, nm := range r.Resources.Names {
					if err := checkGlob(nm); err != nil {
						d.report(ps.pos[key(fmt.Sprintf("names.%d", i))], SeverityError, "%s: resources.names entry %q: %v", what, nm, err)
					}
				}
			}
			if x, ok := rf["labels"]; ok {
				r.Resources.Labels = d.strMap(x.v, what+": resources.labels")
			}
		}
		if len(r.Resources.Names) == 0 && len(r.Resources.Labels) == 0 {
			d.errf(v.v, "%s: resources selects nothing (give names and/or labels; names: [\"*\"] for all)", what)
		}
	} else {
		d.errf(n, "%s needs resources (names and/or labels)", what)
	}
	if v, ok := f["access"]; ok {
		r.Access = d.strList(v.v, what+": access")
		if len(r.Access) == 0 {
			d.errf(v.v, "%s: access lists no access level (use [\"*\"] for all)", what)
		}
		for i, a := range r.Access {
			if err := checkAccess(a); err != nil {
				at := v.v
				if v.v.Kind == yaml.SequenceNode && i < len(v.v.Content) {
					at = v.v.Content[i]
				}
				d.errf(at, "%s: access entry %q: %v", what, a, err)
			}
		}
	} else {
		d.errf(n, "%s needs access (access levels, \"*\" for all)", what)
	}
	if v, ok := f["max_duration"]; ok {
		r.MaxDuration = d.duration(v.v, what+": max_duration")
		ps.pos[key("max_duration")] = d.at(v.v)
	}
	if v, ok := f["pending_ttl"]; ok {
		r.PendingTTL = d.duration(v.v, what+": pending_ttl")
	}
	if v, ok := f["reason"]; ok {
		r.Reason = d.reason(v.v, what+": reason")
	}
	if v, ok := f["approval"]; ok {
		ps.pos[key("approval")] = d.at(v.k)
		r.Approval = ps.approval(d, v.v, what, key)
	}
	if v, ok := f["break_glass"]; ok {
		ps.pos[key("break_glass")] = d.at(v.k)
		r.BreakGlass = ps.breakGlass(d, v.v, what, key)
	}
	if v, ok := f["factors"]; ok {
		r.Factors = d.enum(v.v, what+": factors", FactorsAny, FactorsPhishingResistant)
	}
	if v, ok := f["freshness"]; ok {
		r.Freshness = d.freshness(v.v, what+": freshness")
	}
	if v, ok := f["session"]; ok {
		r.Session = d.session(v.v, what+": session")
	}
	if v, ok := f["notify"]; ok {
		r.Notify = d.strList(v.v, what+": notify")
		ps.addRefs(d, v.v, r.Notify)
	}
	if v, ok := f["statements"]; ok {
		r.Statements = ps.statements(d, v.v, what+": statements")
	}
	if r.Effect == EffectDeny {
		for _, k := range []string{"approval", "break_glass", "max_duration", "pending_ttl", "reason", "factors", "freshness", "session", "notify", "statements"} {
			if v, ok := f[k]; ok {
				d.errf(v.k, "%s: a deny rule cannot have %s (it only denies)", what, k)
			}
		}
	}
	return r, true
}

func (ps *parseState) addRefs(d *decoder, n *yaml.Node, names []string) {
	for i, nm := range names {
		at := n
		if n.Kind == yaml.SequenceNode && i < len(n.Content) {
			at = n.Content[i]
		}
		ps.refs = append(ps.refs, ref{name: nm, at: d.at(at)})
	}
}

func (ps *parseState) approval(d *decoder, n *yaml.Node, what string, key func(string) string) *Approval {
	f := d.mapping(n, what+": approval", "required", "groups", "auto_approve")
	if f == nil {
		return nil
	}
	a := &Approval{}
	if v, ok := f["required"]; ok {
		req := d.integer(v.v, what+": approval.required", 0)
		a.Required = &req
	}
	if v, ok := f["groups"]; ok {
		a.Groups = d.strList(v.v, what+": approval.groups")
	}
	if v, ok := f["auto_approve"]; ok {
		a.AutoApprove = ps.autoApprove(d, v.v, what, key)
	}
	return a
}

var days = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

func (ps *parseState) autoApprove(d *decoder, n *yaml.Node, what string, key func(string) string) *AutoApprove {
	what += ": approval.auto_approve"
	f := d.mapping(n, what, "users", "groups", "access", "max_duration", "window")
	if f == nil {
		return nil
	}
	a := &AutoApprove{}
	if v, ok := f["users"]; ok {
		a.Users = d.strList(v.v, what+".users")
	}
	if v, ok := f["groups"]; ok {
		a.Groups = d.strList(v.v, what+".groups")
	}
	if v, ok := f["access"]; ok {
		a.Access = d.strList(v.v, what+".access")
	}
	if v, ok := f["max_duration"]; ok {
		a.MaxDuration = d.duration(v.v, what+".max_duration")
		ps.pos[key("auto_approve.max_duration")] = d.at(v.v)
	}
	if v, ok := f["window"]; ok {
		wf := d.mapping(v.v, what+".window", "days", "from", "to", "tz")
		if wf != nil {
			w := &Window{}
			if x, ok := wf["days"]; ok {
				w.Days = d.strList(x.v, what+".window.days")
				for _, day := range w.Days {
					if !slices.Contains(days, day) {
						d.errf(x.v, "%s.window.days: %q is not one of mon, tue, wed, thu, fri, sat, sun", what, day)
					}
				}
			}
			if x, ok := wf["from"]; ok {
				w.From = d.str(x.v, what+".window.from")
				if _, err := parseClock(w.From); w.From != "" && err != nil {
					d.errf(x.v, "%s.window.from: %v", what, err)
				}
			} else {
				d.errf(v.v, "%s.window needs from (HH:MM)", what)
			}
			if x, ok := wf["to"]; ok {
				w.To = d.str(x.v, what+".window.to")
				if _, err := parseClock(w.To); w.To != "" && err != nil {
					d.errf(x.v, "%s.window.to: %v", what, err)
				}
			} else {
				d.errf(v.v, "%s.window needs to (HH:MM)", what)
			}
			if x, ok := wf["tz"]; ok {
				w.TZ = d.str(x.v, what+".window.tz")
				if _, err := time.LoadLocation(w.TZ); w.TZ != "" && err != nil {
					d.errf(x.v, "%s.window.tz: unknown time zone %q", what, w.TZ)
				}
			}
			a.Window = w
		}
	}
	return a
}

// parseClock parses "HH:MM" into minutes after midnight.
func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		return 0, fmt.Errorf("time %q must be HH:MM (24h)", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

func (ps *parseState) breakGlass(d *decoder, n *yaml.Node, what string, key func(string) string) *BreakGlass {
	what += ": break_glass"
	f := d.mapping(n, what, "allowed", "max_duration", "alert", "factors")
	if f == nil {
		return nil
	}
	b := &BreakGlass{}
	if v, ok := f["allowed"]; ok {
		b.Allowed = d.boolean(v.v, what+".allowed")
	} else {
		d.errf(n, "%s needs allowed: true or false", what)
	}
	if v, ok := f["max_duration"]; ok {
		b.MaxDuration = d.duration(v.v, what+".max_duration")
		ps.pos[key("break_glass.max_duration")] = d.at(v.v)
	}
	if v, ok := f["alert"]; ok {
		b.Alert = d.strList(v.v, what+".alert")
		ps.addRefs(d, v.v, b.Alert)
	}
	if v, ok := f["factors"]; ok {
		b.Factors = d.enum(v.v, what+".factors", FactorsAny, FactorsPhishingResistant)
	}
	return b
}

func (ps *parseState) has(k string) bool { _, ok := ps.pos[k]; return ok }

// named reads the name of a resource, notify channel or rule (label, as
// messages call it; kind, its posKey kind) from its fields f, and records
// where it is defined, reporting a name defined twice. It is false when
// the entry has no usable name (reported).
func (ps *parseState) named(d *decoder, n *yaml.Node, f map[string]field, label, kind string) (string, bool) {
	v, ok := f["name"]
	if !ok {
		d.errf(n, "%s needs a name", label)
		return "", false
	}
	name := d.name(v.v, label+" name")
	if name == "" {
		return "", false
	}
	if k := posKey(kind, name, ""); ps.has(k) {
		d.errf(v.v, "duplicate %s name %q (first defined at %s)", label, name, ps.pos[k].short())
	} else {
		ps.pos[k] = d.at(v.v)
	}
	return name, true
}

func (p pos) short() string { return fmt.Sprintf("%s:%d:%d", p.file, p.line, p.col) }

// validate runs the checks that span the whole policy.
func (ps *parseState) validate(d *decoder, p *Policy) {
	channels := map[string]bool{}
	for _, c := range p.Notify {
		channels[c.Name] = true
	}
	for _, r := range ps.refs {
		if !channels[r.name] {
			d.report(r.at, SeverityError, "unknown notify channel %q (declare it under notify:)", r.name)
		}
	}
	ceiling := p.Defaults.MaxDuration
	for _, r := range p.Rules {
		key := func(field string) string { return posKey("rule", r.Name, field) }
		at := func(field string) pos {
			if x, ok := ps.pos[key(field)]; ok {
				return x
			}
			return ps.pos[key("")]
		}
		if ceiling > 0 && r.MaxDuration > ceiling {
			d.report(at("max_duration"), SeverityError, "rule %s: max_duration %s exceeds the ceiling defaults.max_duration %s",
				r.Name, airlock.FormatDuration(r.MaxDuration), airlock.FormatDuration(ceiling))
		}
		maxd := cmp.Or(r.MaxDuration, ceiling, DefaultMaxDuration)
		if b := r.BreakGlass; b != nil && b.MaxDuration > maxd {
			d.report(at("break_glass.max_duration"), SeverityError, "rule %s: break_glass.max_duration %s exceeds the rule's max_duration %s",
				r.Name, airlock.FormatDuration(b.MaxDuration), airlock.FormatDuration(maxd))
		}
		if a := r.Approval; a != nil && a.AutoApprove != nil && a.AutoApprove.MaxDuration > maxd {
			d.report(at("auto_approve.max_duration"), SeverityError, "rule %s: auto_approve.max_duration %s exceeds the rule's max_duration %s",
				r.Name, airlock.FormatDuration(a.AutoApprove.MaxDuration), airlock.FormatDuration(maxd))
		}
		if b := r.BreakGlass; b != nil && !b.Allowed && (b.MaxDuration > 0 || len(b.Alert) > 0 || b.Factors != "") {
			d.report(at("break_glass"), SeverityWarning, "rule %s: break_glass has settings but allowed is false", r.Name)
		}
		if b := r.BreakGlass; b != nil && b.Allowed && len(b.Alert) == 0 && len(r.Notify) == 0 {
			d.report(at("break_glass"), SeverityWarning, "rule %s: break-glass use alerts nobody (set break_glass.alert)", r.Name)
		}
	}
}
