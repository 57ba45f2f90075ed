package policy

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"go.yaml.in/yaml/v3"
)

// Marshal returns the canonical YAML encoding of the policy: fixed key
// order, sorted maps, unset values omitted, durations in compact form. It
// is what the store keeps and what `airlock policy show` prints; Parse of
// the result yields an equal policy.
func (p *Policy) Marshal() []byte {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(p.node()); err != nil {
		// Encoding a tree of plain scalars cannot fail.
		panic(fmt.Sprintf("policy: marshal: %v", err))
	}
	_ = enc.Close()
	return buf.Bytes()
}

// nodes builds a mapping node from key/value pairs, skipping nil values.
type mapBuilder struct{ n *yaml.Node }

func newMap() *mapBuilder { return &mapBuilder{&yaml.Node{Kind: yaml.MappingNode}} }

func (m *mapBuilder) add(key string, v *yaml.Node) {
	if v == nil {
		return
	}
	m.n.Content = append(m.n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

func (m *mapBuilder) node() *yaml.Node {
	if len(m.n.Content) == 0 {
		return nil
	}
	return m.n
}

func strNode(s string) *yaml.Node {
	if s == "" {
		return nil
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func durNode(d time.Duration) *yaml.Node {
	if d == 0 {
		return nil
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: airlock.FormatDuration(d)}
}

func intNode(i int) *yaml.Node {
	if i == 0 {
		return nil
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(i)}
}

func boolNode(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}

func boolPtrNode(b *bool) *yaml.Node {
	if b == nil {
		return nil
	}
	return boolNode(*b)
}

func listNode(list []string) *yaml.Node {
	if len(list) == 0 {
		return nil
	}
	n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, s := range list {
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s})
	}
	return n
}

func strMapNode(m map[string]string) *yaml.Node {
	if len(m) == 0 {
		return nil
	}
	b := newMap()
	b.n.Style = yaml.FlowStyle
	for _, k := range sortedKeys(m) {
		b.add(k, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: m[k]})
	}
	return b.node()
}

func (p *Policy) node() *yaml.Node {
	m := newMap()
	m.add("version", intNode(max(p.Version, 1)))
	m.add("defaults", p.Defaults.node())
	if len(p.Resources) > 0 {
		s := &yaml.Node{Kind: yaml.SequenceNode}
		for _, r := range p.Resources {
			s.Content = append(s.Content, r.node())
		}
		m.add("resources", s)
	}
	if len(p.Notify) > 0 {
		s := &yaml.Node{Kind: yaml.SequenceNode}
		for _, c := range p.Notify {
			s.Content = append(s.Content, c.node())
		}
		m.add("notify", s)
	}
	if len(p.Rules) > 0 {
		s := &yaml.Node{Kind: yaml.SequenceNode}
		for _, r := range p.Rules {
			s.Content = append(s.Content, r.node())
		}
		m.add("rules", s)
	}
	return m.n
}

func (d Defaults) node() *yaml.Node {
	m := newMap()
	m.add("max_duration", durNode(d.MaxDuration))
	m.add("pending_ttl", durNode(d.PendingTTL))
	m.add("reason", d.Reason.node())
	m.add("factors", strNode(d.Factors))
	m.add("freshness", d.Freshness.node())
	m.add("session", d.Session.node())
	return m.node()
}

func (r *ReasonSpec) node() *yaml.Node {
	if r == nil {
		return nil
	}
	m := newMap()
	m.n.Style = yaml.FlowStyle
	m.add("required", boolPtrNode(r.Required))
	m.add("prompt", strNode(r.Prompt))
	if len(m.n.Content) == 0 {
		return m.n // an empty block, kept as written: {}
	}
	return m.n
}

func (f Freshness) node() *yaml.Node {
	m := newMap()
	m.n.Style = yaml.FlowStyle
	m.add("approve", durNode(f.Approve))
	m.add("connect", durNode(f.Connect))
	m.add("break_glass", durNode(f.BreakGlass))
	return m.node()
}

func (s SessionSpec) node() *yaml.Node {
	m := newMap()
	m.n.Style = yaml.FlowStyle
	m.add("record", boolPtrNode(s.Record))
	m.add("idle_timeout", durNode(s.IdleTimeout))
	m.add("max_concurrent", intNode(s.MaxConcurrent))
	m.add("audit", strNode(s.Audit))
	m.add("log_parameters", boolPtrNode(s.LogParameters))
	m.add("token_uses", intNode(s.TokenUses))
	m.add("direct_credentials", boolPtrNode(s.DirectCredentials))
	return m.node()
}

func (r ResourceSpec) node() *yaml.Node {
	m := newMap()
	m.add("name", strNode(r.Name))
	m.add("kind", strNode(r.Kind))
	m.add("addr", strNode(r.Addr))
	m.add("labels", strMapNode(r.Labels))
	m.add("options", strMapNode(r.Options))
	if len(r.Credentials) > 0 {
		c := newMap()
		for _, k := range sortedKeys(r.Credentials) {
			cr := r.Credentials[k]
			cm := newMap()
			cm.n.Style = yaml.FlowStyle
			cm.add("user", strNode(cr.User))
			cm.add("password_env", strNode(cr.PasswordEnv))
			cm.add("password_file", strNode(cr.PasswordFile))
			c.add(k, cm.n)
		}
		m.add("credentials", c.node())
	}
	if cr := r.Provisioner; cr != nil {
		cm := newMap()
		cm.n.Style = yaml.FlowStyle
		cm.add("user", strNode(cr.User))
		cm.add("password_env", strNode(cr.PasswordEnv))
		cm.add("password_file", strNode(cr.PasswordFile))
		m.add("provisioner", cm.n)
	}
	m.add("logins", listNode(r.Logins))
	m.add("host_key", strNode(r.HostKey))
	return m.n
}

func (c Channel) node() *yaml.Node {
	m := newMap()
	m.add("name", strNode(c.Name))
	m.add("type", strNode(c.Type))
	m.add("url", strNode(c.URL))
	m.add("url_env", strNode(c.URLEnv))
	m.add("url_file", strNode(c.URLFile))
	m.add("secret_env", strNode(c.SecretEnv))
	m.add("secret_file", strNode(c.SecretFile))
	return m.n
}

func (r Rule) node() *yaml.Node {
	m := newMap()
	m.add("name", strNode(r.Name))
	if r.Effect != "" && r.Effect != EffectAllow {
		m.add("effect", strNode(r.Effect))
	}
	who := newMap()
	who.n.Style = yaml.FlowStyle
	who.add("users", listNode(r.Who.Users))
	who.add("groups", listNode(r.Who.Groups))
	m.add("who", who.node())
	sel := newMap()
	sel.n.Style = yaml.FlowStyle
	sel.add("names", listNode(r.Resources.Names))
	sel.add("labels", strMapNode(r.Resources.Labels))
	m.add("resources", sel.node())
	m.add("access", listNode(r.Access))
	m.add("max_duration", durNode(r.MaxDuration))
	m.add("pending_ttl", durNode(r.PendingTTL))
	m.add("reason", r.Reason.node())
	if a := r.Approval; a != nil {
		am := newMap()
		if a.Required != nil {
			am.add("required", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(*a.Required)})
		}
		am.add("groups", listNode(a.Groups))
		if aa := a.AutoApprove; aa != nil {
			aam := newMap()
			aam.add("users", listNode(aa.Users))
			aam.add("groups", listNode(aa.Groups))
			aam.add("access", listNode(aa.Access))
			aam.add("max_duration", durNode(aa.MaxDuration))
			if w := aa.Window; w != nil {
				wm := newMap()
				wm.n.Style = yaml.FlowStyle
				wm.add("days", listNode(w.Days))
				wm.add("from", strNode(w.From))
				wm.add("to", strNode(w.To))
				wm.add("tz", strNode(w.TZ))
				aam.add("window", wm.n)
			}
			am.add("auto_approve", aam.n)
		}
		m.add("approval", am.n)
	}
	if b := r.BreakGlass; b != nil {
		bm := newMap()
		bm.n.Style = yaml.FlowStyle
		bm.add("allowed", boolNode(b.Allowed))
		bm.add("max_duration", durNode(b.MaxDuration))
		bm.add("alert", listNode(b.Alert))
		bm.add("factors", strNode(b.Factors))
		m.add("break_glass", bm.n)
	}
	m.add("factors", strNode(r.Factors))
	m.add("freshness", r.Freshness.node())
	m.add("session", r.Session.node())
	m.add("notify", listNode(r.Notify))
	m.add("statements", r.Statements.node())
	return m.n
}

