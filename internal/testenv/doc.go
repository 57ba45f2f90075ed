// Package testenv starts real, throwaway servers for integration tests:
// a PostgreSQL cluster from the installed binaries (Postgres), a MariaDB
// server from the installed Debian binaries (MariaDB), a real sshd
// (SSHD), the HTTP gateway's upstream web app (StartHTTPApp, built from
// internal/testenv/httpapp), and a Kubernetes control plane of real
// etcd, kube-apiserver and kwok (Kube, built by scripts/kube-tools.sh; see
// docs/testing.md). The PostgreSQL, MariaDB and Kubernetes servers are
// started once per test binary and torn down by RunMain, which packages
// call from their TestMain; the others are stopped when their test ends.
//
// When a required binary is missing the test is skipped with a message
// that says what to install, unless the environment variable CI is set,
// in which case it fails: CI must never silently skip integration tests.
package testenv
