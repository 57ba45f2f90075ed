#!/usr/bin/env bash
# bench/spray.sh — does a password spray starve the server?
#
# Starts airlock on a temporary data dir, bootstraps an admin, then sprays
# password guesses against user "alice" at RATE/s (default 100) from
# 127.0.0.2 for DURATION seconds (default 20) while, from 127.0.0.1, it
# times GET /healthz and a legitimate password login of the admin every
# second. Prints the worst and median latencies. Password hashing runs on a
# bounded worker pool (GOMAXPROCS workers), so guesses queue instead of
# taking every core; the per-(user, address) throttle (5 attempts, then
# growing delays) rejects the spray cheaply, unchecked, once it trips.
set -euo pipefail
RATE=${RATE:-100}
DURATION=${DURATION:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d)
# Stop every background job (the server, the sprayer) on every exit path.
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM
cd "$ROOT"
go build -o "$TMP/airlock" ./cmd/airlock
go build -o "$TMP/spray" ./bench/cmd/spray
PORT=$((20000 + RANDOM % 20000))
"$TMP/airlock" server --data-dir "$TMP/data" --http-addr 127.0.0.1:$PORT --pg-addr "" --ssh-addr "" --http-apps-addr "" --kube-addr "" --mysql-addr "" 2>"$TMP/server.log" &
SRV=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
export AIRLOCK_HOME="$TMP/home"
A="$TMP/airlock --server http://127.0.0.1:$PORT"
$A bootstrap --token-file "$TMP/data/bootstrap.token" --user admin --password-stdin <<< 'legit admin password' >/dev/null
"$TMP/spray" -server "http://127.0.0.1:$PORT" -user alice -rate "$RATE" -for "${DURATION}s" -from 127.0.0.2 > "$TMP/spray.out" &
SPRAY=$!
sleep 1
: > "$TMP/health.ms"; : > "$TMP/login.ms"
for _ in $(seq $((DURATION - 2))); do
  curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$PORT/healthz" >> "$TMP/health.ms"
  curl -s -o /dev/null -w '%{time_total}\n' -H 'Content-Type: application/json' \
    -d '{"user":"admin","password":"legit admin password"}' "http://127.0.0.1:$PORT/api/v1/login" >> "$TMP/login.ms"
  sleep 1
done
wait $SPRAY
cat "$TMP/spray.out"
stats() { sort -n "$1" | awk '{a[NR]=$1} END {printf "median %.0f ms, worst %.0f ms (n=%d)\n", a[int((NR+1)/2)]*1000, a[NR]*1000, NR}'; }
echo "healthz during spray:          $(stats "$TMP/health.ms")"
echo "legitimate login during spray: $(stats "$TMP/login.ms")"
