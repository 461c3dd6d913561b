#!/bin/sh
# Runs fuzz harnesses one after another for SECONDS each, starting from the seeds in
# tests/fuzz/corpus/<target> and the inputs earlier runs found (BUILD/fuzz-corpus/<target>,
# where new ones are added). Prints one line per harness (executions, exec/s, coverage)
# and, last, "N passed, N failed" (harnesses without and with findings). It exits non-zero
# when any found something: a crash, a sanitizer report, a failed property (fuzz.fail), an
# input slower than 20 s, or memory past 2 GB (RSS, or a single allocation). The input that did it is saved under BUILD/fuzz-findings/<target>/; replay
# it with BUILD/fuzz/<target> FILE.
#   usage: tests/fuzz/run.sh BUILD SECONDS TARGET...
build=$1
secs=$2
shift 2
found=0
for t in "$@"; do
    case $t in
    json | npy) len=4096 ;;
    idx | idx_gzip) len=8192 ;;
    *) len=16384 ;;
    esac
    mkdir -p "$build/fuzz-corpus/$t" "$build/fuzz-findings/$t"
    log=$build/fuzz-$t.log
    tmp=$(mktemp -d /dev/shm/agop-fuzz-$t-XXXXXX) # the files the harness writes
    if AGOP_FUZZ_TMP=$tmp "$build/fuzz/$t" -max_total_time="$secs" -max_len=$len \
        -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
        -artifact_prefix="$build/fuzz-findings/$t/" \
        "$build/fuzz-corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
        status=ok
    else
        status=FINDING
        found=$((found + 1))
    fi
    rm -rf "$tmp"
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
    last=$(grep -aE '^#[0-9]+' "$log" | tail -n 1 | tr -cd '[:print:]')
    cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$last" | sed -n 's/.*corp: \([0-9]*\).*/\1/p')
    rate=$(echo "$last" | sed -n 's/.*exec\/s: \([0-9]*\).*/\1/p')
    echo "fuzz $t: ${runs:-?} executions in ${took:-$secs} s (${rate:-?} exec/s), cov ${cov:-?}" \
        "ft ${ft:-?}, corpus ${corp:-?} [$status]"
    if [ "$status" != ok ]; then
        grep -E 'ERROR|SUMMARY|property failed|out-of-memory|timeout|deadly' "$log" | head -n 5
        ls "$build/fuzz-findings/$t/"
        echo "  (whole log: $log)"
    fi
done
echo "$(($# - found)) passed, $found failed"
[ "$found" -eq 0 ]
