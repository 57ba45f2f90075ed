#!/usr/bin/env bash
# bench/mysql.sh — sysbench through Airlock's MySQL gateway, compared with
# MariaDB directly, a plain TCP relay and the same relay ending TLS on both
# sides, in one run.
#
# One invocation builds the airlock binary (CGO_ENABLED=0, as shipped) and
# bench/cmd/tcprelay, then runs TestBenchMySQL in cmd/airlock (skipped
# unless AIRLOCK_BENCH_MYSQL=1, so `make test` never runs it). That test
# starts the throwaway MariaDB of internal/testenv, makes the team, the
# mysql resource prod-mysql and alice's write grant as TestE2EMySQL does
# (the policy lets one connect token open 64 connections: token_uses), then
# serves the data directory with the built binary as a process of its own
# and runs, ROUNDS times with the targets interleaved:
#
#   sysbench oltp_point_select and oltp_read_only at each of THREADS, for
#   DURATION each, against
#     direct    MariaDB
#     tcprelay  bench/cmd/tcprelay (two io.Copy per connection) → MariaDB
#     tlsrelay  tcprelay -mysql-tls: relays the greeting and SSLRequest,
#               then ends the client's TLS and opens its own to MariaDB
#               (verify-full), copying the plaintext between: the TLS
#               work the gateway does, without the gateway
#     gateway   airlock's MySQL gateway (a connect token minted through
#               the API per run; every statement audited into the real
#               hash-chained log) → MariaDB
#
# sysbench reaches every target over TLS (--mysql-ssl=on): the gateway
# requires it (and its client, MariaDB Connector/C, accepts the gateway's
# mysql_clear_password inside it), and MariaDB directly and through the
# relay the same way, so that no target's figures carry a cost the others
# do not. (sysbench 1.0 with TLS always presents a client certificate:
# internal/testenv's MariaDB trusts the CA of the one it issues.)
# DIRECT_SSL=off runs direct and tcprelay in plaintext, as before
# 2026-12-06. The gateway reaches MariaDB with UPSTREAM_SSLMODE
# (verify-full by default). The table shows medians over the rounds: TPS, latency p50/p95
# from sysbench's histogram, and the proxy process's CPU time per
# transaction (/proc/PID/stat utime+stime delta / transactions; for the
# gateway that is the whole airlock server, audit pipeline included); each
# run's line also gives the proxy's read and write system calls per
# transaction (/proc/PID/io; the TCP relay's splice copies are not counted).
#
# Environment: ROUNDS (default 3), DURATION (seconds, default 10), THREADS
# (default "1 8"), TESTS (default "oltp_point_select oltp_read_only"),
# TABLE_SIZE (default 10000), UPSTREAM_SSLMODE (default verify-full),
# DIRECT_SSL (default on; off: sysbench → direct and → tcprelay in
# plaintext), LOGS
# (a directory for the test output, the server's log and every sysbench
# output; default a temporary one, kept), PROFILE=DIR (builds the server
# with -tags benchpprof and writes its CPU profile of each gateway run of
# round 1 there; `go tool pprof -top FILE`).
#
# Needs: go, sysbench (apt-get install sysbench), mariadb-server and
# mariadb-client, oathtool.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-10} THREADS=${THREADS:-"1 8"} TESTS=${TESTS:-"oltp_point_select oltp_read_only"}
export TABLE_SIZE=${TABLE_SIZE:-10000} UPSTREAM_SSLMODE=${UPSTREAM_SSLMODE:-verify-full}
for tool in sysbench go oathtool; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "mysql.sh: $tool not found (apt-get install sysbench mariadb-server mariadb-client oathtool; Go from go.dev)" >&2
		exit 1
	}
done
LOGS=${LOGS:-$(mktemp -d /tmp/airlock-mysqlbench.XXXXXX)}
mkdir -p "$LOGS"
T=$(mktemp -d /tmp/airlock-mysqlbench-bin.XXXXXX)
trap 'rm -rf "$T"' EXIT

echo "== bench/mysql.sh: ROUNDS=$ROUNDS DURATION=$DURATION THREADS='$THREADS' TESTS='$TESTS' TABLE_SIZE=$TABLE_SIZE UPSTREAM_SSLMODE=$UPSTREAM_SSLMODE, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== building airlock, tcprelay"
(cd "$ROOT" && CGO_ENABLED=0 go build ${PROFILE:+-tags benchpprof} -o "$T/" ./cmd/airlock ./bench/cmd/tcprelay)
if [ -n "${PROFILE:-}" ]; then
	mkdir -p "$PROFILE"
	PROFILE=$(cd "$PROFILE" && pwd)
	export PROFILE
fi

echo "== go test -run '^TestBenchMySQL\$' ./cmd/airlock (full output in $LOGS/test.log)"
set +e
(cd "$ROOT" && AIRLOCK_BENCH_MYSQL=1 AIRLOCK_BENCH_DIRECT_SSL="${DIRECT_SSL:-on}" AIRLOCK_BENCH_BIN="$T/airlock" AIRLOCK_BENCH_TCPRELAY="$T/tcprelay" AIRLOCK_BENCH_LOGS="$LOGS" \
	CLK_TCK="$(getconf CLK_TCK)" go test -count=1 -v -timeout 60m -run '^TestBenchMySQL$' ./cmd/airlock) >"$LOGS/test.log" 2>&1
rc=$?
set -e
grep -v -E '^(=== RUN|=== PAUSE|=== CONT|--- (PASS|FAIL|SKIP)|PASS$|FAIL$|ok |FAIL\s)' "$LOGS/test.log" | grep -v -E '^\s+\S+_test\.go:[0-9]+:' || true
if [ "$rc" != 0 ]; then
	echo "bench/mysql.sh: the benchmark failed (exit $rc); see $LOGS/test.log" >&2
	tail -40 "$LOGS/test.log" >&2
	exit "$rc"
fi
echo "== done; load average $(cut -d' ' -f1-3 /proc/loadavg); logs in $LOGS"
