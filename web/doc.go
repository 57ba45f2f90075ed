// Package web serves Airlock's console from the same binary: sign-in
// (password, then TOTP, passkey or push), factor enrollment, access
// requests, grants with live countdowns, approvals with inline step-up,
// gateway sessions with SSH replay and database query views, audit search
// with chain verification, and the browser half of `airlock login --web`.
//
// Pages are server-rendered html/template with embedded assets; one plain
// script (static/console.js, no build step) adds progressive enhancements.
// Scripts and styles are external files so the Content-Security-Policy can
// forbid inline code; every state-changing request passes
// http.CrossOriginProtection. Handlers call the identity and access
// services directly; the script calls the JSON API with the HttpOnly
// session cookie.
package web
