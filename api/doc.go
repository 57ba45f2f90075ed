// Package api is Airlock's JSON HTTP API (under /api/v1) and the Go client
// the CLI uses. Errors travel as {"error":{"code","message","details"}};
// codes map to HTTP status in exactly one table (statusOf). Internal error
// details are logged, never sent.
package api
