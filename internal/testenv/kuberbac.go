package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// ImpersonatorToken returns a service-account token (TokenRequest, valid
// 48h) of ServiceAccount airlock-gateway in namespace airlock-system. Its
// only RBAC grant beyond what every authenticated user has (discovery,
// SelfSubjectReview…) is ClusterRole airlock-gateway-impersonator:
// impersonate on users, groups and userextras/airlock-grant. Every call
// returns the same token.
func (c *KubeCluster) ImpersonatorToken(t testing.TB) string {
	t.Helper()
	c.tokenOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := c.kubectl(ctx, nil, "create", "token", KubeImpersonatorServiceAccount,
			"--namespace="+KubeImpersonatorNamespace, "--duration=48h")
		if err != nil {
			c.tokenErr = fmt.Errorf("kubectl create token: %w: %s", err, out)
			return
		}
		c.token = strings.TrimSpace(string(out))
	})
	if c.tokenErr != nil {
		t.Fatalf("testenv: %v", c.tokenErr)
	}
	return c.token
}

// ImpersonatorCert returns a client certificate and its key (PEM) for the
// user airlock-gateway-cert, signed by the cluster's client CA, with the
// same rights as ImpersonatorToken. Every call returns the same pair.
func (c *KubeCluster) ImpersonatorCert(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	c.certOnce.Do(func() {
		c.certPEM, c.keyPEM, c.certErr = c.clientCA.client(KubeImpersonatorCertUser)
	})
	if c.certErr != nil {
		t.Fatalf("testenv: %v", c.certErr)
	}
	return c.certPEM, c.keyPEM
}

