// bench/bench.h: the benchmark of impl against its peers (issue 6), as a library function so
// that the CLI can offer `pviommu bench`; build/pviommu_bench is the same with its own main.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace bench {

struct BenchOptions {
    bool quick = false;      // sizes 1e3..1e5, fewer ops and repetitions
    bool smoke = false;      // a few seconds: checks that everything builds and runs, not timings
    std::string csv;         // write one row per cell here ("" = none)
    std::string svg;         // write the ns/op-vs-size plot here ("" = none)
    std::string json;        // write the cells (and RMW counts) as JSON here ("" = none)
    std::uint64_t seed = 1;  // all randomness comes from it; printed
    std::uint64_t max_size =
        0;         // largest table size to run (0: by mode; >= 1e7 adds 1e7 in full mode)
    int reps = 0;  // repetitions per cell (0: by mode)
    // A repetition of W1, W2 or W4 stops after this many ms (0: by mode; printed by the run).
    double budget_ms = 0;
    // Only the workloads whose name starts with one of these comma-separated prefixes
    // ("W1,W3"; "" = all): for quick comparisons while changing impl. Speedups and the other
    // targets are then printed for those cells only.
    std::string workloads;
    // Only these contenders (comma-separated exact names, "impl,xen-style"; "" = all; impl is
    // always run): for profiling impl alone or A/B runs against one peer. The best peer is then
    // the best of those run.
    std::string contenders;
};

// Runs every workload on every contender in one process, prints the table and the floors to
// out, writes the CSV and SVG if asked. Returns 0, or 1 if a correctness check of a workload
// failed (W3: a frame not freed exactly once, or a tuple survived).
[[nodiscard]] int run_bench(const BenchOptions& opt, std::ostream& out);

// One repetition of one cell (workload by its full name, "W2-churn"; ops per thread) with the
// sync counter (bench/peers.h, sync_count()) read around every call: what the op kinds cost.
// The same code path as run_bench's counting; for tests (a counting build is not needed to
// call it, but impl's RMWs are 0 outside one).
struct Contender;
struct OpCount {
    std::string kind;        // lookup, map, unmap, map-swap, balloon
    std::uint64_t ops = 0;   // calls of that kind
    std::uint64_t sync = 0;  // sync events summed over them
};
[[nodiscard]] std::vector<OpCount> count_cell(const Contender& c, const std::string& workload,
                                              std::uint64_t size, unsigned threads,
                                              std::uint64_t ops, std::uint64_t seed);

}  // namespace bench
