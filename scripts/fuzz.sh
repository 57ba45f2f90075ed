#!/usr/bin/env bash
# Runs every go test -fuzz target in the module for FUZZTIME each, one after
# another, and prints the executions each one made. A crasher stops the run
# with go test's report; the failing input is left in the package's
# testdata/fuzz/<Target>/ for you to keep as a seed once it is fixed.
#
#   FUZZTIME=1m (default)  time per target (go test -fuzztime syntax)
#   MINIMIZE=10s (default) bound on minimising a crasher (-fuzzminimizetime)
#   ONLY=regexp            run only targets whose "pkg/Target" matches
#   PARALLEL=N             fuzzing workers per target (default: GOMAXPROCS)
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-1m}
minimize=${MINIMIZE:-10s}
only=${ONLY:-.}
par=()
if [ -n "${PARALLEL:-}" ]; then par=(-parallel "$PARALLEL"); fi
export CGO_ENABLED=0

# "pkg Target" for every func FuzzX(f *testing.F) in a _test.go file.
mapfile -t targets < <(grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' . |
  while read -r f; do
    pkg=./$(dirname "${f#./}")
    grep -oE '^func Fuzz[A-Za-z0-9_]+' "$f" | sed "s|^func |$pkg |"
  done | sort)

summary=()
status=0
for t in "${targets[@]}"; do
  pkg=${t% *}
  name=${t#* }
  [[ "$pkg/$name" =~ $only ]] || continue
  log=$(mktemp)
  echo "== $pkg $name ($fuzztime)"
  if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" "${par[@]}" "$pkg" >"$log" 2>&1; then
    result=ok
  else
    result=FAIL
    status=1
    cat "$log"
  fi
  execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  summary+=("$(printf '%-4s %-28s %-28s %12s execs' "$result" "$pkg" "$name" "${execs:-?}")")
  echo "${summary[-1]}"
  rm -f "$log"
done
echo
echo "== summary (FUZZTIME=$fuzztime)"
printf '%s\n' "${summary[@]}"
exit $status
