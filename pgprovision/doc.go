// Package pgprovision makes and removes the per-grant PostgreSQL login
// roles of resources with ephemeral credentials (issue 18): a role named
// for the person and the grant (RoleName), with a random password, VALID
// UNTIL the grant's end, IN ROLE the access level's template and a
// connection limit (Create); at the grant's end every backend of the role
// is terminated, whatever it connected through, and the role's objects
// are reassigned to an owner before it is dropped (Drop); List finds the
// roles it made, for reconciliation.
//
// It imports no service: the access service will call it through a small
// interface defined where it is used. Every identifier is quoted with
// pgx.Identifier.Sanitize; the only literals written into statements are
// ones this package generates (a hex password, a timestamp, an integer).
//
// Not done yet (see the issue note): the access service calling it when a
// grant starts and ends, the sealed per-grant password in the store, the
// gateway logging in as the role, reconciliation with a store lease,
// `airlock admin resources check`, and `airlock db-credentials`.
package pgprovision
