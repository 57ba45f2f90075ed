// Package airlock is Airlock's domain: the types every other package speaks
// (User, Factor, LoginSession, Resource, AccessRequest, Grant, Session,
// Event), the storage contracts the sqlite and postgres packages implement,
// and the one coded Error type that the api package maps to HTTP status.
//
// It imports only the standard library. Adapters (sqlite/, postgres/,
// audit/, pgproxy/, …) implement or consume these contracts and never import
// each other; cmd/airlock wires them together.
package airlock
