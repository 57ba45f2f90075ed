#!/usr/bin/env bash
# bench/http.sh — HTTP requests through Airlock's HTTP gateway, compared
# with the app directly and with a plain httputil.ReverseProxy.
#
# One invocation does everything in a temporary directory: it builds the
# upstream app (internal/testenv/httpapp, the one the gateway's tests use),
# the load generator (bench/cmd/httpload) and the baseline proxy
# (bench/cmd/plainproxy); starts the app and the proxy; then for 1 and 32
# keep-alive clients measures GET $REQ_PATH (a small JSON answer) against
# each target, targets interleaved, and prints a markdown table. Finally it
# opens $IDLE_CONNS idle keep-alive connections to each process and reports
# its RSS growth per connection (/proc/PID/status), and likewise $IDLE_WS
# idle WebSockets (GET /ws?idle=1 upgraded, then nothing sent either way).
#
# Targets:
#   direct   httpload → httpapp
#   plain    httpload → plainproxy (httputil.ReverseProxy) → httpapp
#   plainpool the same with pooled copy buffers (plainproxy -bufpool), as
#            the gateway has: the like-for-like baseline; the issue's
#            targets are stated against plain
#   airlock  httpload → the Airlock HTTP gateway (bench/cmd/httpgateway:
#            real audit pipeline on SQLite, real identity assertions) →
#            httpapp; or a gateway of your own, see airlock_leg
#
# Environment: DURATION (per run, Go duration or seconds, default 10s),
# WARMUP (default 1s), ROUNDS (default 1: how many times the interleaved
# runs are repeated; the table then shows each figure's median over the
# rounds, which a shared machine's bursts of load move less), REQ_PATH (default /echo), IDLE_CONNS (default 1000,
# 0 = skip), IDLE_WS (default 500, 0 = skip), APP_ADDR (the app's listen address, default a free port:
# set it to give a gateway configured beforehand a known upstream),
# KEEP=1 keeps the temporary directory. PREV_GATEWAY=/path/to/httpgateway
# adds a target "airlock (prev)": that bench/cmd/httpgateway binary (built
# from an earlier commit, say) measured in the same interleaved rounds, so
# that before and after compare on one machine under one load. For the airlock leg:
# AIRLOCK_HTTP_URL, AIRLOCK_HTTP_TOKEN or AIRLOCK_HTTP_HEADER, and
# optionally AIRLOCK_HTTP_CONNECT, AIRLOCK_HTTP_CACERT, AIRLOCK_PID (see
# airlock_leg).
#
# The load generator shares the machine's cores with the app and the
# proxies, so req/s is what the whole box does; compare rows of one run,
# not runs on different machines.
#
# Needs: go.
set -euo pipefail

DURATION=${DURATION:-10s}
[[ $DURATION =~ ^[0-9]+$ ]] && DURATION=${DURATION}s
WARMUP=${WARMUP:-1s}
[[ $WARMUP =~ ^[0-9]+$ ]] && WARMUP=${WARMUP}s
REQ_PATH=${REQ_PATH:-/echo}
IDLE_CONNS=${IDLE_CONNS:-1000}
IDLE_WS=${IDLE_WS:-500}
ROUNDS=${ROUNDS:-1}
APP_ADDR=${APP_ADDR:-127.0.0.1:0}
CLIENTS="1 32" # the table's columns

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v go >/dev/null 2>&1; then
	echo "http.sh: go not found (Go from go.dev)" >&2
	exit 1
fi
# 1000 idle connections need more descriptors than the usual 1024.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

