package airlock_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The import direction of the design's Components table (each part
// depends only on the parts below it), enforced in the spirit of
// tailscale's deptest: a forbidden import fails these tests, naming the
// shortest chain that brings it in. Only non-test imports count.

const module = "github.com/airlockhq/airlock"

// Package groups, as module-relative paths.
var (
	services = []string{"access", "identity", "policy", "audit", "audit/stream", "mfa", "assertion", "report", "evidence"}
	gateways = []string{"pgproxy", "sshproxy", "httpgw", "kubegw", "mysqlproxy"}
	// builtOn names the gateway core a gateway is built on: the one other
	// gateway it may import.
	builtOn  = map[string]string{"kubegw": "httpgw"}
	stores   = []string{"sqlite", "postgres"}
	frontEnd = []string{"api", "web"}
	wiring   = []string{"cmd"} // and everything under it
	// storeOnly are the stores' own internal packages: a store may import
	// them; services, gateways and front ends may not.
	storeOnly = []string{"internal/sqlstore"}
)

// importRules lists, per package, the module packages it must not reach
// through any chain of imports. The root package has its own, stricter rule
// (stdlib only; see TestRootImportsOnlyStdlib).
func importRules() map[string][]string {
	rules := map[string][]string{}
	// A service never imports an adapter or a front end: what it needs from
	// one moves down into the root package.
	for _, s := range services {
		rules[s] = concat(gateways, stores, storeOnly, frontEnd, wiring)
	}
	// A gateway implements the root package's gateway contract and reaches
	// the services through interfaces only; adapters do not import each
	// other. (policy is not listed: guardrails, which gateways will use,
	// depend on it.)
	for _, g := range gateways {
		others := slices.DeleteFunc(slices.Clone(gateways), func(o string) bool { return o == g || o == builtOn[g] })
		rules[g] = concat([]string{"access", "identity", "audit", "mfa", "assertion"}, others, stores, storeOnly, frontEnd, wiring)
	}
	// A store depends on the domain only.
	for _, s := range stores {
		others := slices.DeleteFunc(slices.Clone(stores), func(o string) bool { return o == s })
		rules[s] = concat(services, gateways, others, frontEnd, wiring)
	}
	// The front ends reach gateways and stores only through the services
	// and the wiring.
	for _, f := range frontEnd {
		rules[f] = concat(gateways, stores, storeOnly, wiring)
	}
	// The stores' shared half is driver-free: the domain only, never a
	// store (it is what both stores import), a service, an adapter or a
	// front end.
	for _, s := range storeOnly {
		rules[s] = concat(services, gateways, stores, frontEnd, wiring)
	}
	return rules
}

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

type listedPackage struct {
	ImportPath string
	Standard   bool
	Imports    []string
}

// importGraph runs `go list -deps` on the module and returns every package
// it reaches, by import path.
func importGraph(t *testing.T) map[string]*listedPackage {
	t.Helper()
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found:", err)
	}
	cmd := exec.Command(gotool, "list", "-deps", "-json=ImportPath,Standard,Imports", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	graph := map[string]*listedPackage{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		graph[p.ImportPath] = &p
	}
	if graph[module] == nil {
		t.Fatalf("go list did not list %s", module)
	}
	return graph
}

// chains returns, for each package reachable from root for which bad
// reports true, the shortest import chain from root to it.
func chains(graph map[string]*listedPackage, root string, bad func(*listedPackage) bool) [][]string {
	prev := map[string]string{root: ""}
	queue := []string{root}
	var found [][]string
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		p := graph[path]
		if p == nil {
			continue
		}
		if path != root && bad(p) {
			var chain []string
			for q := path; q != ""; q = prev[q] {
				chain = append(chain, q)
			}
			slices.Reverse(chain)
			found = append(found, chain)
			continue // its own imports are reported from it, if at all
		}
		for _, imp := range p.Imports {
			if _, seen := prev[imp]; !seen {
				prev[imp] = path
				queue = append(queue, imp)
			}
		}
	}
	return found
}

// under reports whether import path p is the module package rel or below it.
func under(p, rel string) bool {
	full := module + "/" + rel
	return p == full || strings.HasPrefix(p, full+"/")
}

func TestRootImportsOnlyStdlib(t *testing.T) {
	graph := importGraph(t)
	for _, chain := range chains(graph, module, func(p *listedPackage) bool { return !p.Standard }) {
		t.Errorf("the root package imports only the standard library, but imports %s", strings.Join(chain, " -> "))
	}
}

// leaves lists the module packages every gateway shares, each with the only
// module packages it may import (besides the stdlib): they stay small
// enough for any gateway, present or coming, to build on.
var leaves = map[string][]string{
	"internal/gwsession": {""}, // the root package
	"internal/dbgw":      {""}, // the root package
	"internal/jsonenc":   {},   // stdlib only
}

func TestLeafImports(t *testing.T) {
	graph := importGraph(t)
	for pkg, allowed := range leaves {
		root := module + "/" + pkg
		if graph[root] == nil {
			t.Errorf("package %s not found; update leaves", root)
			continue
		}
		var names []string
		for _, a := range allowed {
			names = append(names, cmp.Or(a, "the root package"))
		}
		bad := func(p *listedPackage) bool {
			return !p.Standard && !slices.ContainsFunc(allowed, func(a string) bool {
				return p.ImportPath == strings.TrimSuffix(module+"/"+a, "/")
			})
		}
		for _, chain := range chains(graph, root, bad) {
			t.Errorf("%s imports only the stdlib and %s, but imports %s", pkg, strings.Join(names, ", "), strings.Join(chain, " -> "))
		}
	}
}

func TestImportDirection(t *testing.T) {
	graph := importGraph(t)
	for pkg, forbidden := range importRules() {
		root := module + "/" + pkg
		if graph[root] == nil {
			t.Errorf("package %s not found; update importRules", root)
			continue
		}
		bad := func(p *listedPackage) bool {
			return slices.ContainsFunc(forbidden, func(f string) bool { return under(p.ImportPath, f) })
		}
		for _, chain := range chains(graph, root, bad) {
			t.Errorf("%s must not import %s, but does: %s", pkg, strings.TrimPrefix(chain[len(chain)-1], module+"/"), strings.Join(chain, " -> "))
		}
	}
}

// TestSQLStoreImportsNoDriver keeps internal/sqlstore driver-free: the
// standard library (database/sql's interfaces) and module packages only.
func TestSQLStoreImportsNoDriver(t *testing.T) {
	graph := importGraph(t)
	root := module + "/internal/sqlstore"
	if graph[root] == nil {
		t.Fatalf("package %s not found", root)
	}
	thirdParty := func(p *listedPackage) bool {
		return !p.Standard && p.ImportPath != module && !strings.HasPrefix(p.ImportPath, module+"/")
	}
	for _, chain := range chains(graph, root, thirdParty) {
		t.Errorf("internal/sqlstore imports no driver or other third-party package, but imports %s", strings.Join(chain, " -> "))
	}
}
