// Package httpgw is the HTTP gateway: internal web apps (a logs UI, a
// dashboard, an admin panel, an internal API) behind a grant.
//
// Each app is served at its own host under the apps domain
// (grafana.apps.example.com), so its cookies, paths and absolute URLs keep
// working. A request is authenticated by the app cookie (browsers, set
// through the console's sign-in and a single-use code bound to the
// browser's state cookie) or by a bearer token with the "alh_" prefix
// (`airlock proxy http`), checked against the access level's rules, entered
// into the audit pipeline, and forwarded with the brokered credential and
// a signed identity assertion (IdentityHeader). Airlock's own cookie and
// token never reach the app; an app's cookies are kept on its own host.
//
// # Sessions
//
// A session is one token's use of one app on one node. It starts with the
// first request that presents the token there, runs every request and
// upgraded stream under its context, and ends at the grant's ends_at, on
// a revocation (CloseGrant, CloseUser, CloseSession), an idle timeout, a
// sign-out, an audit failure or shutdown: requests in flight are
// cancelled and WebSocket and Server-Sent-Events streams closed at once.
// A token is validated again every Config.Recheck, so a revocation that
// never reached this node still ends access within it.
//
// # Audit events
//
// All carry Actor {user id, name}, Resource, GrantID, SessionID and
// SourceAddr.
//
//   - session.started: access, ends_at, browser, host, upstream,
//     strict_audit.
//   - http.request, submitted before the request is forwarded (and, with
//     strict audit, durable before it is): n (the request's number in the
//     session), method, host, path, query (only when the policy keeps
//     parameters; otherwise query_omitted), content_length, upgrade.
//     Outcome denied with denied "access_level" or "max_concurrent" for a
//     request the gateway refused. Header values and bodies are never
//     logged.
//   - http.response, once the response (or stream) has ended: n, status,
//     bytes_in, bytes_out, duration_ms, error.
//   - session.ended: end_reason (an airlock.EndReason), requests,
//     bytes_in, bytes_out, duration_ms.
//
// A failed receipt ends the session with end reason audit_unavailable.
package httpgw
