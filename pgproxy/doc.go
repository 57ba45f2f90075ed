// Package pgproxy is Airlock's PostgreSQL gateway: a protocol v3 proxy
// that authenticates people with connect tokens, opens the upstream
// database with the brokered credential of their grant, audits every
// statement on the wire and cuts the session when the grant ends or is
// revoked.
//
// # Wiring
//
//	g, err := pgproxy.New(pgproxy.Config{
//		Addr: "127.0.0.1:7432", TLS: serverTLS, AllowLoopbackPlaintext: true,
//		Auth: authn, Audit: pipeline, Sessions: store, Logger: log, Node: hostname,
//	})
//	go g.ListenAndServe(ctx)          // or g.Serve(ctx, ln)
//	bus.Subscribe(func(r airlock.Revocation) { r.Apply(g) }) // g is an airlock.Gateway
//	defer g.Shutdown(shutdownCtx)
//
// Gateway implements airlock.Gateway, the contract the server holds every
// gateway by: CloseGrant, CloseUser and CloseSession with an
// airlock.EndReason, ActiveSessions, Shutdown.
//
// # Client side
//
// The startup "user" is the Airlock user name, "database" the resource
// name (optionally "resource/dbname"); the password is a connect token.
// Inside TLS (SSLRequest, Config.TLS) the gateway asks for it with
// AuthenticationCleartextPassword. Plaintext is accepted only from a
// loopback peer when Config.AllowLoopbackPlaintext is set; then, if the
// Authenticator is a SCRAMAuthenticator, the client proves the token with
// SASL SCRAM-SHA-256 (auth.SCRAMServer) against the verifiers of its live
// tokens and never sends it. GSSENCRequest is declined. Every
// authentication failure yields the same FATAL 28P01 "airlock: invalid or
// expired connect token …", except a *Refusal from the Authenticator (a
// valid token for a database the resource does not open, say): its FATAL
// (42501 by default) says what was refused and what is allowed; and
// except when the Authenticator could not check the token because the
// store is down or full (it returns EUNAVAILABLE, for valid and invalid
// tokens alike): then FATAL 57P03 "airlock: store unavailable — retry;
// GET /readyz on the Airlock server shows when it is back".
//
// Startup parameters other than user and database are a closed list,
// StartupParameters (application_name, client_encoding, DateStyle,
// extra_float_digits, IntervalStyle, TimeZone; names compared without
// case). Anything else — options (PGOPTIONS, -c role=…), role,
// session_authorization, search_path, replication — is refused before the
// token is asked for, with FATAL 28000 "airlock: the startup parameter "…"
// is not allowed through the gateway; set it with SET after connecting
// (allowed at startup: …)". A Target with ApplicationName set (a
// resource with ephemeral credentials: airlock:<user>:<grant>) replaces
// the client's application_name upstream.
//
// Clients get their own random BackendKeyData; a CancelRequest carrying
// it is forwarded to the upstream backend with the upstream's key, which
// never leaves the gateway.
//
// # Upstream
//
// Upstreams with TLS (Target.UpstreamTLS, built by UpstreamTLSConfig from a
// resource's libpq-style sslmode and CA certificates; no plaintext
// fallback) or with
// a password that is not printable ASCII are opened by pgconn (SCRAM-SHA-256
// with channel binding, MD5 or trust), which is then hijacked. Other
// upstreams are logged in by the gateway itself (SCRAM-SHA-256 with the
// server signature checked, MD5, cleartext or trust), which derives the
// SCRAM keys of a credential once and caches them (bounded, in memory), so a
// new session costs no PBKDF2. Either way the gateway then relays raw bytes.
// A cleartext password request (AuthenticationCleartextPassword) is refused
// without sending the password unless the upstream is TLS with a verified
// certificate (verify-full; verify-ca only with the resource's own CA
// certificates, not the system's roots) or Target.AllowCleartextPassword is
// set (libpq's require_auth=!password); the client gets FATAL 28000
// "airlock: the resource's database asked for a cleartext password over a
// connection whose server certificate is not verified; refused …". MD5 and
// SCRAM never disclose the password and are always answered.
// The allowed client startup parameters pass through.
// Target.ReadOnly adds default_transaction_read_only=on; that
// is a second layer only — the upstream role's privileges are the
// protection, since a client may SET the parameter back.
//
// With Config.UpstreamIdle, a backend whose client sent Terminate while it
// was idle is reset with DISCARD ALL and kept for the next session with
// the same login (address, role, password, startup parameters and, for
// TLS, Target.UpstreamTLSKey; a TLS target without a key is never kept).
//
// # Relay
//
// Each direction reads through a 32 KiB bufio.Reader, parses the 5-byte
// header and only the bodies it must inspect (client: Query, Parse, Bind,
// Execute, Close, FunctionCall; server: CommandComplete, ErrorResponse),
// copies everything else byte for byte without re-encoding, and flushes
// its 16 KiB writer whenever its reader would block. Results stream; a
// million-row result is never held in memory. Client messages are limited
// to Config.MaxMessageSize (64 MiB) after authentication and 1 MiB before;
// an oversized or malformed message, or a message type a frontend must not
// send, ends the session with FATAL 08P01.
//
// # Audit events
//
// All events but connect.refused carry Actor {Target.UserID,
// Target.UserName}, Resource, GrantID, SessionID and SourceAddr.
//
//   - session.started (success): access, tls, read_only, strict_audit, ends_at,
//     application_name, upstream_pid, upstream_reused, upstream_tls.
//   - session.ended (success): duration_ms, bytes_in, bytes_out,
//     statements (simple queries + executes + function calls), end_reason
//     (an airlock.EndReason: client_closed, client_terminated,
//     upstream_closed, upstream_protocol_violation, grant_expired,
//     grant_revoked, user_disabled, session_killed, idle_timeout,
//     audit_unavailable, protocol_violation, server_shutdown, or the
//     reason passed to Close*).
//   - session.denied (denied): reason grant_expired, max_concurrent,
//     upstream_unavailable or upstream_cleartext_refused, for a token that
//     was valid. Invalid tokens and Refusals are the Authenticator's to
//     audit.
//   - connect.refused (denied), before authentication, for startup
//     parameters that are not allowed: Actor {Name: the startup user},
//     Resource (the part of the startup database before "/"), SourceAddr;
//     details why "startup parameter not allowed", parameter. Anyone can
//     cause it, so only the first per source address (IPv6 /64) and 10 s
//     is written; every refusal is counted in the connections metric.
//   - db.query (success), submitted before the message is forwarded:
//     kind "query" (simple Query text), "parse" (name, text), "execute"
//     (name, portal, parse_stmt = the stmt number of the Parse it runs,
//     the statement text again, and params when Target.LogParameters) or
//     "function_call" (function_oid). stmt numbers events within the
//     session from 1. Text over 8 KiB is cut; truncated, text_bytes and
//     statement_sha256 (of the full text) say so.
//   - db.copy (success) when a COPY completes: stmt, direction (in, out,
//     both), rows (from the CommandComplete tag).
//   - db.error (failure) for each ErrorResponse from the server,
//     submitted before it is relayed: stmt (the request it answers, 0 if
//     none), sqlstate, severity, message (cut at 1 KiB).
//   - db.cancel (success) when a cancel request was forwarded.
//
// Every receipt is watched in order; the first failed receipt closes the
// session (FATAL 57P01 "airlock: audit log unavailable — session closed",
// end reason audit_unavailable). With Target.StrictAudit no byte from the
// server reaches the client before the receipts of all events submitted
// before it are durable; on a kill with receipts failed or still
// outstanding the held output is dropped, not flushed, and the FATAL is
// still sent when the client is between messages (it is not when part of
// a message already reached it: the connection is then just closed).
//
// # Unauthenticated connections
//
// Serve never stops on an accept error: on EMFILE, ENFILE, ECONNABORTED
// or any other error but a closed listener it backs off (5 ms doubling to
// 1 s) and serves on (netguard.Listener). A connection still in its
// handshake (TLS, startup, authentication) holds one of Config.Pending's
// slots — at most 512 per listener and 32 per source address by default —
// and a connection over either bound gets FATAL 53300 "airlock: too many
// pending connections; try again shortly" before anything is read, and is
// closed. The slot is freed once the client has authenticated. TLS,
// startup, authentication and the upstream connect must complete within
// Config.HandshakeTimeout (10 s by default). Refusals are counted in
// airlock_pg_connections_total{result="too_many_pending"} and logged at
// most every 10 s, not audited: they have no actor yet (see netguard).
//
// # Enforcement
//
// A session's deadline is Target.EndsAt. At that time, or on CloseGrant,
// CloseUser, CloseSession or Shutdown, the gateway interrupts both
// directions, lets the message in flight finish (at most 0.5 s), sends a
// FATAL 57P01 with the reason ("airlock: grant expired at <RFC3339> —
// session closed", "airlock: grant revoked — session closed", …) and
// closes both sides; the client gets at most 1 s to take it. Idle
// sessions (no traffic and no request in flight for Target.IdleTimeout)
// end with FATAL 57P05. Target.MaxConcurrent bounds live sessions per
// user and grant on this gateway (FATAL 53300 for the extra one).
//
// Protocol code is written against pgproto3 message definitions; the
// relay framing is by hand because pgproto3's Frontend/Backend decode and
// re-encode every message.
package pgproxy