T=$(mktemp -d /tmp/airlock-httpbench.XXXXXX)
PIDS=()
cleanup() {
	set +e
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
	if [ "${KEEP:-}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== building httpapp, httpload, plainproxy"
(cd "$ROOT" && CGO_ENABLED=0 go build -o "$T/bin/" ./internal/testenv/httpapp ./bench/cmd/httpload ./bench/cmd/plainproxy ./bench/cmd/httpgateway)

# start NAME CMD… — runs CMD in the background (stdout in $T/NAME.out,
# stderr in $T/NAME.err) and waits for its "LISTENING <addr>" line; sets
# STARTED_PID and STARTED_ADDR.
start() {
	local name=$1
	shift
	"$@" >"$T/$name.out" 2>"$T/$name.err" &
	STARTED_PID=$!
	PIDS+=("$STARTED_PID")
	for _ in $(seq 1 150); do
		STARTED_ADDR=$(awk '/^LISTENING /{print $2; exit}' "$T/$name.out")
		[ -n "$STARTED_ADDR" ] && return 0
		kill -0 "$STARTED_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "http.sh: $name did not start listening:" >&2
	cat "$T/$name.out" "$T/$name.err" >&2
	exit 1
}

start app "$T/bin/httpapp" -addr "$APP_ADDR"
APP_PID=$STARTED_PID
APP_URL=http://$STARTED_ADDR
export APP_URL # for whatever airlock_leg starts
start plain "$T/bin/plainproxy" -addr 127.0.0.1:0 -upstream "$APP_URL"
PLAIN_PID=$STARTED_PID
PLAIN_URL=http://$STARTED_ADDR
start plainpool "$T/bin/plainproxy" -addr 127.0.0.1:0 -upstream "$APP_URL" -bufpool
PLAINPOOL_PID=$STARTED_PID
PLAINPOOL_URL=http://$STARTED_ADDR
echo "== app $APP_URL (pid $APP_PID), plain reverse proxy $PLAIN_URL (pid $PLAIN_PID), with pooled buffers $PLAINPOOL_URL (pid $PLAINPOOL_PID)"
# Unless told to measure a gateway of its own (AIRLOCK_HTTP_URL…), the
# airlock leg is bench/cmd/httpgateway: the real HTTP gateway with the real
# audit pipeline and identity assertions, one fixed token, plain HTTP.
if [ -z "${AIRLOCK_HTTP_URL:-}" ]; then
	start airlock "$T/bin/httpgateway" -listen 127.0.0.1:0 -upstream "$APP_URL"
	AIRLOCK_PID=$STARTED_PID
	AIRLOCK_HTTP_CONNECT=$STARTED_ADDR
	AIRLOCK_HTTP_URL="http://bench.apps.localhost:${STARTED_ADDR##*:}$REQ_PATH"
	AIRLOCK_HTTP_TOKEN=alh_bench
	echo "== airlock HTTP gateway $STARTED_ADDR (pid $AIRLOCK_PID; audit on, identity assertion on)"
fi
if [ -n "${PREV_GATEWAY:-}" ]; then
	start prev "$PREV_GATEWAY" -listen 127.0.0.1:0 -upstream "$APP_URL"
	PREV_PID=$STARTED_PID
	PREV_CONNECT=$STARTED_ADDR
	PREV_URL="http://bench.apps.localhost:${STARTED_ADDR##*:}$REQ_PATH"
	echo "== previous airlock HTTP gateway $PREV_GATEWAY at $STARTED_ADDR (pid $PREV_PID)"
fi
PREV_ARGS=(-H "Authorization: Bearer alh_bench" -connect "${PREV_CONNECT:-}")

declare -A RPS P50
# json_field NAME JSON → the number in "NAME":number
json_field() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p" <<<"$2"; }

# load TARGET CLIENTS URL [httpload flags…] — one measured run; appends
# its figures to RPS[TARGET:CLIENTS] and P50[TARGET:CLIENTS] (µs), one
# per round, space-separated.
load() {
	local target=$1 c=$2 url=$3
	shift 3
	local out
	out=$("$T/bin/httpload" -url "$url" -c "$c" -d "$DURATION" -warmup "$WARMUP" "$@" 2>"$T/httpload.err") || {
		echo "httpload failed for $target c=$c:" >&2
		cat "$T/httpload.err" >&2
		exit 1
	}
	local line
	line=$(head -1 <<<"$out")
	RPS["$target:$c"]+="$(json_field rps "$line") "
	P50["$target:$c"]+="$(json_field p50_us "$line") "
	printf '  %-8s %s\n' "$target" "$(tail -1 <<<"$out")"
	if [ "$(json_field errors "$line")" != 0 ]; then
		echo "  ($target: $(cat "$T/httpload.err"))"
	fi
}

# ---------------------------------------------------------------------------
# airlock_leg CLIENTS — THE AIRLOCK LEG. Runs the same load through the
# Airlock HTTP gateway when it is wired:
#   AIRLOCK_HTTP_URL     the gateway URL of this run's app, path included
#                        (e.g. https://httpapp.apps.localhost:8443/echo); the
#                        gateway's resource must have $APP_URL as upstream
#                        (set APP_ADDR to fix it in advance, or start the
#                        gateway here: APP_URL is exported)
#   AIRLOCK_HTTP_TOKEN   sent as "Authorization: Bearer $AIRLOCK_HTTP_TOKEN", or
#   AIRLOCK_HTTP_HEADER  a whole header to send instead, "Name: value"
#   AIRLOCK_HTTP_CONNECT host:port to dial when the URL's host does not resolve
#                        (*.localhost)
#   AIRLOCK_HTTP_CACERT  PEM CA for an https gateway
#   AIRLOCK_PID          the gateway's process id: its idle memory is measured too
# Otherwise it prints "airlock leg: skipped (gateway not wired yet)".
# ---------------------------------------------------------------------------
airlock_args() { # the httpload flags for the gateway
	AIRLOCK_ARGS=()
	if [ -n "${AIRLOCK_HTTP_HEADER:-}" ]; then
		AIRLOCK_ARGS+=(-H "$AIRLOCK_HTTP_HEADER")
	elif [ -n "${AIRLOCK_HTTP_TOKEN:-}" ]; then
		AIRLOCK_ARGS+=(-H "Authorization: Bearer $AIRLOCK_HTTP_TOKEN")
	fi
	[ -n "${AIRLOCK_HTTP_CONNECT:-}" ] && AIRLOCK_ARGS+=(-connect "$AIRLOCK_HTTP_CONNECT")
	[ -n "${AIRLOCK_HTTP_CACERT:-}" ] && AIRLOCK_ARGS+=(-cacert "$AIRLOCK_HTTP_CACERT")
	return 0
}
airlock_wired() { [ -n "${AIRLOCK_HTTP_URL:-}" ] && [ -n "${AIRLOCK_HTTP_TOKEN:-}${AIRLOCK_HTTP_HEADER:-}" ]; }
AIRLOCK_SKIP_SAID=
airlock_leg() {
	local c=$1
	if ! airlock_wired; then
		if [ -z "$AIRLOCK_SKIP_SAID" ]; then
			echo "  airlock leg: skipped (gateway not wired yet)"
			AIRLOCK_SKIP_SAID=1
		fi
		return 0
	fi
	airlock_args
	load airlock "$c" "$AIRLOCK_HTTP_URL" "${AIRLOCK_ARGS[@]}"
}

echo "== GET $REQ_PATH, $DURATION per run after $WARMUP warm-up, keep-alive, $(nproc) CPUs, $ROUNDS round(s); load average $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$ROUNDS"); do
	[ "$ROUNDS" -gt 1 ] && echo "  round $round"
	for c in $CLIENTS; do
		load direct "$c" "$APP_URL$REQ_PATH"
		load plain "$c" "$PLAIN_URL$REQ_PATH"
		load plainpool "$c" "$PLAINPOOL_URL$REQ_PATH"
		airlock_leg "$c"
		[ -n "${PREV_GATEWAY:-}" ] && load prev "$c" "$PREV_URL" "${PREV_ARGS[@]}"
	done
done
echo "  load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# median "X Y Z …" → the median of the numbers
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
for k in "${!RPS[@]}"; do
	RPS[$k]=$(median "${RPS[$k]}")
	P50[$k]=$(median "${P50[$k]}")
done

echo
[ "$ROUNDS" -gt 1 ] && echo "(medians over $ROUNDS rounds)"
echo "| target | req/s @1 | p50 @1 (µs) | req/s @32 | p50 @32 (µs) | added p50 @1 vs direct (µs) | req/s @32 vs plain | req/s @1 vs plain |"
echo "|---|---|---|---|---|---|---|---|"
for target in direct plain plainpool airlock prev; do
	case $target in
	direct) label=direct ;;
	plain) label="plain reverse proxy" ;;
	plainpool) label="plain reverse proxy, pooled buffers" ;;
	airlock) label=airlock ;;
	prev)
		[ -n "${PREV_GATEWAY:-}" ] || continue
		label="airlock (prev)"
		;;
	esac
	if [ -z "${RPS["$target:1"]:-}" ]; then
		echo "| $label | skipped | | | | | | |"
		continue
	fi
	awk -v l="$label" -v r1="${RPS["$target:1"]}" -v p1="${P50["$target:1"]}" -v r32="${RPS["$target:32"]}" \
		-v p32="${P50["$target:32"]}" -v d1="${P50["direct:1"]}" -v pr32="${RPS["plain:32"]}" -v pr1="${RPS["plain:1"]}" \
		'BEGIN{printf "| %s | %.0f | %.0f | %.0f | %.0f | %+.0f | %.2f× | %.2f× |\n", l, r1, p1, r32, p32, p1-d1, r32/pr32, r1/pr1}'
