package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Enumerations of the schema.
const (
	EffectAllow = "allow"
	EffectDeny  = "deny"

	FactorsAny               = "any"
	FactorsPhishingResistant = "phishing_resistant" // WebAuthn only

	AuditStandard = "standard"
	AuditStrict   = "strict" // no result reaches the client before its event is durable

	ChannelWebhook = "webhook"
	ChannelSlack   = "slack"

	SeverityError   = "error"
	SeverityWarning = "warning"
)

// Built-in defaults, used where neither a rule nor the policy's defaults
// block sets a value. They lean to the safe side: a reason is required, one
// approval is required, sessions are recorded, connect tokens are single-use.
const (
	DefaultMaxDuration   = time.Hour
	DefaultPendingTTL    = 24 * time.Hour
	DefaultReasonPrompt  = "Why do you need access? (ticket or incident)"
	DefaultFreshness     = 5 * time.Minute
	DefaultIdleTimeout   = 30 * time.Minute
	DefaultMaxConcurrent = 3
	DefaultTokenUses     = 1
	DefaultApprovals     = 1
)

// Policy is a parsed, validated and compiled policy. Fields hold the policy
// as written (unset values are zero or nil); Evaluate applies defaults.
// A Policy returned by Parse must not be modified: Evaluate uses an index
// compiled from it.
type Policy struct {
	Version   int
	Defaults  Defaults
	Resources []ResourceSpec
	Notify    []Channel
	Rules     []Rule

	c *compiled // nil unless Parse succeeded
}

// Defaults are the values rules inherit. Defaults.MaxDuration is also a
// ceiling: no rule (and no break-glass block) may allow longer.
type Defaults struct {
	MaxDuration time.Duration
	PendingTTL  time.Duration
	Reason      *ReasonSpec
	Factors     string
	Freshness   Freshness
	Session     SessionSpec
}

// ReasonSpec says whether a request must give a reason, and the prompt the
// CLI and console show.
type ReasonSpec struct {
	Required *bool
	Prompt   string
}

// Freshness is how recent the user's second factor must be for each step.
// A zero field means "inherit".
type Freshness struct {
	Approve    time.Duration
	Connect    time.Duration
	BreakGlass time.Duration
}

// SessionSpec is the session block as written; nil or zero fields inherit.
type SessionSpec struct {
	Record        *bool
	IdleTimeout   time.Duration
	MaxConcurrent int
	Audit         string
	LogParameters *bool
	TokenUses     int
	// DirectCredentials lets holders of a grant on a resource with
	// ephemeral credentials have its role's login handed to them
	// (`airlock db-credentials`), for a tool that cannot go through the
	// gateway: their statements are then not recorded. Off by default.
	DirectCredentials *bool
}

// SessionOptions are the effective session options of a decision.
type SessionOptions struct {
	Record        bool
	IdleTimeout   time.Duration
	MaxConcurrent int
	Audit         string // AuditStandard or AuditStrict
	LogParameters bool
	TokenUses     int // connections one connect token may open
	// DirectCredentials: the grant's database login may be handed out.
	DirectCredentials bool
}

// ResourceSpec is a resource declared as code.
type ResourceSpec struct {
	Name        string
	Kind        string // postgres | ssh | http
	Addr        string
	Labels      map[string]string
	Options     map[string]string
	Credentials map[string]CredentialRef // access level -> where its secret comes from
	Logins      []string                 // ssh
	HostKey     string                   // ssh: optional pinned host key
	// Provisioner is the provisioning credential of a postgres resource
	// with options credentials: ephemeral (a role with CREATEROLE that
	// makes and drops the per-grant login roles); nil otherwise.
	Provisioner *CredentialRef
}

// Ephemeral reports whether the resource makes a database role per grant
// (options credentials: ephemeral) instead of brokering standing ones.
func (r ResourceSpec) Ephemeral() bool { return r.Options["credentials"] == CredentialsEphemeral }

// CredentialsEphemeral is the credentials option of a resource whose
// access levels are template roles and whose logins are made per grant.
const CredentialsEphemeral = "ephemeral"

// TemplatePrefix starts the option naming an ephemeral resource's access
// level's template role: template_read: app_read.
const TemplatePrefix = "template_"

// CredentialRef says where a brokered credential's secret comes from.
// Exactly one of PasswordEnv and PasswordFile is set; secrets are never
// written into the policy.
type CredentialRef struct {
	User         string
	PasswordEnv  string
	PasswordFile string
}

// SecretRef returns the reference as "env:NAME" or "file:PATH".
func (c CredentialRef) SecretRef() string { return secretRef(c.PasswordEnv, c.PasswordFile) }

// Resource returns the matching view of the spec used by Evaluate.
func (r ResourceSpec) Resource() Resource {
	return Resource{Name: r.Name, Kind: r.Kind, Labels: r.Labels}
}

// AccessLevels returns the access levels the resource offers: credential
// names for postgres, logins for ssh, nothing for http (whose access
// entries are "METHOD /path" strings chosen per request). Sorted.
func (r ResourceSpec) AccessLevels() []string {
	switch {
	case r.Kind == "ssh":
		return append([]string(nil), r.Logins...)
	case r.Ephemeral():
		var out []string
		for k := range r.Options {
			if l, ok := strings.CutPrefix(k, TemplatePrefix); ok && l != "" {
				out = append(out, l)
			}
		}
		slices.Sort(out)
		return out
	default:
		return sortedKeys(r.Credentials)
	}
}

