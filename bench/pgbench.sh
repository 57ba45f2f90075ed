#!/usr/bin/env bash
# bench/pgbench.sh — pgbench through Airlock's PostgreSQL gateway, compared
# with a direct connection, pgbouncer (session mode) and a plain TCP relay.
#
# One invocation does everything in a temporary directory: a throwaway
# PostgreSQL cluster (as the postgres OS user when run as root),
# `pgbench -i -s $SCALE`, then for each target select-only (-S) and the
# default TPC-B-like script at 1, 8 and 32 clients, and select-only with a
# new connection per transaction (-C) at 8 clients. Finally it opens
# $IDLE_CONNS idle connections through each proxy and reports the proxy's
# RSS growth per connection.
#
# Targets:
#   direct          pgbench → PostgreSQL
#   gateway         pgbench → airlock pgproxy (real audit pipeline: hash-chained
#                   log with group commit into SQLite) → PostgreSQL
#   gateway-strict  same, strict audit (results held until their events are durable)
#   pgbouncer       pgbench → pgbouncer (pool_mode=session) → PostgreSQL
#   gateway-guard   the gateway with statement guardrails on (20 statement rules,
#                   none matching: every statement parsed once, then served
#                   from the parse cache and checked against all 20); not in
#                   the default TARGETS
#   gateway-mask    gateway-guard plus column masks on two columns
#                   (pgbench_accounts.filler: mask, pgbench_tellers.filler: hash):
#                   the catalog read at each session's start, every
#                   RowDescription checked, a Describe before each Execute;
#                   not in the default TARGETS
#   gateway-count   the gateway with a counting audit sink instead of the log
#                   (not in the default TARGETS: it separates proxy cost from
#                   audit cost in the same run)
#   gateway-tls     the gateway reaching PostgreSQL over TLS (sslmode verify-full,
#                   a throwaway CA); not in the default TARGETS
#   pgbouncer-tls   pgbouncer reaching PostgreSQL over TLS the same way
#                   (server_tls_sslmode verify-full); not in the default TARGETS
#   tcprelay        pgbench → Go io.Copy relay → PostgreSQL
#   epollrelay      pgbench → Go relay on one epoll loop (no goroutine per
#                   message, pgbouncer's design) → PostgreSQL (Linux; not in
#                   the default TARGETS)
#
# Environment: DURATION (seconds per run, default 10), SCALE (default 10),
# CLIENTS (default "1 8 32"), CONNECT_CLIENTS (default 8), THREADS (pgbench
# -j cap, default 2), IDLE_CONNS (default 1000, 0 = skip), TARGETS (default
# all five), ROUNDS (default 1: repeat each test ROUNDS times, targets
# interleaved, and report the median — the machine's noise moves single
# runs by ±10 %), ONLY (regex: run only the tests whose name matches), AUDIT (sqlite = the real pipeline, default; count = a counting
# sink, to separate proxy cost from audit cost), KEEP=1 keeps the temporary
# directory, PGBENCH_FLAGS adds flags to every pgbench run (e.g. "-M prepared":
# the extended protocol with statements prepared once per connection, as ORMs
# and drivers do), PROFILE=DIR writes the gateways' CPU profiles there
# (gateway.pprof, gateway-strict.pprof; `go tool pprof -top FILE`).
#
# New connections (-C): direct and tcprelay start a PostgreSQL backend per
# connection, which costs several ms of CPU on a small machine (fork, page
# faults, exit), and pay pgbench's own SCRAM-SHA-256 login at PostgreSQL's
# 4096 iterations (libpq with OpenSSL 3: ~9 ms of CPU per connection here).
# The gateway, like the server, asks plaintext loopback clients for a SCRAM
# proof of their token (16 iterations) and reuses upstream backends after
# DISCARD ALL (UPSTREAM_IDLE=0 turns that off); pgbouncer reuses its server
# connections. The gateway's proxy CPU per transaction is printed beside
# each result (from /proc/PID/stat).
#
# Needs: initdb/pg_ctl/postgres, pgbench, psql, pgbouncer, go.
set -euo pipefail

