#!/bin/sh
# Issue 17, item 6: counterexamples as traces and states (ctest proofs:counterexample-*).
#   counterexample_files.sh PVIOMMU trace  -- a planted encoding bug's counterexample is a trace
#     that `pviommu run` accepts (world and ref's path replay, every statement's invariants
#     hold on ref) and that fails exactly on the lines stating the encoding's successor, each
#     naming the invariant the bug breaks (INV-NO-FREE-WHILE-MAPPED);
#   counterexample_files.sh PVIOMMU state  -- a counterexample whose pre-state the explorer does
#     not reach is printed and written in the canonical dump format.
set -u
pv=$1
dir=$(mktemp -d /tmp/pviommu-cex-XXXXXX)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
case $2 in
trace)
    out=$("$pv" prove --mutants --only balloon_frees_with_tuples --mutant-traces "$dir") ||
        fail "prove --mutants: $out"
    echo "$out" | grep -q "caught .*: encoding bug" || fail "no classification: $out"
    t=$dir/balloon_frees_with_tuples.trace
    [ -s "$t" ] || fail "no trace written"
    run=$("$pv" run "$t" 2>&1)
    rc=$?
    echo "$run"
    [ $rc -eq 1 ] || fail "pviommu run exit $rc, expected 1 (a failed expectation)"
    echo "$run" | grep -q "statements, .* 1 failed" || fail "expected exactly one failed check"
    # The failing line is one of the encoding's claims, naming the invariant.
    n=$(echo "$run" | sed -n 's/^[^:]*:\([0-9][0-9]*\): expected .*/\1/p' | head -1)
    [ -n "$n" ] || fail "no failing line"
    sed -n "${n}p" "$t" | grep -q "# encoding: INV-NO-FREE-WHILE-MAPPED" ||
        fail "line $n is not the encoding's claim: $(sed -n "${n}p" "$t")"
    # Without the encoding's claims, ref replays the trace with every invariant kept.
    grep -v "# encoding:" "$t" > "$dir/ref.trace"
    "$pv" run "$dir/ref.trace" || fail "the path does not replay on ref"
    ;;
state)
    out=$("$pv" prove --mutants --only next-only --mutant-traces "$dir") || fail "prove: $out"
    echo "$out"
    echo "$out" | grep -q "not reached by the explicit-state explorer" || fail "no reach verdict"
    s=$dir/next-only_unmap_foreign_keeps_tuple.state
    [ -s "$s" ] || fail "no state written"
    head -1 "$s" | grep -q "^host iommu=" || fail "not a canonical dump: $(head -1 "$s")"
    ! grep -qv -E "^(host|domain|dm|rmrr|p2m|frame|iommu|m2b|ioserver|ioreq|fault) " "$s" ||
        fail "a line that is no canonical dump line"
    ;;
*) fail "usage: $0 PVIOMMU trace|state" ;;
esac
echo PASS