// Channel is a notification channel.
type Channel struct {
	Name       string
	Type       string // webhook | slack
	URL        string
	URLEnv     string
	URLFile    string
	SecretEnv  string // webhook HMAC key
	SecretFile string
}

// URLRef returns where the channel's URL comes from: "" when URL is set
// inline, else "env:NAME" or "file:PATH".
func (c Channel) URLRef() string { return secretRef(c.URLEnv, c.URLFile) }

// SecretRef returns where the channel's signing secret comes from
// ("env:NAME", "file:PATH" or "" for none).
func (c Channel) SecretRef() string { return secretRef(c.SecretEnv, c.SecretFile) }

func secretRef(env, file string) string {
	switch {
	case env != "":
		return "env:" + env
	case file != "":
		return "file:" + file
	}
	return ""
}

// Rule is one rule as written.
type Rule struct {
	Name        string
	Effect      string // allow (default) | deny
	Who         Who
	Resources   Selector
	Access      []string
	MaxDuration time.Duration
	PendingTTL  time.Duration
	Reason      *ReasonSpec
	Approval    *Approval
	BreakGlass  *BreakGlass
	Factors     string
	Freshness   Freshness
	Session     SessionSpec
	Notify      []string
	// Statements are the rule's statement guardrails (PostgreSQL
	// resources only); nil: none.
	Statements *Statements
}

// Who selects subjects: a subject matches when its name is in Users or one
// of its groups is in Groups. "*" matches every subject.
type Who struct {
	Users  []string
	Groups []string
}

// Selector selects resources: every label must match ("*" = present with
// any value) and, when Names is not empty, one name glob must match.
type Selector struct {
	Names  []string
	Labels map[string]string
}

// Approval says who must approve and how many. A rule without an approval
// block needs DefaultApprovals approval from the admins group.
type Approval struct {
	Required    *int // nil = DefaultApprovals
	Groups      []string
	AutoApprove *AutoApprove
}

// AutoApprove lists conditions that all must hold for a request to be
// approved without a person. Empty conditions hold.
type AutoApprove struct {
	Users       []string
	Groups      []string
	Access      []string
	MaxDuration time.Duration
	Window      *Window
}

// Window is a weekly time window in a time zone. From > To spans midnight;
// Days refers to the local day at the time of evaluation.
type Window struct {
	Days []string // mon … sun; empty = every day
	From string   // "HH:MM", inclusive
	To   string   // "HH:MM", exclusive
	TZ   string   // IANA zone; empty = UTC
}

// BreakGlass allows emergency access without approval.
type BreakGlass struct {
	Allowed     bool
	MaxDuration time.Duration // 0 = the rule's max duration
	Alert       []string      // notify channels alerted on use
	Factors     string        // "" = the rule's factors
}

// Diagnostic is one problem found in a policy or cases file.
type Diagnostic struct {
	File     string
	Line     int
	Col      int
	Severity string // "error" | "warning"
	Message  string
}

// String formats d as "file:line:col: severity: message".
func (d Diagnostic) String() string {
	return fmt.Sprintf("%s:%d:%d: %s: %s", d.File, d.Line, d.Col, d.Severity, d.Message)
}

// Resource is what Evaluate needs to know about a resource.
type Resource struct {
	Name   string
	Kind   string
	Labels map[string]string
}

// Subject is the person asking.
type Subject struct {
	Name   string
	Groups []string
}

// Input is one question to Evaluate.
type Input struct {
	Subject    Subject
	Resource   Resource
	Access     string
	Duration   time.Duration // 0 = not given (no duration check)
	Now        time.Time     // for auto-approve windows; zero = no window holds
	BreakGlass bool
}

// Decision is Evaluate's answer. Slices are shared with the policy and must
// not be modified.
type Decision struct {
	Allowed bool
	// Rule is the matched rule ("" if none); for a deny, the deny rule.
	Rule string
	// Reason says why, for humans.
	Reason            string
	MaxDuration       time.Duration
	PendingTTL        time.Duration
	ReasonRequired    bool
	ReasonPrompt      string
	RequiredApprovals int
	ApproverGroups    []string // empty = the admins group
	// AutoApprove reports that the request needs no human approval
	// (required: 0, or every auto_approve condition holds). Always false
	// for break-glass decisions: break-glass is granted at once by its own path.
	AutoApprove           bool
	BreakGlassAllowed     bool
	BreakGlassMaxDuration time.Duration
	Alert                 []string // channels to alert on break-glass
	Factors               string   // "any" | "phishing_resistant"
	Freshness             Freshness
	Session               SessionOptions
	Notify                []string
	// Statements are the matched rule's statement guardrails (nil: none).
	Statements *Statements
}

// Entitlement is one thing a subject may request.
type Entitlement struct {
	Resource    string        `json:"resource"`
	Access      string        `json:"access"`
	MaxDuration time.Duration `json:"max_duration"`
	Rule        string        `json:"rule"`
	AutoApprove bool          `json:"auto_approve"` // some auto-approve path exists (ignoring window and duration)
	BreakGlass  bool          `json:"break_glass"`
}
