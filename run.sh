#!/usr/bin/env bash
# One command to set up, build and check pviommu on a fresh Debian bookworm machine.
#   ./run.sh verify   install what is missing, build (preset default), run `pviommu verify`
#   ./run.sh test     the same set-up, then the whole test suite through ctest (default build),
#                     again under ASan+UBSan, the concurrency tests under TSan (clang), and
#                     the planted bugs (every mutant must be caught), and the fuzz targets
#                     (preset fuzz: corpus replay, then PVIOMMU_FUZZ_SECONDS=30 s each);
#                     prints each phase's time
#   ./run.sh fuzz [S] build the fuzz preset, replay the corpus, run each target for S seconds
#                     (default 600); new inputs go to build-fuzz/corpus/, crashes to
#                     build-fuzz/artifacts/
#   ./run.sh coverage line and branch coverage of ref/ and impl/ by the property suites (gcovr)
#   ./run.sh lint     clang-format check of every C/C++ file; cppcheck and clang-tidy on spec/, ref/,
#                     impl/ with the checked-in .cppcheck-suppressions and .clang-tidy (needs the
#                     default build's compile_commands.json)
#   ./run.sh build    set-up and build only
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(librapidcheck-dev libz3-dev libboost-dev doctest-dev libcli11-dev nlohmann-json3-dev
          cmake g++ ninja-build pkg-config clang-14 libclang-rt-14-dev
          clang-format clang-tidy cppcheck cvc5
          libtbb-dev liburcu-dev libcuckoo-dev libbenchmark-dev relacy-dev
          chromium python3)

phase_start=0
phase() { phase_start=$(date +%s); echo "== $1"; }
phase_end() { echo "== $1: $(( $(date +%s) - phase_start )) s"; }

install_missing() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

build() {
    local preset=$1
    cmake --preset "$preset" >/dev/null
    cmake --build --preset "$preset" -j "$(nproc)"
}

# Static analysis and formatting; every finding fails. Scope: spec/, ref/, impl/ (not their tests).
lint() {
    local files
    mapfile -t files < <(git ls-files '*.c' '*.h' '*.cpp')
    clang-format --dry-run --Werror "${files[@]}"
    cppcheck --project=build/compile_commands.json -q --std=c++20 \
             --file-filter='spec/*' --file-filter='ref/*' --file-filter='impl/*' \
             -i spec/tests -i ref/tests -i impl/tests \
             --enable=warning,performance,portability,style --inline-suppr \
             --suppressions-list=.cppcheck-suppressions --error-exitcode=1
    git ls-files 'spec/*.cpp' 'ref/*.cpp' 'impl/*.cpp' | grep -v '/tests/' |
        xargs -P "$(nproc)" -n 1 clang-tidy -p build --quiet 2>/dev/null
}

# Runs every fuzz target for $1 seconds, one after another (one core each: CPUs are shared),
# seeded from the checked-in corpus; prints libFuzzer's final figures, or the log's tail and
# fails on a finding.
FUZZ_TARGETS=(fuzz_parse fuzz_abi_diff)
fuzz_run() {
    local seconds=$1 t
    mkdir -p build-fuzz/artifacts
    for t in "${FUZZ_TARGETS[@]}"; do
        local dict=() work=build-fuzz/corpus/$t log=build-fuzz/$t.log
        [ "$t" = fuzz_parse ] && dict=(-dict=fuzz/parse.dict)
        mkdir -p "$work"
        if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
             "build-fuzz/$t" "${dict[@]}" -max_total_time="$seconds" -rss_limit_mb=2048 \
             -timeout=5 -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$t-" \
             "$work" "fuzz/corpus/$t" >"$log" 2>&1; then
            tail -n 60 "$log"
            echo "$t: FOUND A PROBLEM (log: $log, input: build-fuzz/artifacts/)" >&2
            return 1
        fi
        echo "$t: $(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}') executions" \
             "in ${seconds} s, $(grep -E '^stat::average_exec_per_sec' "$log" | awk '{print $2}') exec/s," \
             "corpus $(ls "$work" | wc -l) new inputs"
    done
}

cmd=${1:-}
case "$cmd" in
    verify)
        phase "setup"; install_missing; phase_end "setup"
        phase "build"; build default; phase_end "build"
        phase "verify"; ./build/pviommu verify; phase_end "verify"
        ;;
    test)
        phase "setup"; install_missing; phase_end "setup"
        phase "build (default)"; build default; phase_end "build (default)"
        phase "ctest (default)"; ctest --preset default -j "$(nproc)"; phase_end "ctest (default)"
        phase "lint"; lint; phase_end "lint"
        phase "build (asan)"; build asan; phase_end "build (asan)"
        phase "ctest (asan)"; ctest --preset asan -j "$(nproc)"; phase_end "ctest (asan)"
        phase "build (tsan)"; build tsan; phase_end "build (tsan)"
        phase "ctest (tsan)"; ctest --preset tsan; phase_end "ctest (tsan)"
        phase "build (mutants)"; build mutants; phase_end "build (mutants)"
        phase "ctest (mutants)"; ctest --preset mutants; phase_end "ctest (mutants)"
        phase "build (fuzz)"; build fuzz; phase_end "build (fuzz)"
        phase "fuzz (corpus replay, then ${PVIOMMU_FUZZ_SECONDS:-30} s each)"
        ctest --preset fuzz; fuzz_run "${PVIOMMU_FUZZ_SECONDS:-30}"
        phase_end "fuzz"
        ;;
    fuzz)
        install_missing; build fuzz
        ctest --preset fuzz
        fuzz_run "${2:-600}"
        ;;
    build)
        install_missing; build default
        ;;
    lint)
        install_missing; cmake --preset default >/dev/null; lint
        ;;
    coverage)
        install_missing
        command -v gcovr >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcovr >/dev/null
        build coverage
        find build-coverage -name '*.gcda' -delete
        (cd build-coverage && PVIOMMU_BUDGET=${PVIOMMU_BUDGET:-ci} ./props/props_tests >/dev/null)
        # Branches the compiler adds for exceptions and unreachable code are not ours to cover,
        # nor the failing side of an assert (a bug if taken); impl/mutants.cpp and the blocks
        # marked GCOVR_EXCL are planted-bug scaffolding compiled into every build.
        gcovr -r . --object-directory build-coverage --filter 'ref/' --filter 'impl/' \
              --exclude '.*/tests/.*' --exclude 'impl/mutants.cpp' \
              --exclude-throw-branches --exclude-unreachable-branches \
              --exclude-branches-by-pattern '.*\bassert\(.*' \
              --print-summary --txt build-coverage/coverage.txt
        ;;
    *)
        echo "usage: ./run.sh verify | test | build | lint | coverage | fuzz [SECONDS]" >&2
        exit 2
        ;;
esac
