// Package testenv starts real, throwaway servers for integration tests:
// a PostgreSQL cluster from the installed binaries (Postgres). Servers are
// started once per test binary and torn down by RunMain, which packages
// call from their TestMain.
//
// When a required binary is missing the test is skipped with a message
// that says what to install, unless the environment variable CI is set,
// in which case it fails: CI must never silently skip integration tests.
package testenv
