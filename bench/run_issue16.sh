#!/usr/bin/env bash
# bench/run_issue16.sh: issue 16's benchmark in one command, from the repository root.
#
#   bench/run_issue16.sh quick|full [TAG]
#
# 1. Configures (if missing) and builds pviommu_bench twice: $BUILD, a normal build for the
#    timings, and $RMW_BUILD, the same with -DPVIOMMU_COUNT_RMW=ON for the counts (impl's atomic
#    RMWs per op, the peers' lock acquisitions per op).
# 2. Timing run: every workload, every contender, medians of 3, in one process:
#    $OUT/TAG.txt (stdout), TAG.csv, TAG.svg, TAG.json.
# 3. Counting run (the counting build; its ns/op are not used): 1 repetition, sizes 1e3-1e5 (the
#    counts do not depend on the timing budget): $OUT/TAG-rmw.txt, TAG-rmw.csv, TAG-rmw.json.
# 4. Writes $OUT/TAG.md, the section for bench/RESULTS.md (date, command, machine, load, the
#    ratio table with the targets marked, scaling, RMWs per op), and prints it.
#
# Environment: BUILD (default build-bench), RMW_BUILD (default build-rmw), OUT (default
# bench/results), JOBS (default 2). TAG defaults to MODE-YYYY-MM-DD-HHMM.
set -euo pipefail

mode=${1:-}
if [[ "$mode" != quick && "$mode" != full ]]; then
    echo "usage: bench/run_issue16.sh quick|full [TAG]" >&2
    exit 2
fi
tag=${2:-$mode-$(date -u +%Y-%m-%d-%H%M)}
BUILD=${BUILD:-build-bench}
RMW_BUILD=${RMW_BUILD:-build-rmw}
OUT=${OUT:-bench/results}
JOBS=${JOBS:-2}
mkdir -p "$OUT"

configure() {  # dir, extra cmake args
    local dir=$1
    shift
    [[ -f "$dir/build.ninja" ]] || cmake --preset default -B "$dir" "$@" >/dev/null
}
configure "$BUILD" -DPVIOMMU_COUNT_RMW=OFF
configure "$RMW_BUILD" -DPVIOMMU_COUNT_RMW=ON
cmake --build "$BUILD" --target pviommu_bench -j "$JOBS" >/dev/null
cmake --build "$RMW_BUILD" --target pviommu_bench -j "$JOBS" >/dev/null

flag=--$mode
[[ $mode == full ]] && flag=""
timing_cmd="$BUILD/pviommu_bench $flag --csv=$OUT/$tag.csv --svg=$OUT/$tag.svg --json=$OUT/$tag.json"
count_cmd="$RMW_BUILD/pviommu_bench --quick --reps=1 --budget-ms=60 --csv=$OUT/$tag-rmw.csv --json=$OUT/$tag-rmw.json"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(date +%s)
# shellcheck disable=SC2086  # the flags are words
$timing_cmd >"$OUT/$tag.txt"
t1=$(date +%s)
# shellcheck disable=SC2086
$count_cmd >"$OUT/$tag-rmw.txt"
t2=$(date +%s)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# Lines of FILE from the first matching START up to (not including) the first later STOP.
between() {
    awk -v a="$2" -v b="$3" 'f && $0 ~ b {exit} $0 ~ a {f=1} f' "$1"
}

cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -c . || true)
{
    echo "## Issue 16 $mode run, $tag"
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); tree: $rev (+$dirty modified tracked files)."
    echo "- Machine: $(nproc) vCPUs ($cpu), $(free -g | awk '/^Mem:/{print $2}') GiB; load average" \
        "$load_before before, $load_after after (other work shares these vCPUs: noisy; medians of" \
        "3 repetitions per cell)."
    echo "- Command: \`bench/run_issue16.sh $mode $tag\`, which runs"
    echo "  \`$timing_cmd\` ($((t1 - t0)) s) and, in the counting build,"
    echo "  \`$count_cmd\` ($((t2 - t1)) s)."
    echo "- $(grep '^budget:' "$OUT/$tag.txt")"
    echo "- Files: $OUT/$tag.{txt,csv,svg,json}, $OUT/$tag-rmw.{txt,csv,json}."
    echo
    between "$OUT/$tag.txt" '^targets \(issue 16\)' '^other figures'
    echo '```'
    between "$OUT/$tag.txt" '^2-thread / 1-thread' '^$'
    echo
    between "$OUT/$tag.txt" '^lock ceiling' '^$'
    echo
    between "$OUT/$tag.txt" '^lock-free gain with the data layout' '^$'
    echo
    between "$OUT/$tag-rmw.txt" '^atomic RMWs per op by op' '^$'
    echo
    between "$OUT/$tag-rmw.txt" '^impl atomic RMWs per hypercall' '^$'
    echo '```'
    grep -E '^CHECK FAILED|check\(s\) FAILED' "$OUT/$tag.txt" "$OUT/$tag-rmw.txt" || true
} >"$OUT/$tag.md"
cat "$OUT/$tag.md"