DURATION=${DURATION:-10}
SCALE=${SCALE:-10}
CLIENTS=${CLIENTS:-"1 8 32"}
CONNECT_CLIENTS=${CONNECT_CLIENTS:-8}
THREADS=${THREADS:-2}
IDLE_CONNS=${IDLE_CONNS:-1000}
TARGETS=${TARGETS:-"direct gateway gateway-strict pgbouncer tcprelay"}
AUDIT=${AUDIT:-sqlite}
ROUNDS=${ROUNDS:-1}
if ! [[ $ROUNDS =~ ^[1-9][0-9]*$ ]]; then
	echo "pgbench.sh: ROUNDS must be a whole number ≥ 1 (got '$ROUNDS')" >&2
	exit 1
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
for tool in initdb pg_ctl pgbench psql pgbouncer go openssl; do
	if ! command -v "$tool" >/dev/null 2>&1 && ! [ -x "/usr/lib/postgresql/15/bin/$tool" ]; then
		echo "pgbench.sh: $tool not found (apt-get install postgresql postgresql-contrib pgbouncer; Go from go.dev)" >&2
		exit 1
	fi
done
PATH=$PATH:/usr/lib/postgresql/15/bin
# The cluster serves TLS (for the *-tls targets), and libpq's default
# sslmode=prefer would then encrypt direct and relayed runs: every client
# connection in this script is plaintext, like the gateway's loopback one.
export PGSSLMODE=disable

# 1000 idle connections need more descriptors than the usual 1024 (pgbouncer
# and the proxies inherit this limit).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

