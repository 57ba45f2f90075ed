// Package policy parses, validates and evaluates Airlock's policy as code.
//
// A policy is a typed YAML document (one file or a directory of *.yaml and
// *.yml files) that says who may request which resources, at which access
// level, for how long at most, who must approve, when requests are
// auto-approved, when break-glass is allowed, which second factors count and
// how gateway sessions behave. docs/policy.md is the reference.
//
// The schema is decoded by hand from yaml.Node trees (go.yaml.in/yaml/v3) so
// that every diagnostic names file:line:col, unknown keys are errors, and
// inline secrets are refused. The evaluator is hand-written rather than a
// general policy engine (such as cedar) because the decisions Airlock needs
// (duration bounds, approval counts, auto-approve windows, break-glass) are
// not authorization predicates, and because a decision must name the single
// rule that produced it.
//
// Everything but Load is pure: no I/O, no clock (Input carries Now), no
// globals. A *Policy returned by Parse is immutable and safe for concurrent
// use by many goroutines; Evaluate does not allocate on the allow path.
//
// Decision rules, in order:
//
//  1. Deny by default: no matching allow rule, no access.
//  2. A matching deny rule (subject, resource and access all match) wins over
//     every allow rule; the first in file order is reported.
//  3. Among matching allow rules the first in file order is chosen (for a
//     break-glass input: the first that allows break-glass), and its bounds
//     apply: a duration over its maximum is denied, naming the maximum.
package policy