done

rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }

# idle_memory N WHAT LABEL PID URL [httpload flags…] — opens N idle
# keep-alive connections to URL (one request each, then held; with -ws
# among the flags, N idle WebSockets) and prints the RSS growth of process
# PID per connection (WHAT names it in the output). Reusable for any HTTP
# server or proxy: pass the gateway's PID and its URL and flags.
idle_memory() {
	local n=$1 what=$2 label=$3 pid=$4 url=$5
	shift 5
	local before after idle_pid
	before=$(rss_kb "$pid")
	rm -f "$T/hold" && mkfifo "$T/hold"
	"$T/bin/httpload" -url "$url" -idle "$n" "$@" <"$T/hold" >"$T/idle.out" 2>&1 &
	idle_pid=$!
	exec 3>"$T/hold"
	for _ in $(seq 1 600); do
		grep -q '^ready' "$T/idle.out" && break
		kill -0 "$idle_pid" 2>/dev/null || break
		sleep 0.1
	done
	if ! grep -q '^ready' "$T/idle.out"; then
		exec 3>&-
		echo "idle connections failed for $label:" >&2
		cat "$T/idle.out" >&2
		exit 1
	fi
	sleep 0.5 # let the server side settle (its goroutines park after the first request)
	after=$(rss_kb "$pid")
	exec 3>&-
	wait "$idle_pid"
	printf '  %-20s RSS %7d KiB → %7d KiB: %6.1f KiB per idle %s  (%s)\n' "$label" "$before" "$after" \
		"$(awk -v a="$after" -v b="$before" -v n="$n" 'BEGIN{print (a-b)/n}')" "$what" "$(tail -1 "$T/idle.out")"
}

