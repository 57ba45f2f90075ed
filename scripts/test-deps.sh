#!/usr/bin/env bash
# Installs the Debian packages the test suite needs when they are missing.
# Only acts as root (CI and fresh machines); otherwise it just reports.
set -euo pipefail
need=()
command -v oathtool >/dev/null || need+=(oathtool)
command -v curl >/dev/null || need+=(curl) # airlock curl through the HTTP gateway
command -v gcc >/dev/null || need+=(gcc) # go test -race needs cgo
command -v chromium >/dev/null || need+=(chromium)
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null || need+=(openssh-client)
command -v psql >/dev/null || need+=(postgresql-client)
# The server package brings initdb, pg_ctl and pgbench (the fault tests' load).
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
elif ! ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1; then
  need+=(postgresql)
fi
# rsyslog and its GnuTLS stream driver for the SIEM stream tests
# (internal/testenv/rsyslog.go: imtcp over TCP and TLS).
command -v rsyslogd >/dev/null || [ -x /usr/sbin/rsyslogd ] || need+=(rsyslog)
ls /usr/lib/*/rsyslog/lmnsd_gtls.so >/dev/null 2>&1 || need+=(rsyslog-gnutls)
# MariaDB for the MySQL gateway's tests (internal/testenv/mariadb.go):
# mariadbd and mariadb-install-db from the server, the mariadb client.
command -v mariadb >/dev/null || need+=(mariadb-client)
command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
# The Debian package enables a system-wide mariadb on :3306 and starts it
# (unless policy-rc.d forbids, as in Docker-built images). The tests start
# their own throwaway server, so stop that one and keep it from starting at
# boot, with systemd or without.
stop_system_mariadb() {
  if [ -d /run/systemd/system ]; then
    systemctl disable --now mariadb >/dev/null 2>&1 || true
  else
    service mariadb stop >/dev/null 2>&1 || true
    update-rc.d mariadb disable >/dev/null 2>&1 || true
    if command -v systemctl >/dev/null; then
      systemctl disable mariadb >/dev/null 2>&1 || true # offline: removes the unit's symlinks
    fi
  fi
}
# Under CI the Kubernetes programs (kube-apiserver, kubectl, etcd, kwok)
# are built here, before go test, so no test timeout includes the build;
# a machine builds them once (scripts/kube-tools.sh caches them). Elsewhere
# nothing is built: the tests that need them skip, naming the script.
kube_tools() {
  if [ "${CI:-}" = "true" ]; then
    "$(dirname "$0")/kube-tools.sh" >/dev/null
  fi
}
if [ ${#need[@]} -eq 0 ]; then
  kube_tools
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "test dependencies missing: ${need[*]} (run as root, or: sudo apt-get install ${need[*]}); tests needing them will skip" >&2
  kube_tools
  exit 0
fi
echo "installing test dependencies: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
case " ${need[*]} " in *" mariadb-server "*) stop_system_mariadb ;; esac
kube_tools
