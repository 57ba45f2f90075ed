#!/usr/bin/env bash
# bench/ssh.sh — SSH throughput, setup time and per-session memory:
# direct to sshd, through an OpenSSH bastion (ssh -J), through the Airlock
# gateway (recording on). Needs root, openssh-server and openssh-client.
#
#   bench/ssh.sh                 # 1 GiB transfer, 10 setups, 200 idle sessions
#   SIZE=256M SETUPS=5 SESSIONS=50 bench/ssh.sh   # smaller run
#   LOGIN=root bench/ssh.sh      # log in as root instead of the airlockbench system user it creates
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${SIZE:-1G}
SETUPS=${SETUPS:-10}
SESSIONS=${SESSIONS:-200}
work=$(mktemp -d /tmp/airlock-sshbench.XXXXXX)
pids=()
# The idle sessions run "sleep $idle" on the target. A command without a
# terminal gets no SIGHUP when its connection closes, so cleanup kills them
# by this run's unique argument (and only those).
idle="600.$$"
cleanup() {
	for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
	pkill -x -f "sleep $idle" 2>/dev/null || true
	[ -n "${gwpid:-}" ] && kill "$gwpid" 2>/dev/null && wait "$gwpid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A login whose shell is /bin/sh, so root's shell start-up files (pyenv,
# nvm…) do not dominate the setup figures.
LOGIN=${LOGIN:-airlockbench}
if [ "$LOGIN" = airlockbench ] && ! id -u airlockbench >/dev/null 2>&1; then
	useradd --system --home-dir /tmp --no-create-home --shell /bin/sh airlockbench
fi
# sshd (UsePAM no) refuses locked accounts ("!" in shadow); "*" is merely password-less.
[ "$LOGIN" = airlockbench ] && usermod -p '*' airlockbench
CGO_ENABLED=0 go build -o "$work/sshgateway" ./bench/cmd/sshgateway
"$work/sshgateway" -dir "$work/env" -login "$LOGIN" &
gwpid=$!
for _ in $(seq 100); do [ -f "$work/env/ready" ] && break; sleep 0.1; done
[ -f "$work/env/ready" ] || { echo "gateway did not start" >&2; exit 1; }
cfg="$work/env/ssh_config"

now() { date +%s.%N; }
bytes=$(numfmt --from=iec "$SIZE")

printf '%-16s %14s %14s\n' path "setup (ms)" "cat $SIZE (MB/s)"
for host in direct bastion-target gateway; do
	ssh -F "$cfg" "$host" true # warm up (and fail early)
	t0=$(now)
	for _ in $(seq "$SETUPS"); do ssh -F "$cfg" "$host" true; done
	t1=$(now)
	setup=$(echo "($t1 - $t0) * 1000 / $SETUPS" | bc -l)
	t0=$(now)
	ssh -F "$cfg" "$host" "head -c $SIZE /dev/zero" >/dev/null
	t1=$(now)
	mbs=$(echo "$bytes / 1000000 / ($t1 - $t0)" | bc -l)
	printf '%-16s %14.1f %14.1f\n' "$host" "$setup" "$mbs"
done

stat() { awk -v k="$1" '$1 == k { print $2 }' "$work/env/stats"; }
[ "$SESSIONS" -gt 0 ] || exit 0
sleep 0.5
rss0=$(stat rss_kb); heap0=$(stat heap_inuse)
for _ in $(seq "$SESSIONS"); do
	ssh -F "$cfg" -n gateway "sleep $idle" &
	pids+=($!)
	sleep 0.05 # stagger logins: 200 concurrent shells swamp a small machine
done
# Wait until the gateway holds every session whose client is still alive.
for _ in $(seq 300); do
	alive=0
	for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
	[ "$(stat active)" -ge "$alive" ] && break
	sleep 0.2
done
sleep 1
active=$(stat active); rss1=$(stat rss_kb); heap1=$(stat heap_inuse); gor=$(stat goroutines)
echo
echo "idle sessions through the gateway: $active of $SESSIONS (goroutines $gor)"
echo "gateway RSS: ${rss0} KiB -> ${rss1} KiB: $(( (rss1 - rss0) / active )) KiB per session"
echo "gateway Go heap in use: $(( (heap1 - heap0) / active / 1024 )) KiB per session"
