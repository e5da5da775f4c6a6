#!/usr/bin/env bash
# bench/instr.sh DRIVER [CONTENDER] [FRAMES] [REPS]: instructions per call of map_foreign_page,
# unmap_foreign_page and lookup_foreign_page, 1 thread (callgrind; one function per run, the
# bench adapter's, with everything it calls: the pattern names namespace bench, so that a
# contender's inner function of the same name, like v2-core's CellCore::map_foreign, does not
# toggle collection off). DRIVER: a Release build's pviommu_instr_driver (bench/instr_driver.cpp).
# NOPREFILL=1: fresh tuples on frames without one (no lookups then). BALLOON=1: instead, W3's
# one-thread pattern (REPS frames: two swap-flagged maps, the balloon with its deliveries, a
# map that fails with -ENXIO), per frame: the balloon, and the three maps together. Needs
# valgrind.
set -euo pipefail
driver=$1 who=${2:-impl} frames=${3:-1000} reps=${4:-10000}
dir=$(mktemp -d)
if [ -n "${BALLOON:-}" ]; then
    [ "$reps" -gt "$frames" ] && reps=$frames
    for f in balloon map_foreign; do
        valgrind --tool=callgrind --callgrind-out-file="$dir/$f.out" --toggle-collect="bench::*::$f(*" \
            "$driver" "$frames" "$reps" "$who" balloon > /dev/null 2> "$dir/$f.err"
        ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$dir/$f.out")
        echo "$who W3 $f: $((ir / reps)) instructions per frame ($reps frames)"
    done
    rm -rf "$dir"
    exit 0
fi
for f in map_foreign unmap_foreign lookup_foreign; do
    mode=pair calls=$reps
    if [ "$f" = lookup_foreign ]; then
        [ -n "${NOPREFILL:-}" ] && continue
        mode=lookup calls=$((2 * reps))
    fi
    valgrind --tool=callgrind --callgrind-out-file="$dir/$f.out" --toggle-collect="bench::*::$f(*" \
        "$driver" "$frames" "$reps" "$who" "$mode" > /dev/null 2> "$dir/$f.err"
    ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$dir/$f.out")
    echo "$who ${f}_page: $((ir / calls)) instructions per call ($calls calls, $frames frames)"
done
rm -rf "$dir"
