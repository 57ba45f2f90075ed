package access

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/identity"
	"github.com/airlockhq/airlock/policy"
	"github.com/airlockhq/airlock/sshca"
)

// Notification is a message to policy notification channels.
type Notification struct {
	Kind      string // request.created, breakglass.activated, …
	RequestID string
	GrantID   string
	User      string
	Resource  string
	Access    string
	Duration  time.Duration
	Reason    string
	Ticket    string
	// URL opens the request in the console.
	URL string
	// HoldID and Statement: a statement held for approval.
	HoldID    string
	Statement string
}

// NotifyFunc delivers a notification to named channels, asynchronously.
type NotifyFunc func(ctx context.Context, channels []string, n Notification)

// Service implements resources, policy, requests, reviews and grants.
type Service struct {
	store      airlock.Store
	audit      airlock.Auditor
	sealer     airlock.Sealer
	ident      *identity.Service
	notify     NotifyFunc
	bus        airlock.RevocationBus
	now        func() time.Time
	log        *slog.Logger
	creds      CredentialSources
	consoleURL string
	sshCA      *sshca.CA

	mu       sync.RWMutex
	pol      *policy.Policy
	polVer   int64
	reqLocks sync.Map // request id -> *sync.Mutex

	nodes nodeState

	provision  ProvisionerFunc
	provChange func(resource string) // nil: none
	roleLocks  sync.Map              // grant id -> *sync.Mutex (ensureDBRole)
	dropAlerts sync.Map              // resource\x00role -> true: drop failure already audited
}

// Deps are a Service's collaborators.
type Deps struct {
	Store    airlock.Store
	Audit    airlock.Auditor
	Sealer   airlock.Sealer
	Identity *identity.Service
	Notify   NotifyFunc            // nil = no notifications
	Bus      airlock.RevocationBus // nil = an in-process Bus
	Now      func() time.Time
	Logger   *slog.Logger
	// Credentials are where secret references in applied policy resolve
	// (the zero value refuses them all).
	Credentials CredentialSources
	ConsoleURL  string
	// SSHCA signs user certificates for the SSH gateway (nil: disabled).
	SSHCA *sshca.CA
	// Provisioners dials the database of a resource with ephemeral
	// credentials (nil: such resources refuse every connect).
	Provisioners ProvisionerFunc
	// ProvisionerChanged, when set, is told that a resource's
	// provisioning credential was rotated or the resource removed, so
	// that connections kept with the old credential are closed.
	ProvisionerChanged func(resource string)
}