// Diff returns human-readable lines describing how new differs from old:
// "+ rule x", "- rule x", "~ rule x: max_duration 1h -> 2h", and the same
// for defaults, resources and notify channels. Secrets never appear: the
// policy only holds references to them.
func Diff(old, new *Policy) []string {
	if old == nil {
		old = &Policy{}
	}
	if new == nil {
		new = &Policy{}
	}
	var out []string
	out = append(out, diffNamed("defaults", flatten(old.Defaults.node()), flatten(new.Defaults.node()))...)
	out = append(out, diffList("resource", old.Resources, new.Resources, func(r ResourceSpec) (string, *yaml.Node) { return r.Name, r.node() })...)
	out = append(out, diffList("notify", old.Notify, new.Notify, func(c Channel) (string, *yaml.Node) { return c.Name, c.node() })...)
	out = append(out, diffList("rule", old.Rules, new.Rules, func(r Rule) (string, *yaml.Node) { return r.Name, r.node() })...)
	// Rule order decides between allow rules; report a reordering.
	var oldOrder, newOrder []string
	newSet := map[string]bool{}
	for _, r := range new.Rules {
		newSet[r.Name] = true
	}
	oldSet := map[string]bool{}
	for _, r := range old.Rules {
		oldSet[r.Name] = true
		if newSet[r.Name] {
			oldOrder = append(oldOrder, r.Name)
		}
	}
	for _, r := range new.Rules {
		if oldSet[r.Name] {
			newOrder = append(newOrder, r.Name)
		}
	}
	if !slices.Equal(oldOrder, newOrder) {
		out = append(out, "~ rule order: "+strings.Join(oldOrder, ", ")+" -> "+strings.Join(newOrder, ", "))
	}
	return out
}