T=$(mktemp -d /tmp/airlock-pgbench.XXXXXX)
chmod 755 "$T"
PIDS=()
as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
	set +e
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
	for f in "$T/pgbouncer.pid" "$T/pgbouncer-tls.pid"; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
	[ -d "$T/data" ] && as_pg pg_ctl -D "$T/data" -m fast -w stop >/dev/null 2>&1
	if [ "${KEEP:-}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BASE=$((20000 + RANDOM % 20000))
PGPORT=$BASE GW=$((BASE + 1)) GWS=$((BASE + 2)) BOUNCER=$((BASE + 3)) RELAY=$((BASE + 4)) ERELAY=$((BASE + 5)) GWC=$((BASE + 6)) GWT=$((BASE + 7)) BOUNCERT=$((BASE + 8)) GWG=$((BASE + 9)) GWM=$((BASE + 10))
PW=bench-pw-$RANDOM$RANDOM
TOKEN=bench-token

echo "== building (go build ./bench/cmd/...)"
(cd "$ROOT" && CGO_ENABLED=0 go build -o "$T/bin/" ./bench/cmd/...)

echo "== PostgreSQL cluster in $T (port $PGPORT)"
# A throwaway CA and server certificate: the *-tls targets reach
# PostgreSQL over TLS with sslmode verify-full against this CA.
mkdir -p "$T/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
	-keyout "$T/tls/ca.key" -out "$T/tls/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
	-keyout "$T/tls/server.key" -out "$T/tls/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$T/tls/san.ext"
openssl x509 -req -in "$T/tls/server.csr" -CA "$T/tls/ca.crt" -CAkey "$T/tls/ca.key" -CAcreateserial -days 2 \
	-extfile "$T/tls/san.ext" -out "$T/tls/server.crt" 2>/dev/null
chmod 600 "$T/tls/server.key"
[ "$(id -u)" = 0 ] && chown -R postgres "$T/tls"
mkdir -p "$T/sock"
[ "$(id -u)" = 0 ] && chown postgres "$T" "$T/sock"
as_pg initdb -D "$T/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 >"$T/initdb.log"
cat >>"$T/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$T/sock'
max_connections = $((IDLE_CONNS + 200))
shared_buffers = 256MB
synchronous_commit = off
ssl = on
ssl_cert_file = '$T/tls/server.crt'
ssl_key_file = '$T/tls/server.key'
CONF
as_pg pg_ctl -D "$T/data" -l "$T/postgres.log" -w start >/dev/null
as_pg psql -X -q -h "$T/sock" -p "$PGPORT" -U postgres -c "CREATE ROLE bench LOGIN PASSWORD '$PW'" -c "CREATE DATABASE bench OWNER bench"
PGPASSWORD=$PW pgbench -i -q -s "$SCALE" -h 127.0.0.1 -p "$PGPORT" -U bench bench >"$T/init.log" 2>&1

wait_ready() { # file
	for _ in $(seq 1 1200); do
		grep -q ready "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "pgbench.sh: $1 never became ready:" >&2
	cat "$1" >&2
	exit 1
}

echo "== starting proxies"
UPSTREAM_PASSWORD=$PW "$T/bin/pgbench-gateway" -listen "127.0.0.1:$GW" -upstream "127.0.0.1:$PGPORT" \
	-user bench -db bench -token "$TOKEN" -audit "$AUDIT" ${PROFILE:+-cpuprofile "$PROFILE/gateway.pprof"} -data-dir "$(mkdir -p "$T/gw" && echo "$T/gw")" >"$T/gw.out" 2>"$T/gw.err" &
GW_PID=$!
PIDS+=("$GW_PID")
UPSTREAM_PASSWORD=$PW "$T/bin/pgbench-gateway" -listen "127.0.0.1:$GWS" -upstream "127.0.0.1:$PGPORT" \
	-user bench -db bench -token "$TOKEN" -audit "$AUDIT" -strict ${PROFILE:+-cpuprofile "$PROFILE/gateway-strict.pprof"} -data-dir "$(mkdir -p "$T/gws" && echo "$T/gws")" >"$T/gws.out" 2>"$T/gws.err" &
GWS_PID=$!
PIDS+=("$GWS_PID")
UPSTREAM_PASSWORD=$PW "$T/bin/pgbench-gateway" -listen "127.0.0.1:$GWG" -upstream "127.0.0.1:$PGPORT" \
	-user bench -db bench -token "$TOKEN" -audit "$AUDIT" -guard ${PROFILE:+-cpuprofile "$PROFILE/gateway-guard.pprof"} -data-dir "$(mkdir -p "$T/gwg" && echo "$T/gwg")" >"$T/gwg.out" 2>"$T/gwg.err" &
GWG_PID=$!
PIDS+=("$GWG_PID")
UPSTREAM_PASSWORD=$PW "$T/bin/pgbench-gateway" -listen "127.0.0.1:$GWM" -upstream "127.0.0.1:$PGPORT" \
	-user bench -db bench -token "$TOKEN" -audit "$AUDIT" -guard -mask ${PROFILE:+-cpuprofile "$PROFILE/gateway-mask.pprof"} -data-dir "$(mkdir -p "$T/gwm" && echo "$T/gwm")" >"$T/gwm.out" 2>"$T/gwm.err" &
GWM_PID=$!
PIDS+=("$GWM_PID")
UPSTREAM_PASSWORD=$PW "$T/bin/pgbench-gateway" -listen "127.0.0.1:$GWC" -upstream "127.0.0.1:$PGPORT" \
	-user bench -db bench -token "$TOKEN" -audit count ${PROFILE:+-cpuprofile "$PROFILE/gateway-count.pprof"} -data-dir "$(mkdir -p "$T/gwc" && echo "$T/gwc")" >"$T/gwc.out" 2>"$T/gwc.err" &
GWC_PID=$!
PIDS+=("$GWC_PID")
UPSTREAM_PASSWORD=$PW "$T/bin/pgbench-gateway" -listen "127.0.0.1:$GWT" -upstream "127.0.0.1:$PGPORT" \
	-user bench -db bench -token "$TOKEN" -audit "$AUDIT" -upstream-sslmode verify-full -upstream-sslrootcert "$T/tls/ca.crt" \
	${PROFILE:+-cpuprofile "$PROFILE/gateway-tls.pprof"} -data-dir "$(mkdir -p "$T/gwt" && echo "$T/gwt")" >"$T/gwt.out" 2>"$T/gwt.err" &
GWT_PID=$!
PIDS+=("$GWT_PID")
"$T/bin/tcprelay" -listen "127.0.0.1:$RELAY" -upstream "127.0.0.1:$PGPORT" >"$T/relay.out" 2>&1 &
RELAY_PID=$!
PIDS+=("$RELAY_PID")
"$T/bin/epollrelay" -listen "127.0.0.1:$ERELAY" -upstream "127.0.0.1:$PGPORT" >"$T/erelay.out" 2>&1 &
ERELAY_PID=$!
PIDS+=("$ERELAY_PID")
cat >"$T/pgbouncer.ini" <<INI
[databases]
bench = host=127.0.0.1 port=$PGPORT dbname=bench
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER
unix_socket_dir =
auth_type = plain
auth_file = $T/userlist.txt
pool_mode = session
server_tls_sslmode = disable
max_client_conn = $((IDLE_CONNS + 100))
default_pool_size = $((IDLE_CONNS + 100))
logfile = $T/pgbouncer.log
pidfile = $T/pgbouncer.pid
INI
echo "\"bench\" \"$PW\"" >"$T/userlist.txt"
# pgbouncer-tls: the same, reaching PostgreSQL over TLS (verify-full).
sed -e "s/^listen_port = .*/listen_port = $BOUNCERT/" -e "s#^logfile = .*#logfile = $T/pgbouncer-tls.log#" \
	-e "s#^pidfile = .*#pidfile = $T/pgbouncer-tls.pid#" "$T/pgbouncer.ini" >"$T/pgbouncer-tls.ini"
sed -i "s#^server_tls_sslmode = .*#server_tls_sslmode = verify-full\nserver_tls_ca_file = $T/tls/ca.crt#" "$T/pgbouncer-tls.ini"
[ "$(id -u)" = 0 ] && chown postgres "$T/pgbouncer.ini" "$T/pgbouncer-tls.ini" "$T/userlist.txt"
# runuser resets the soft descriptor limit: raise it again for pgbouncer.
as_pg bash -c "ulimit -n $(ulimit -Hn); exec pgbouncer -d -q '$T/pgbouncer.ini'"
as_pg bash -c "ulimit -n $(ulimit -Hn); exec pgbouncer -d -q '$T/pgbouncer-tls.ini'"
wait_ready "$T/gw.out"
wait_ready "$T/gws.out"
wait_ready "$T/gwg.out"
wait_ready "$T/gwm.out"
wait_ready "$T/gwc.out"
wait_ready "$T/gwt.out"
wait_ready "$T/relay.out"
wait_ready "$T/erelay.out"
for _ in $(seq 1 100); do [ -s "$T/pgbouncer.pid" ] && break; sleep 0.1; done
BOUNCER_PID=$(cat "$T/pgbouncer.pid")
for _ in $(seq 1 100); do [ -s "$T/pgbouncer-tls.pid" ] && break; sleep 0.1; done
BOUNCERT_PID=$(cat "$T/pgbouncer-tls.pid")

# conn TARGET → "port user password"
conn() {
	case $1 in
	direct) echo "$PGPORT bench $PW" ;;
	gateway) echo "$GW alice $TOKEN" ;;
	gateway-strict) echo "$GWS alice $TOKEN" ;;
	gateway-guard) echo "$GWG alice $TOKEN" ;;
	gateway-mask) echo "$GWM alice $TOKEN" ;;
	gateway-count) echo "$GWC alice $TOKEN" ;;
	gateway-tls) echo "$GWT alice $TOKEN" ;;
	pgbouncer-tls) echo "$BOUNCERT bench $PW" ;;
	pgbouncer) echo "$BOUNCER bench $PW" ;;
	tcprelay) echo "$RELAY bench $PW" ;;
	epollrelay) echo "$ERELAY bench $PW" ;;
	esac
}

