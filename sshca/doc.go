// Package sshca is Airlock's SSH certificate authority: an ed25519 user CA
// that certifies the short-lived keys users and the gateway log in with, and
// a host CA that certifies the gateway's (and optionally targets') host keys.
//
// It also prints the lines an administrator pastes into a target
// (TrustedUserCAKeys, AuthorizedPrincipalsFile) and into a client's
// known_hosts (@cert-authority). Certificate encoding and signing are
// golang.org/x/crypto/ssh; this package only decides what goes into a
// certificate and checks what comes out.
package sshca
