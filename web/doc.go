// Package web serves Airlock's browser pages from the same binary: the
// landing page and the WebAuthn ceremonies (register a passkey or security
// key, sign in with one) that need a browser. Templates and static files
// are embedded; scripts are external files so the Content-Security-Policy
// can forbid inline script.
package web
