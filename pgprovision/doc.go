// Package pgprovision makes and removes the per-grant PostgreSQL login
// roles of resources with ephemeral credentials (issue 18): a role named
// for the person and the grant (RoleName), with a random password, VALID
// UNTIL the grant's end, IN ROLE the access level's template and a
// connection limit (Create); at the grant's end every backend of the role
// is terminated, whatever it connected through, and the role's objects
// are reassigned to an owner before it is dropped (Drop); List finds the
// roles it made, for reconciliation. Pools keeps the provisioning
// connections per resource and credential (pgxpool), so that activation
// does not log in each time; a rotation or removal closes them.
//
// It imports no service: the access service calls it through
// access.DBProvisioner (access/ephemeral.go), and cmd/airlock dials it.
// Every identifier is quoted with pgx.Identifier.Sanitize; the only
// literals written into statements are ones this package generates (a hex
// password, a timestamp, an integer).
package pgprovision