TESTS=()
for c in $CLIENTS; do TESTS+=("select-only:$c:-S"); done
for c in $CLIENTS; do TESTS+=("tpcb-like:$c:"); done
TESTS+=("select-only-connect:$CONNECT_CLIENTS:-S -C")
if [ -n "${ONLY:-}" ]; then # keep only the tests whose name matches the regex $ONLY
	kept=()
	for test in "${TESTS[@]}"; do [[ ${test%%:*} =~ $ONLY ]] && kept+=("$test"); done
	TESTS=("${kept[@]}")
fi

# proxy_pid TARGET → the proxy's process id (none for direct).
proxy_pid() {
	case $1 in
	gateway) echo "$GW_PID" ;;
	gateway-strict) echo "$GWS_PID" ;;
	gateway-guard) echo "$GWG_PID" ;;
	gateway-mask) echo "$GWM_PID" ;;
	gateway-count) echo "$GWC_PID" ;;
	gateway-tls) echo "$GWT_PID" ;;
	pgbouncer-tls) echo "$BOUNCERT_PID" ;;
	pgbouncer) echo "$BOUNCER_PID" ;;
	tcprelay) echo "$RELAY_PID" ;;
	epollrelay) echo "$ERELAY_PID" ;;
	esac
}
# cpu_ticks PID → user+system CPU time of the process in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# median of the numbers given as arguments
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{printf "%.1f\n", (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

declare -A TPS RUNS
for test in "${TESTS[@]}"; do
	IFS=: read -r name c flags <<<"$test"
	j=$((c < THREADS ? c : THREADS))
	for round in $(seq 1 "$ROUNDS"); do
		for target in $TARGETS; do
			read -r port user pass <<<"$(conn "$target")"
			ppid=$(proxy_pid "$target")
			[ -n "$ppid" ] && t0=$(cpu_ticks "$ppid")
			# shellcheck disable=SC2086
			out=$(PGPASSWORD=$pass pgbench -n -h 127.0.0.1 -p "$port" -U "$user" -T "$DURATION" -c "$c" -j "$j" $flags ${PGBENCH_FLAGS:-} bench 2>&1) || {
				echo "pgbench failed for $target $name c=$c:" >&2
				echo "$out" >&2
				exit 1
			}
			tps=$(awk '/^tps = /{print $3; exit}' <<<"$out")
			RUNS["$name:$c:$target"]="${RUNS["$name:$c:$target"]:-} $tps"
			# The proxy's own CPU time per transaction (µs): what it costs
			# beside the database and pgbench on the same cores.
			cpu=""
			if [ -n "$ppid" ]; then
				txns=$(awk '/^number of transactions actually processed: /{print $6; exit}' <<<"$out")
				cpu=$(awk -v a="$t0" -v b="$(cpu_ticks "$ppid")" -v hz="$HZ" -v n="$txns" 'BEGIN{if (n > 0) printf "%.0f", (b-a)/hz*1e6/n}')
			fi
			# -C: pgbench also reports the average time to open a connection.
			conn_ms=$(awk '/^average connection time = /{print $5; exit}' <<<"$out")
			printf '  %-22s c=%-3s %-15s %10.1f tps%s%s\n' "$name" "$c" "$target" "$tps" "${cpu:+  proxy CPU ${cpu} µs/txn}" "${conn_ms:+  (connect ${conn_ms} ms)}"
		done
	done
	for target in $TARGETS; do
		# shellcheck disable=SC2086
		TPS["$name:$c:$target"]=$(median ${RUNS["$name:$c:$target"]})
	done
done

echo
echo "== TPS (ratio to direct), ${DURATION}s per run$([ "$ROUNDS" -gt 1 ] && echo ", median of $ROUNDS interleaved rounds"), scale $SCALE, audit $AUDIT, $(nproc) CPUs"
printf '%-26s' "test"
for target in $TARGETS; do printf '%-22s' "$target"; done
echo
for test in "${TESTS[@]}"; do
	IFS=: read -r name c _ <<<"$test"
	printf '%-26s' "$name c=$c"
	d=${TPS["$name:$c:direct"]:-}
	for target in $TARGETS; do
		v=${TPS["$name:$c:$target"]}
		if [ -n "$d" ]; then
			printf '%-22s' "$(awk -v v="$v" -v d="$d" 'BEGIN{printf "%.0f (%.2f)", v, v/d}')"
		else
			printf '%-22s' "$(printf '%.0f' "$v")"
		fi
	done
	echo
done

# Added latency per transaction against direct, for the 1-client tests
# (pgbench runs one transaction at a time there, so 1/TPS is its latency).
for test in "${TESTS[@]}"; do
	IFS=: read -r name c _ <<<"$test"
	d=${TPS["$name:$c:direct"]:-}
	[ "$c" = 1 ] && [ -n "$d" ] || continue
	printf '%-26s' "$name c=1 added µs"
	for target in $TARGETS; do
		printf '%-22s' "$(awk -v v="${TPS["$name:$c:$target"]}" -v d="$d" 'BEGIN{printf "%+.0f", 1e6/v - 1e6/d}')"
	done
	echo
done

rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
if [ "$IDLE_CONNS" -gt 0 ]; then
	echo
	echo "== memory per idle connection ($IDLE_CONNS idle connections, RSS delta of the proxy process)"
	for target in gateway tcprelay pgbouncer; do # pgbouncer last: it keeps its server connections
		case $target in
		gateway) pid=$GW_PID ;;
		pgbouncer) pid=$BOUNCER_PID ;;
		tcprelay) pid=$RELAY_PID ;;
		esac
		read -r port user pass <<<"$(conn "$target")"
		# Let the previous target's backends exit first (max_connections).
		for _ in $(seq 1 600); do
			n=$(as_pg psql -X -Atq -h "$T/sock" -p "$PGPORT" -U postgres -c "SELECT count(*) FROM pg_stat_activity WHERE usename = 'bench'")
			[ "$n" -lt 5 ] && break
			sleep 0.1
		done
		before=$(rss_kb "$pid")
		rm -f "$T/hold" && mkfifo "$T/hold"
		"$T/bin/idleconns" -n "$IDLE_CONNS" -dsn "postgres://$user:$pass@127.0.0.1:$port/bench?sslmode=disable" <"$T/hold" >"$T/idle.out" 2>&1 &
		idle_pid=$!
		exec 3>"$T/hold"
		for _ in $(seq 1 6000); do
			grep -q ready "$T/idle.out" && break
			kill -0 "$idle_pid" 2>/dev/null || break
			sleep 0.1
		done
		if ! grep -q ready "$T/idle.out"; then
			echo "idleconns failed for $target:" >&2
			cat "$T/idle.out" >&2
			exit 1
		fi
		after=$(rss_kb "$pid")
		exec 3>&-
		wait "$idle_pid"
		printf '  %-12s RSS %7d KiB → %7d KiB: %6.1f KiB per idle connection\n' "$target" "$before" "$after" \
			"$(awk -v a="$after" -v b="$before" -v n="$IDLE_CONNS" 'BEGIN{print (a-b)/n}')"
	done
fi
