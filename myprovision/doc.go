// Package myprovision makes and removes the per-grant MySQL/MariaDB users
// of resources with ephemeral credentials (issue 18), as pgprovision does
// for PostgreSQL: a user named for the person and the grant (UserName,
// at most 32 characters, MySQL's limit), with a random password, granted
// the access level's template role as its default role and limited to a
// number of connections (Create); at the grant's end the account is
// locked, every connection of it is killed, whatever it came through
// (Terminate), and it is dropped (Drop); List finds the users it made,
// for reconciliation.
//
// What MySQL lacks, and what stands in for it:
//   - no VALID UNTIL: the account lives until Airlock drops it at the
//     grant's end, or the reconciler does after a restart;
//   - no object ownership: tables a user creates belong to the schema,
//     and stay; views, routines, triggers and events it defines keep it
//     as DEFINER, and fail once it is dropped unless they are SQL
//     SECURITY INVOKER (the resource's owner option is not used).
//
// The password goes to the server only as its mysql_native_password hash
// (IDENTIFIED BY PASSWORD '*…'), never in the clear, so the server's logs
// cannot hold it. Names are quoted as identifiers (backticks, doubled
// inside); the only literals written into statements are ones this
// package makes (a hex hash, an integer). MariaDB 10.4 or later (ACCOUNT
// LOCK, roles); the tests run on Debian's MariaDB.
//
// It imports no service: the access service calls it through
// access.DBProvisioner, and cmd/airlock dials it.
package myprovision
