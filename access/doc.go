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
//
// A request is judged against the policy in force at each review and again
// when its grant is made, not against the policy it was filed under (see
// Service.Review). A request the policy no longer allows is left as it
// was, pending until it expires or is denied; no event claims otherwise.
//
// Every refusal of a door is an audit event with outcome denied and its
// reason in details.why:
//
//   - request.refused: policy does not allow a new request
//   - request.review_refused: an approval or denial refused (own request,
//     not pending, not an approver, no longer allowed, wrong OTP, MFA not
//     fresh, no such request)
//   - grant.refused: a grant not made because the policy in force, the
//     requester or the resource changed since the request
//   - breakglass.refused, breakglass.acknowledge_refused
//   - connect.refused: a connect token or SSH certificate not issued (no
//     grant, no longer allowed, wrong OTP, MFA not fresh), or a connect
//     token not accepted by a gateway
//
// Resources with ephemeral credentials (ephemeral.go) audit
// db.role.created, db.role.create_failed, db.role.terminated,
// db.role.dropped and db.role.drop_failed (docs/postgres.md).
//
// Wrong codes are also audited by the identity service as
// mfa.verify_failed, lockouts as auth.lockout and login.locked.
package access