func diffList[T any](kind string, old, new []T, key func(T) (string, *yaml.Node)) []string {
	var out []string
	oldBy := map[string]*yaml.Node{}
	for _, x := range old {
		name, n := key(x)
		oldBy[name] = n
	}
	newBy := map[string]bool{}
	for _, x := range new {
		name, n := key(x)
		newBy[name] = true
		o, ok := oldBy[name]
		if !ok {
			out = append(out, fmt.Sprintf("+ %s %s", kind, name))
			continue
		}
		out = append(out, diffNamed(kind+" "+name, flatten(o), flatten(n))...)
	}
	for _, x := range old {
		if name, _ := key(x); !newBy[name] {
			out = append(out, fmt.Sprintf("- %s %s", kind, name))
		}
	}
	return out
}

type kv struct{ k, v string }

// flatten turns a mapping tree into dotted paths with scalar or flow-list
// values, in document order.
func flatten(n *yaml.Node) []kv {
	var out []kv
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		if n == nil {
			return
		}
		switch n.Kind {
		case yaml.MappingNode:
			if len(n.Content) == 0 {
				out = append(out, kv{prefix, "{}"})
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				if prefix != "" {
					k = prefix + "." + k
				}
				walk(k, n.Content[i+1])
			}
		case yaml.SequenceNode:
			var vals []string
			for _, c := range n.Content {
				vals = append(vals, c.Value)
			}
			out = append(out, kv{prefix, "[" + strings.Join(vals, ", ") + "]"})
		default:
			out = append(out, kv{prefix, n.Value})
		}
	}
	walk("", n)
	return out
}

func diffNamed(what string, old, new []kv) []string {
	var out []string
	oldBy := map[string]string{}
	for _, x := range old {
		oldBy[x.k] = x.v
	}
	newBy := map[string]bool{}
	for _, x := range new {
		newBy[x.k] = true
		o, ok := oldBy[x.k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("~ %s: %s (unset) -> %s", what, x.k, x.v))
		case o != x.v:
			out = append(out, fmt.Sprintf("~ %s: %s %s -> %s", what, x.k, o, x.v))
		}
	}
	for _, x := range old {
		if !newBy[x.k] {
			out = append(out, fmt.Sprintf("~ %s: %s %s -> (unset)", what, x.k, x.v))
		}
	}
	return out
}
