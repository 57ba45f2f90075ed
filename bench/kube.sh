#!/usr/bin/env bash
# bench/kube.sh — the Kubernetes gateway, compared with the apiserver
# directly, on the throwaway cluster of internal/testenv (a real
# kube-apiserver and etcd, kwok for the node).
#
# One invocation builds the airlock binary (CGO_ENABLED=0, as shipped), the
# load generator (bench/cmd/httpload) and the plain reverse proxy
# (bench/cmd/plainproxy), then runs TestBenchKube in
# cmd/airlock (skipped unless AIRLOCK_BENCH_KUBE=1, so `make test` never
# runs it). That test makes the team, the kubernetes resource prod-k8s and
# alice's view grant as TestE2EKube does, then serves the data directory
# with the built binary as a process of its own and measures:
#
#   1. `kubectl get pods -n payments`, RUNS times per leg, interleaved:
#      directly (the gateway's impersonator token, --as alice --as-group
#      airlock-view: the cluster does the same impersonation work) and
#      through Airlock (alice's kubeconfig: the exec plugin, which reuses
#      its cached token, then the gateway); and `airlock kube-credential`
#      alone, the plugin's share.
#   2. GET /api/v1/namespaces/payments/pods with 1 and 16 keep-alive
#      clients for DURATION each, directly (impersonator token and
#      Impersonate-* headers), through the plain reverse proxy (TLS on its
#      listener, HTTP/2 to the apiserver, the same token and headers set
#      on every request, 8 KiB pooled copy buffers: the gateway's path
#      without the gateway) and through the gateway (a token minted by
#      `airlock kube-credential`), legs interleaved, ROUNDS times; the
#      table shows medians over the rounds.
#   3. WATCHES idle watches (GET …/pods?watch=1) through the gateway, then
#      through the plain proxy: each process's RSS growth
#      (/proc/PID/status) per watch.
#
# Environment: ROUNDS (default 3), DURATION (default 5s), WARMUP (default
# 1s), RUNS (default 50), WATCHES (default 200), LEGS (which legs run, default
# watches,kubectl,load), LOGS (a directory for the full test output and the
# server's log; default a temporary one, kept), PROFILE=DIR (builds the
# server with -tags benchpprof and writes there its heap and goroutine
# profiles while the idle watches are held, and a CPU profile of round 1's
# gateway legs at 1 and 16 clients).
#
# Needs: go, the Kubernetes test tools (scripts/kube-tools.sh builds them
# once into ~/.cache/airlock-testenv), oathtool.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-5s} WARMUP=${WARMUP:-1s} RUNS=${RUNS:-50} WATCHES=${WATCHES:-200} LEGS=${LEGS:-watches,kubectl,load}
LOGS=${LOGS:-$(mktemp -d /tmp/airlock-kubebench.XXXXXX)}
mkdir -p "$LOGS"
T=$(mktemp -d /tmp/airlock-kubebench-bin.XXXXXX)
trap 'rm -rf "$T"' EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "== bench/kube.sh: ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP RUNS=$RUNS WATCHES=$WATCHES LEGS=$LEGS, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== building airlock, httpload, plainproxy"
(cd "$ROOT" && CGO_ENABLED=0 go build ${PROFILE:+-tags benchpprof} -o "$T/" ./cmd/airlock ./bench/cmd/httpload ./bench/cmd/plainproxy)
if [ -n "${PROFILE:-}" ]; then
	mkdir -p "$PROFILE"
	PROFILE=$(cd "$PROFILE" && pwd)
	export PROFILE
fi

echo "== go test -run '^TestBenchKube\$' ./cmd/airlock (full output in $LOGS/test.log)"
set +e
(cd "$ROOT" && AIRLOCK_BENCH_KUBE=1 AIRLOCK_BENCH_BIN="$T/airlock" AIRLOCK_BENCH_HTTPLOAD="$T/httpload" AIRLOCK_BENCH_PLAINPROXY="$T/plainproxy" AIRLOCK_BENCH_LOGS="$LOGS" \
	go test -count=1 -v -timeout 30m -run '^TestBenchKube$' ./cmd/airlock) >"$LOGS/test.log" 2>&1
rc=$?
set -e
# The figures: the per-run lines and the report the test prints at its
# end (everything it prints that is not go test's own).
grep -v -E '^(=== RUN|=== PAUSE|=== CONT|--- (PASS|FAIL|SKIP)|PASS$|FAIL$|ok |FAIL\s)' "$LOGS/test.log" | grep -v -E '^\s+\S+_test\.go:[0-9]+:' || true
if [ "$rc" != 0 ]; then
	echo "bench/kube.sh: the benchmark failed (exit $rc); see $LOGS/test.log" >&2
	tail -40 "$LOGS/test.log" >&2
	exit "$rc"
fi
echo "== done; load average $(cut -d' ' -f1-3 /proc/loadavg); logs in $LOGS"
