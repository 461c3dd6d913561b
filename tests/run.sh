#!/bin/sh
# Runs every C test binary and every LuaUnit file; prints the totals as the last line
# "N passed, N failed" and exits non-zero on any failure.
#   usage: tests/run.sh BUILD_DIR AGOPLUA
build=${1:-build}
agoplua=${2:-./agoplua}
pass=0
fail=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
add() { # parses "... N passed, N failed" from the last matching line of $log
    line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        echo "  (no result line: counted as 1 failure)"
        fail=$((fail + 1))
        return
    fi
    p=$(echo "$line" | sed -E 's/^(.*[^0-9])?([0-9]+) passed, ([0-9]+) failed.*/\2/')
    f=$(echo "$line" | sed -E 's/^(.*[^0-9])?([0-9]+) passed, ([0-9]+) failed.*/\3/')
    pass=$((pass + p))
    fail=$((fail + f))
}
# run_one NAME COMMAND...: runs one test program, prints its result line, counts it
run_one() {
    name=$1
    shift
    if "$@" >"$log" 2>&1; then status=ok; else status=FAILED; fi
    echo "$name: $(grep -E 'passed, [0-9]+ failed' "$log" | tail -n 1) [$status]"
    [ "$status" = ok ] || cat "$log"
    add
    [ "$status" = ok ] || grep -qE '[1-9][0-9]* failed' "$log" || fail=$((fail + 1))
}
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    run_one "$(basename "$t")" "$t"
done
for t in tests/lua/test_*.lua; do
    [ -f "$t" ] || continue
    run_one "$(basename "$t" .lua)" "$agoplua" tests/lua/run.lua "$t"
done
# The host's OpenBLAS core handling must not depend on the environment this suite
# inherits: its tests again with OPENBLAS_CORETYPE unset, set to a good core and to a slow one.
run_one "test_host (OPENBLAS_CORETYPE unset)" \
    env -u OPENBLAS_CORETYPE "$agoplua" tests/lua/run.lua tests/lua/test_host.lua
for core in Haswell Prescott; do
    run_one "test_host (OPENBLAS_CORETYPE=$core)" \
        env OPENBLAS_CORETYPE=$core "$agoplua" tests/lua/run.lua tests/lua/test_host.lua
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