if [ "$IDLE_CONNS" -gt 0 ]; then
	echo
	echo "== memory per idle keep-alive connection ($IDLE_CONNS connections, RSS delta of the process)"
	idle_memory "$IDLE_CONNS" connection "app (direct)" "$APP_PID" "$APP_URL$REQ_PATH"
	idle_memory "$IDLE_CONNS" connection "plain reverse proxy" "$PLAIN_PID" "$PLAIN_URL$REQ_PATH"
	if airlock_wired && [ -n "${AIRLOCK_PID:-}" ]; then
		airlock_args
		idle_memory "$IDLE_CONNS" connection airlock "$AIRLOCK_PID" "$AIRLOCK_HTTP_URL" "${AIRLOCK_ARGS[@]}"
	else
		echo "  airlock: skipped (gateway not wired yet: set AIRLOCK_PID with the airlock leg's variables)"
	fi
	[ -n "${PREV_GATEWAY:-}" ] && idle_memory "$IDLE_CONNS" connection "airlock (prev)" "$PREV_PID" "$PREV_URL" "${PREV_ARGS[@]}"
fi

# The airlock leg's URL with its path replaced by /ws?idle=1.
ws_url() { sed -E 's#^([a-z]+://[^/]+).*#\1/ws?idle=1#' <<<"$1"; }

if [ "$IDLE_WS" -gt 0 ]; then
	echo
	echo "== memory per idle WebSocket ($IDLE_WS WebSockets to GET /ws?idle=1, RSS delta of the process)"
	idle_memory "$IDLE_WS" WebSocket "app (direct)" "$APP_PID" "$APP_URL/ws?idle=1" -ws
	idle_memory "$IDLE_WS" WebSocket "plain reverse proxy" "$PLAIN_PID" "$PLAIN_URL/ws?idle=1" -ws
	if airlock_wired && [ -n "${AIRLOCK_PID:-}" ]; then
		airlock_args
		idle_memory "$IDLE_WS" WebSocket airlock "$AIRLOCK_PID" "$(ws_url "$AIRLOCK_HTTP_URL")" "${AIRLOCK_ARGS[@]}" -ws
	else
		echo "  airlock: skipped (gateway not wired yet: set AIRLOCK_PID with the airlock leg's variables)"
	fi
	[ -n "${PREV_GATEWAY:-}" ] && idle_memory "$IDLE_WS" WebSocket "airlock (prev)" "$PREV_PID" "$(ws_url "$PREV_URL")" "${PREV_ARGS[@]}" -ws
fi
exit 0
