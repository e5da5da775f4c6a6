// props/parallel.h: the parallel property: random concurrent cases against impl, each run many
// times with varied timing, every history checked for linearizability against ref; a failing
// case is shrunk and printed as a replayable case text plus the recorded history.
#pragma once

#include <array>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>

#include "props/history.h"
#include "props/linearizability.h"

namespace props {

class Workers;

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
// (calls of every subop, order-1 maps, batches, balloons, populates, drains). In a quarter of
// the cases the threads are allocator-heavy: 85% populates (of empty gfns mostly) and
// balloons, thread 0 leaning to populates (65%), the others to balloons (65%), so that
// populates race frees and later populates show where the race left the
// allocation hint (the checker then verifies each populate's frame: the lowest free one unless
// a racing operation freed a lower one).
[[nodiscard]] ConcurrentCase random_case(std::uint64_t seed);

// Overlap figures over many histories (props/history.h, Overlap, defines an overlapping pair).
// Only histories in which at least two threads ran an operation count (a shrunk one-thread
// case cannot overlap).
//   share        = histories with at least one overlapping pair / histories counted
//   mean pairs   = overlapping pairs / histories counted (the "mean overlap")
//   op share     = operations that overlap one of another thread / operations
// The parallel property FAILS when share < kMinOverlapShare: below it, too many histories are
// sequential in disguise for the property to say anything about concurrency (issue 15).
inline constexpr double kMinOverlapShare = 0.8;
struct OverlapTotals {
    std::uint64_t histories = 0;   // counted: at least two threads ran
    std::uint64_t overlapped = 0;  // of those, with at least one overlapping pair
    std::uint64_t pairs = 0;       // overlapping pairs, all histories counted
    std::uint64_t ops = 0, overlapped_ops = 0;
    void add(const Overlap& o);
    void add(const OverlapTotals& t);
    [[nodiscard]] double share() const;
    [[nodiscard]] double mean_pairs() const;
    [[nodiscard]] double op_share() const;
    [[nodiscard]] bool ok() const { return share() >= kMinOverlapShare; }
    // "overlap 93.1% of 480 histories (>= 80% required), 4.2 pairs/history, 61.0% of ops"
    [[nodiscard]] std::string text() const;
};

struct CaseResult {
    bool failed = false;
    unsigned runs = 0;                  // histories checked (stops at the first violation)
    std::uint64_t nodes = 0;            // search nodes over all runs
    std::uint64_t ops = 0, ok_ops = 0;  // subops run, and those that succeeded
    std::uint64_t overlaps = 0;         // pairs of operations of different threads that overlap
    std::uint64_t invalidates = 0;      // delivered by the balloons
    OverlapTotals overlap;              // over the runs
    unsigned stalled_runs = 0;          // runs with stall points armed
    std::array<std::uint64_t, spec::kFaultPoints> stall_hits{};  // summed over the runs
    History history;                                             // the failing history
    CheckResult check;                                           // its verdict
};

// Runs c `repetitions` times (timing seeds derived from seed) and checks each history. Run i
// arms impl's stall points (RunOptions::stalls) unless i % 8 == 0, and runs in lockstep rounds
// (RunOptions::lockstep) if i % 4 == 0. The threads run on `workers` if given (at
// least as many as c has threads), else on a pool made once for this call and recycled across
// its runs. An undecided search counts as a failure.
[[nodiscard]] CaseResult check_case(const ConcurrentCase& c, const SutFactory& sut,
                                    unsigned repetitions, std::uint64_t seed,
                                    Workers* workers = nullptr);

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
    bool stop_at_first_failure = false;  // a verdict is all that is wanted (mutant hunts)
};

struct ParallelSummary {
    std::uint64_t cases = 0, histories = 0, nodes = 0, failed = 0;
    std::uint64_t ops = 0, ok_ops = 0, overlaps = 0, invalidates = 0;
    OverlapTotals overlap;
    std::uint64_t stalled_runs = 0;
    std::array<std::uint64_t, spec::kFaultPoints> stall_hits{};
    std::uint64_t first_failed_case = 0;  // seed of the first case not linearizable
    // The first failing case as shown (shrunk when ParallelOptions::shrink), its recorded
    // history and the checker's report: for pviommu verify --html's timeline.
    std::optional<ConcurrentCase> first_failure;
    std::optional<History> first_failure_history;
    std::string first_failure_report;
    double seconds = 0;
    // The property holds: every history linearizable and overlap.ok().
    [[nodiscard]] bool passed() const { return failed == 0 && overlap.ok(); }
};

// Runs the property on one pool of persistent workers; prints each failure (shrunk case,
// history, timeline), a summary line with the throughput, an overlap line
// (OverlapTotals::text(), "FAIL" when below kMinOverlapShare) and the stall hits to out.
ParallelSummary run_parallel(const ParallelOptions& opt, std::ostream& out);

// For `pviommu props --parallel`: cases = 0 takes the budget's. Returns 0 if the property
// held (ParallelSummary::passed), 1 otherwise.
int run_parallel_props(std::uint64_t seed, std::uint64_t cases, std::ostream& out);

}  // namespace props
