// Package access is the heart of Airlock: resources, the applied policy,
// access requests and their reviews, grants that end by themselves,
// break-glass, connect tokens for the gateways and the revocation bus that
// tells gateways to cut sessions.
//
// Every state change is written to the audit log before it takes effect;
// if the log refuses, so does the change. A grant is active only while
// now < ends_at, compared against the stored time, so a grant whose end
// passed while the server was down is expired when it comes back; the
// sweeper only records that fact and fans it out.
package access
