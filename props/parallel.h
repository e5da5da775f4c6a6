// props/parallel.h: the parallel property: random concurrent cases against impl, each run many
// times with varied timing, every history checked for linearizability against ref; a failing
// case is shrunk and printed as a replayable case text plus the recorded history.
#pragma once

#include <cstdint>
#include <iosfwd>

#include "props/history.h"
#include "props/linearizability.h"

namespace props {

// PVIOMMU_BUDGET=ci (default: small) or full (the "done when" volume).
struct ParallelBudget {
    std::uint64_t cases = 0;   // random concurrent cases
    unsigned repetitions = 0;  // runs of each case with different timing
};
[[nodiscard]] ParallelBudget parallel_budget();

// A random concurrent case named by seed: a world (mostly the stress test's shape: a hardware
// domain, two guests, a stub domain with privilege over both, four ioreq servers with small
// rings; sometimes trace::random_trace's world), a sequential prefix of 0-4 data-path
// statements, then 2-3 threads of 3-6 data-path statements aimed at a few hot gfns and bfns
// (calls of every subop, order-1 maps, batches, balloons, populates, drains).
[[nodiscard]] ConcurrentCase random_case(std::uint64_t seed);

struct CaseResult {
    bool failed = false;
    unsigned runs = 0;                  // histories checked (stops at the first violation)
    std::uint64_t nodes = 0;            // search nodes over all runs
    std::uint64_t ops = 0, ok_ops = 0;  // subops run, and those that succeeded
    std::uint64_t overlaps = 0;         // pairs of operations of different threads that overlap
    std::uint64_t invalidates = 0;      // delivered by the balloons
    History history;                    // the failing history
    CheckResult check;                  // its verdict
};

// Runs c `repetitions` times (timing seeds derived from seed) and checks each history.
// An undecided search counts as a failure.
[[nodiscard]] CaseResult check_case(const ConcurrentCase& c, const SutFactory& sut,
                                    unsigned repetitions, std::uint64_t seed);

// Greedy shrinking of a failing case: drops whole threads, then single statements of threads,
// then single ops of batches, then data-path statements of the world's prefix, keeping a
// candidate only if check_case still fails within `repetitions` runs; repeats until nothing
// can be dropped or `max_attempts` candidates have been tried.
[[nodiscard]] ConcurrentCase shrink_case(const ConcurrentCase& c, const SutFactory& sut,
                                         unsigned repetitions, std::uint64_t seed,
                                         unsigned max_attempts = 200);

struct ParallelOptions {
    std::uint64_t seed = 1;
    std::uint64_t cases = 0;   // 0: the budget's
    unsigned repetitions = 0;  // 0: the budget's
    SutFactory sut;            // empty: impl
    bool shrink = true;
};

struct ParallelSummary {
    std::uint64_t cases = 0, histories = 0, nodes = 0, failed = 0;
    std::uint64_t ops = 0, ok_ops = 0, overlaps = 0, invalidates = 0;
    double seconds = 0;
};

// Runs the property; prints each failure (shrunk case, history, timeline) and a summary line
// with the throughput to out.
ParallelSummary run_parallel(const ParallelOptions& opt, std::ostream& out);

// For `pviommu props --parallel`: cases = 0 takes the budget's. Returns 0 if every history
// was linearizable, 1 otherwise.
int run_parallel_props(std::uint64_t seed, std::uint64_t cases, std::ostream& out);

}  // namespace props