// New returns a Service and loads the current policy from the store.
func New(ctx context.Context, d Deps) (*Service, error) {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Bus == nil {
		d.Bus = &Bus{}
	}
	if d.Notify == nil {
		d.Notify = func(context.Context, []string, Notification) {}
	}
	s := &Service{store: d.Store, audit: d.Audit, sealer: d.Sealer, ident: d.Identity, notify: d.Notify, bus: d.Bus,
		now: d.Now, log: d.Logger, creds: d.Credentials, consoleURL: strings.TrimRight(d.ConsoleURL, "/"), sshCA: d.SSHCA,
		provision: d.Provisioners, provChange: d.ProvisionerChanged}
	if err := s.reloadPolicy(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Bus returns the revocation bus the service publishes on.
func (s *Service) Bus() airlock.RevocationBus { return s.bus }

// record writes an audit event and returns an error that refuses the
// caller's action if the log could not take it (audit.Record).
func (s *Service) record(ctx context.Context, e airlock.Event) error {
	return audit.Record(ctx, s.audit, s.log, e)
}

// change announces a state change with e and makes it with apply, or
// retracts e when apply fails (audit.Change: the one path for every
// audited change).
func (s *Service) change(ctx context.Context, e airlock.Event, apply func(ctx context.Context) error) error {
	return audit.Change(ctx, s.audit, s.log, e, apply)
}

// clip bounds a client-supplied name (an unknown resource or request ID)
// before it goes into an audit event.
func clip(s string) string {
	const limit = 200
	if len(s) <= limit {
		return s
	}
	return strings.ToValidUTF8(s[:limit], "") + "…"
}

// ---- policy ----

// emptyPolicy is in force before any policy is applied: it allows nothing.
func emptyPolicy() *policy.Policy {
	p, _, err := policy.Parse(map[string][]byte{"(none)": []byte("version: 1\n")})
	if err != nil {
		panic(err)
	}
	return p
}

// Policy returns the policy in force and its version (0 = none applied).
func (s *Service) Policy() (*policy.Policy, int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.pol, s.polVer
}

func decodeFiles(doc []byte) (map[string][]byte, error) {
	var files map[string]string
	if err := json.Unmarshal(doc, &files); err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(files))
	for k, v := range files {
		out[k] = []byte(v)
	}
	return out, nil
}

func encodeFiles(files map[string][]byte) []byte {
	m := make(map[string]string, len(files))
	for k, v := range files {
		m[k] = string(v)
	}
	b, _ := json.Marshal(m)
	return b
}

// reloadPolicy loads the store's current policy when its version differs
// from the one in memory (another replica may have applied one).
func (s *Service) reloadPolicy(ctx context.Context) error {
	pv, err := s.store.CurrentPolicy(ctx)
	if airlock.IsCode(err, airlock.ENOTFOUND) {
		s.mu.Lock()
		if s.pol == nil {
			s.pol = emptyPolicy()
		}
		s.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	s.mu.RLock()
	same := s.polVer == pv.Version
	s.mu.RUnlock()
	if same {
		return nil
	}
	files, err := decodeFiles(pv.Document)
	if err != nil {
		return fmt.Errorf("stored policy v%d: %w", pv.Version, err)
	}
	p, _, err := policy.Parse(files)
	if err != nil {
		return fmt.Errorf("stored policy v%d no longer parses: %w", pv.Version, err)
	}
	s.mu.Lock()
	s.pol, s.polVer = p, pv.Version
	s.mu.Unlock()
	return nil
}

// CheckResult is the outcome of checking a policy.
type CheckResult struct {
	OK          bool     `json:"ok"`
	Diagnostics []string `json:"diagnostics"`
	Diff        []string `json:"diff,omitempty"`
	Version     int64    `json:"version,omitempty"`
}

// RequirePolicyReader refuses callers who may not read the policy in
// force: only admins and members of airlock.GroupPolicyReaders may. The
// policy names every resource, group and approver; a user who may request
// something sees their own part with `airlock resources` and --dry-run.
func (s *Service) RequirePolicyReader(p *identity.Principal) error {
	if err := s.ident.RequireEnrolled(p); err != nil {
		return err
	}
	if !p.User.IsAdmin() && !p.User.InGroup(airlock.GroupPolicyReaders) {
		return airlock.Errorf(airlock.EFORBIDDEN, "reading the policy needs the %s or %s group; run `airlock resources` to see what you may request",
			airlock.GroupAdmins, airlock.GroupPolicyReaders)
	}
	return nil
}

// CheckPolicy validates files without applying them and diffs them
// against the policy in force, with warnings about selectors that match
// no known resource. Only policy readers may (RequirePolicyReader): the
// diff and warnings reveal the live policy and resources; `airlock policy
// check` validates offline for everyone else. Errors: EFORBIDDEN.
func (s *Service) CheckPolicy(ctx context.Context, p *identity.Principal, files map[string][]byte) (*CheckResult, *policy.Policy, error) {
	if err := s.RequirePolicyReader(p); err != nil {
		return nil, nil, err
	}
	return s.checkPolicy(ctx, files)
}

func (s *Service) checkPolicy(ctx context.Context, files map[string][]byte) (*CheckResult, *policy.Policy, error) {
	p, diags, err := policy.Parse(files)
	res := &CheckResult{OK: err == nil, Diagnostics: []string{}}
	for _, d := range diags {
		res.Diagnostics = append(res.Diagnostics, d.String())
	}
	if err != nil {
		return res, nil, nil
	}
	known, err := s.policyResources(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	for _, d := range p.Warnings(known) {
		res.Diagnostics = append(res.Diagnostics, d.String())
	}
	old, _ := s.Policy()
	res.Diff = policy.Diff(old, p)
	return res, p, nil
}

func (s *Service) policyResources(ctx context.Context, p *policy.Policy) ([]policy.Resource, error) {
	rs, err := s.store.ListResources(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []policy.Resource
	for _, spec := range p.Resources {
		out = append(out, spec.Resource())
		seen[spec.Name] = true
	}
	for _, r := range rs {
		if !seen[r.Name] {
			out = append(out, policyResource(r))
		}
	}
	return out, nil
}

func policyResource(r *airlock.Resource) policy.Resource {
	return policy.Resource{Name: r.Name, Kind: r.Kind, Labels: r.Labels}
}

// ApplyPolicy validates and stores files as the next policy version,
// upserts the resources it declares (resolving credential references on
// the server), and revokes active grants the new policy no longer allows.
// An invalid policy is refused and the old one stays in force.
func (s *Service) ApplyPolicy(ctx context.Context, p *identity.Principal, files map[string][]byte) (*CheckResult, error) {
	if err := s.ident.RequireAdmin(p); err != nil {
		return nil, err
	}
	res, np, err := s.checkPolicy(ctx, files)
	if err != nil {
		return nil, err
	}
	if !res.OK {
		return res, airlock.Errorf(airlock.EINVALID, "policy has errors; nothing applied:\n  %s", strings.Join(res.Diagnostics, "\n  "))
	}
	// Resolve declared resources' credentials before anything is stored.
	var resources []*airlock.Resource
	for _, spec := range np.Resources {
		r, err := s.resourceFromSpec(spec)
		if err != nil {
			return nil, err
		}
		resources = append(resources, r)
	}
	doc := encodeFiles(files)
	sum := sha256.Sum256(doc)
	_, oldVer := s.Policy()
	pv := &airlock.PolicyVersion{Document: doc, AppliedBy: p.User.Name, AppliedAt: s.now().UTC(), SHA256: hex.EncodeToString(sum[:])}
	// The declared resources are stored before the policy version, so a
	// failure leaves the old policy in force (a retraction says so); the
	// resources stored before it stay, as by `admin resources add`.
	if err := s.change(ctx, airlock.Event{Actor: p.Actor(), Action: "policy.applied", SourceAddr: p.Source,
		Details: airlock.EventDetails("from_version", oldVer, "diff", res.Diff, "sha256", hex.EncodeToString(sum[:]))},
		func(ctx context.Context) error {
			for _, r := range resources {
				if err := s.upsertResource(ctx, r); err != nil {
					return err
				}
			}
			return s.store.SavePolicy(ctx, pv)
		}); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.pol, s.polVer = np, pv.Version
	s.mu.Unlock()
	res.Version = pv.Version
	if err := s.revokeIneligible(ctx); err != nil {
		s.log.Error("revoking grants after policy change", "err", err)
	}
	return res, nil
}

func (s *Service) upsertResource(ctx context.Context, r *airlock.Resource) error {
	old, err := s.store.ResourceByName(ctx, r.Name)
	switch {
	case err == nil:
		r.ID, r.CreatedAt = old.ID, old.CreatedAt
		return s.store.UpdateResource(ctx, r)
	case airlock.IsCode(err, airlock.ENOTFOUND):
		return s.store.CreateResource(ctx, r)
	default:
		return err
	}
}

// revokeIneligible revokes every active grant the policy in force no longer allows.
func (s *Service) revokeIneligible(ctx context.Context) error {
	grants, err := s.store.ListGrants(ctx, airlock.GrantFilter{ActiveAt: s.now()})
	if err != nil {
		return err
	}
	pol, _ := s.Policy()
	for _, g := range grants {
		u, err := s.store.UserByID(ctx, g.UserID)
		if err != nil {
			continue
		}
		r, err := s.store.ResourceByName(ctx, g.Resource)
		var pr policy.Resource
		if err == nil {
			pr = policyResource(r)
		} else {
			pr = policy.Resource{Name: g.Resource}
		}
		d := pol.Evaluate(policy.Input{Subject: policy.Subject{Name: u.Name, Groups: u.Groups}, Resource: pr, Access: g.Access, BreakGlass: g.BreakGlass})
		if d.Allowed {
			continue
		}
		if err := s.endGrant(ctx, g, airlock.GrantRevoked, airlock.SystemActor, "policy change removed eligibility: "+d.Reason); err != nil {
			s.log.Error("revoke ineligible grant", "grant", g.ID, "err", err)
		}
	}
	return nil
}

// PolicyInfo describes the policy in force.
type PolicyInfo struct {
	Version   int64             `json:"version"`
	AppliedBy string            `json:"applied_by,omitempty"`
	AppliedAt time.Time         `json:"applied_at,omitzero"`
	SHA256    string            `json:"sha256,omitempty"`
	Files     map[string]string `json:"files"`
}

// ShowPolicy returns the current policy's source files to policy readers
// (RequirePolicyReader). Errors: EFORBIDDEN.
func (s *Service) ShowPolicy(ctx context.Context, p *identity.Principal) (*PolicyInfo, error) {
	if err := s.RequirePolicyReader(p); err != nil {
		return nil, err
	}
	pv, err := s.store.CurrentPolicy(ctx)
	if airlock.IsCode(err, airlock.ENOTFOUND) {
		return &PolicyInfo{Files: map[string]string{}}, nil
	}
	if err != nil {
		return nil, err
	}
	var files map[string]string
	json.Unmarshal(pv.Document, &files)
	return &PolicyInfo{Version: pv.Version, AppliedBy: pv.AppliedBy, AppliedAt: pv.AppliedAt, SHA256: pv.SHA256, Files: files}, nil
}

// closeNames returns up to 3 known names closest to name, for "did you mean".
func closeNames(name string, known []string) []string {
	type cand struct {
		n string
		d int
	}
	var cs []cand
	for _, k := range known {
		d := airlock.Levenshtein(name, k)
		if strings.Contains(k, name) || strings.Contains(name, k) {
			d = 0
		}
		if d <= len(name)/2+2 {
			cs = append(cs, cand{k, d})
		}
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].d < cs[j].d || (cs[i].d == cs[j].d && cs[i].n < cs[j].n) })
	var out []string
	for i := 0; i < len(cs) && i < 3; i++ {
		out = append(out, cs[i].n)
	}
	return out
}