// BindGroup binds clusterRole (such as the bootstrap "view" or "edit") to
// group: cluster-wide when namespace is "", else in namespace only. It
// returns once the apiserver's authorizer grants the group the role's
// first resource rule, and removes the binding when t ends.
func (c *KubeCluster) BindGroup(t testing.TB, group, clusterRole, namespace string) {
	t.Helper()
	name := "testenv-" + randomSuffix(t)
	kind, meta := "ClusterRoleBinding", "{name: "+name+"}"
	if namespace != "" {
		kind, meta = "RoleBinding", "{name: "+name+", namespace: "+namespace+"}"
	}
	c.Apply(t, fmt.Sprintf(`apiVersion: rbac.authorization.k8s.io/v1
kind: %s
metadata: %s
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: %q}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: %q}
`, kind, meta, clusterRole, group))
	t.Cleanup(func() {
		args := []string{"delete", strings.ToLower(kind), name, "--ignore-not-found"}
		if namespace != "" {
			args = append(args, "--namespace="+namespace)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := c.kubectl(ctx, nil, args...); err != nil {
			t.Errorf("testenv: remove %s %s: %v: %s", kind, name, err, out)
		}
	})
	c.waitGranted(t, group, clusterRole, namespace)
}

// waitGranted waits until a SubjectAccessReview for a member of group
// allows the first resource rule of clusterRole: RBAC reads bindings from
// a watch cache, so a fresh binding takes a moment to count.
func (c *KubeCluster) waitGranted(t testing.TB, group, clusterRole, namespace string) {
	t.Helper()
	code, body, err := c.do(t.Context(), http.MethodGet, "/apis/rbac.authorization.k8s.io/v1/clusterroles/"+clusterRole, nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("testenv: get clusterrole %s: %d %v %s", clusterRole, code, err, body)
	}
	var role struct {
		Rules []struct {
			APIGroups, Resources, Verbs []string
		}
	}
	if err := json.Unmarshal(body, &role); err != nil {
		t.Fatalf("testenv: clusterrole %s: %v", clusterRole, err)
	}
	for _, r := range role.Rules {
		if len(r.APIGroups) == 0 || len(r.Resources) == 0 || len(r.Verbs) == 0 {
			continue
		}
		if strings.Contains(r.Resources[0], "/") {
			continue // a subresource: keep the probe simple
		}
		attrs := map[string]string{"group": r.APIGroups[0], "resource": r.Resources[0], "verb": r.Verbs[0], "namespace": namespace}
		if attrs["group"] == "*" {
			attrs["group"] = ""
		}
		if attrs["resource"] == "*" {
			attrs["resource"] = "pods"
		}
		if attrs["verb"] == "*" {
			attrs["verb"] = "get"
		}
		if namespace == "" {
			attrs["namespace"] = "default"
		}
		review := map[string]any{
			"apiVersion": "authorization.k8s.io/v1",
			"kind":       "SubjectAccessReview",
			"spec": map[string]any{
				"user":               "testenv-probe",
				"groups":             []string{group},
				"resourceAttributes": attrs,
			},
		}
		var last string
		Eventually(t, 30*time.Second, func() bool {
			code, body, err := c.do(t.Context(), http.MethodPost, "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
			if err != nil || code != http.StatusCreated {
				last = fmt.Sprintf("%d %v %s", code, err, body)
				return false
			}
			var res struct{ Status struct{ Allowed bool } }
			last = string(body)
			return json.Unmarshal(body, &res) == nil && res.Status.Allowed
		}, "testenv: binding of %s to group %s not in force after 30s: %s", clusterRole, group, last)
		return
	}
	t.Fatalf("testenv: clusterrole %s has no resource rule to bind (an aggregated role is filled by aggregateClusterRoles only at start)", clusterRole)
}

// aggregateClusterRoles does once what kube-controller-manager's
// clusterrole-aggregation controller does continuously: it sets the rules
// of every ClusterRole with an aggregationRule to the union of the rules
// of the ClusterRoles its label selectors match. Without it the bootstrap
// roles view, edit and admin are empty. Passes repeat until nothing
// changes, since edit aggregates view and admin aggregates edit.
// matchExpressions are not evaluated (the bootstrap roles use only
// matchLabels): a selector with them matches nothing.
func (c *KubeCluster) aggregateClusterRoles(ctx context.Context) error {
	const path = "/apis/rbac.authorization.k8s.io/v1/clusterroles"
	type selector struct {
		MatchLabels      map[string]string `json:"matchLabels"`
		MatchExpressions []any             `json:"matchExpressions"`
	}
	type role struct {
		Metadata struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		AggregationRule *struct {
			ClusterRoleSelectors []selector `json:"clusterRoleSelectors"`
		} `json:"aggregationRule"`
		Rules []json.RawMessage `json:"rules"`
		raw   map[string]any
	}
	for pass := 0; pass < 5; pass++ {
		code, body, err := c.do(ctx, http.MethodGet, path, nil)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("list clusterroles: %d %v %s", code, err, body)
		}
		var list struct{ Items []json.RawMessage }
		if err := json.Unmarshal(body, &list); err != nil {
			return err
		}
		roles := make([]*role, len(list.Items))
		for i, item := range list.Items {
			roles[i] = &role{}
			if err := json.Unmarshal(item, roles[i]); err != nil {
				return err
			}
			if err := json.Unmarshal(item, &roles[i].raw); err != nil {
				return err
			}
		}
		changed := false
		for _, r := range roles {
			if r.AggregationRule == nil {
				continue
			}
			var rules []json.RawMessage
			seen := map[string]bool{}
			for _, sel := range r.AggregationRule.ClusterRoleSelectors {
				if len(sel.MatchExpressions) > 0 || len(sel.MatchLabels) == 0 {
					continue
				}
				for _, o := range roles {
					if o == r || !labelsMatch(o.Metadata.Labels, sel.MatchLabels) {
						continue
					}
					for _, rule := range o.Rules {
						if !seen[string(rule)] {
							seen[string(rule)] = true
							rules = append(rules, rule)
						}
					}
				}
			}
			before, _ := json.Marshal(r.Rules)
			after, _ := json.Marshal(rules)
			if bytes.Equal(before, after) || len(rules) == 0 {
				continue
			}
			r.raw["rules"] = rules
			code, body, err := c.do(ctx, http.MethodPut, path+"/"+r.Metadata.Name, r.raw)
			if err != nil || code != http.StatusOK {
				return fmt.Errorf("update clusterrole %s: %d %v %s", r.Metadata.Name, code, err, body)
			}
			changed = true
		}
		if !changed {
			return nil
		}
	}
	return errors.New("aggregated clusterroles still changing after 5 passes")
}

func labelsMatch(labels, want map[string]string) bool {
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}
