// Package sshproxy is Airlock's SSH gateway. Users connect with plain
// OpenSSH clients and a short-lived certificate from Airlock's user CA; the
// gateway checks it, asks an Authorizer (implemented by the server) whether
// the certificate's grant allows the requested login on the requested
// resource, and connects to the target's sshd with a per-session key and a
// certificate for exactly that login, valid for 2 minutes. It then relays
// shells, exec, sftp and scp, window changes, signals and exit status.
//
// Gateway implements airlock.Gateway, the contract the server holds every
// gateway by: the server applies each airlock.Revocation to it
// (Revocation.Apply calls CloseGrant, CloseUser or CloseSession with the
// revocation's airlock.EndReason).
//
// SSH user names take the form LOGIN@RESOURCE (ssh -l ubuntu@prod-web), or
// RESOURCE with the login carried in the certificate's
// airlock-login@airlock.dev extension. See ParseUsername.
//
// What the gateway enforces and records:
//
//   - Deny by default: only session channels with pty-req, env,
//     window-change, shell, exec, subsystem sftp, signal and break pass;
//     port forwarding (direct-tcpip, tcpip-forward) and agent forwarding
//     only when the Target allows them; X11 and other subsystems never.
//   - At most Target.MaxConcurrent live sessions per user and grant
//     (the policy's max_concurrent; 0 = unlimited), as pgproxy: one over
//     it is refused during authentication, before the target is dialled,
//     with the banner "airlock: too many concurrent sessions under this
//     grant (limit N); close one and retry", and audited as
//     session.denied with reason max_concurrent. The slot is taken
//     atomically and given back when the session ends.
//   - The session ends at Target.EndsAt (the grant's ends_at), on
//     CloseGrant, CloseUser, CloseSession or Shutdown, and after
//     Target.IdleTimeout without traffic; the user's terminal gets a
//     one-line notice first.
//   - Audit (durable, fail closed: an audit error closes the session):
//     session.started (with the upstream certificate's key ID, serial and
//     validity), session.denied (reason max_concurrent, or the message
//     the user got), ssh.shell, ssh.exec.start (before the
//     command is forwarded), ssh.exec (command and exit_status, when it
//     ends), ssh.subsystem, ssh.file_transfer, ssh.sftp (remove, mkdir,
//     rmdir, rename), ssh.port_forward, session.ended (reason, bytes,
//     recording and recording_sha256).
//   - File transfers: scp (legacy protocol, scp -O) is parsed on the wire
//     from the C/D/E lines of the sending side, one event per file before
//     its content is forwarded; sftp (the default of scp since OpenSSH 9
//     and of sftp) is followed from SSH_FXP_OPEN/READ/WRITE/CLOSE, one
//     event per file handle when it is closed, with the bytes read or
//     written through it.
//   - Recording: shells and pty sessions are recorded as asciicast v2 when
//     Target.Record is set (input too with Target.RecordInput); exec
//     without a pty (scp, rsync, bulk output) is audited but its data is
//     not recorded.
//   - Unauthenticated connections: Serve never stops on an accept error
//     (EMFILE, ECONNABORTED, …; it backs off 5 ms doubling to 1 s and
//     serves on, see netguard.Listener). A connection still in its key
//     exchange or authentication holds one of Config.Pending's slots (512
//     per listener, 32 per source address by default); one over either
//     bound is closed before the greeting. The handshake, including the
//     connection to the target, must finish within Config.HandshakeTimeout
//     (10 s by default); the slot is freed when it has. Refusals are
//     logged at most every 10 s, not audited (see netguard).
//
// The SSH protocol itself is golang.org/x/crypto/ssh; this package adds
// the policy, the parsers of request payloads, scp and sftp, and the relay.
package sshproxy
