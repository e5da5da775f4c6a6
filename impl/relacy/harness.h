// impl/relacy/harness.h: how the Relacy suites of impl/relacy/ explore schedules, and how the
// concurrency-mutant sweep (main.cpp, `relacy_tests --mutants`) asks a suite whether it catches
// a planted bug.
//
// explore<Suite>() runs every interleaving up to a context bound (0: none), then random
// schedules. A failure prints the failing schedule's full history (every atomic step of every
// thread) and PVIOMMU_RELACY_REPLAY='<state>', which reruns exactly that schedule.
// PVIOMMU_RELACY_BOUND / PVIOMMU_RELACY_RANDOM override a run's sizes; PVIOMMU_BUDGET=full
// multiplies the CI sizes (each suite says by how much).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include "impl/atomic.h"  // Relacy, through the one atomic policy

namespace impl::relacy {

[[nodiscard]] inline bool full_budget() {
    const char* b = std::getenv("PVIOMMU_BUDGET");  // NOLINT(concurrency-mt-unsafe): no setenv
    return b != nullptr && std::string(b) == "full";
}

[[nodiscard]] inline unsigned env_or(const char* name, unsigned dflt) {
    const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): no setenv
    return v != nullptr ? static_cast<unsigned>(std::stoul(v)) : dflt;
}

struct Exploration {
    unsigned bound = 0;           // context bound of the full search (0: none)
    rl::iteration_t random = 0;   // random schedules after it
    unsigned depth_limit = 2000;  // steps per schedule before Relacy reports a livelock
    bool print_failure = true;    // print the failing schedule's history (off for mutants)
    bool env_overrides = true;    // PVIOMMU_RELACY_BOUND / _RANDOM apply (off for mutants)
};

struct Explored {
    bool ok = true;               // no schedule failed
    std::uint64_t schedules = 0;  // schedules run (up to and including a failing one)
    double secs = 0;
};

// One verdict of the mutant sweep: the suite that caught a planted bug, or none.
struct Verdict {
    bool caught = false;
    std::string suite;            // the catching suite's name
    std::uint64_t schedules = 0;  // schedules run in all (every suite tried)
    double secs = 0;
};

// Folds one suite's exploration into a verdict: a failing schedule catches the planted bug.
inline void add(Verdict& v, const std::string& suite, const Explored& e) {
    v.schedules += e.schedules;
    v.secs += e.secs;
    if (!e.ok && !v.caught) {
        v.caught = true;
        v.suite = suite;
    }
}

// Random schedules for a suite: 100,000 at the CI budget, 1,000,000 with PVIOMMU_BUDGET=full;
// for the mutant sweep (sweep: true) always 100,000, quiet, and not overridable from the
// environment, so the sweep's verdicts do not depend on a developer's settings.
inline Exploration random_sizes(bool sweep) {
    Exploration x;
    x.random = full_budget() ? 1000000 : 100000;
    if (sweep) {
        x.random = 100000;
        x.print_failure = false;
        x.env_overrides = false;
    }
    return x;
}

// Reruns one schedule (a Relacy state string) with its history recorded and printed.
template <class Suite>
bool replay(const std::string& state, unsigned depth_limit) {
    rl::test_params p;
    p.search_type = rl::random_scheduler_type;
    p.iteration_count = 1;
    p.initial_state = state;
    p.collect_history = true;
    p.output_history = true;
    p.execution_depth_limit = depth_limit;
    return rl::simulate<Suite>(p);
}

template <class Suite>
Explored explore(const std::string& name, Exploration x) {
    // NOLINTNEXTLINE(concurrency-mt-unsafe): nothing calls setenv
    if (const char* state = std::getenv("PVIOMMU_RELACY_REPLAY"))
        return {replay<Suite>(state, x.depth_limit), 1, 0};
    if (x.env_overrides) {
        x.bound = env_or("PVIOMMU_RELACY_BOUND", x.bound);
        x.random = env_or("PVIOMMU_RELACY_RANDOM", static_cast<unsigned>(x.random));
    }
    const auto t0 = std::chrono::steady_clock::now();
    // Relacy's own progress and summary lines go nowhere: to a stream that never allocates
    // (Relacy replaces operator new; a growing string buffer inside a simulation crashes it).
    static std::ofstream quiet("/dev/null");
    rl::test_params p;
    p.output_stream = &quiet;
    p.progress_stream = &quiet;
    p.search_type = rl::fair_context_bound_scheduler_type;
    p.context_bound = x.bound;
    p.execution_depth_limit = x.depth_limit;
    bool ok = x.bound == 0 || rl::simulate<Suite>(p);
    const std::uint64_t bounded = x.bound == 0 ? 0 : p.stop_iteration;
    rl::test_params q;
    if (ok && x.random != 0) {
        q.output_stream = &quiet;
        q.progress_stream = &quiet;
        q.search_type = rl::random_scheduler_type;
        q.iteration_count = x.random;
        q.execution_depth_limit = x.depth_limit;
        ok = rl::simulate<Suite>(q);
    }
    const std::uint64_t random = q.stop_iteration == 0 ? 0 : q.stop_iteration;
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (x.print_failure) {
        std::cout << name << ": context bound " << x.bound << ": " << bounded
                  << " schedules; random: " << random << " schedules; " << secs << " s"
                  << (ok ? "" : " -- FAILED") << "\n";
    }
    if (!ok && x.print_failure) {
        const std::string state(x.bound != 0 && p.test_result != rl::test_result_success
                                    ? p.final_state.c_str()
                                    : q.final_state.c_str());
        std::cout << "---- " << name << ": the failing schedule\n";
        (void)replay<Suite>(state, x.depth_limit);
        std::cout << "replay: PVIOMMU_RELACY_REPLAY='" << state << "' "
                  << "relacy_tests -tc='*" << name << "*'\n";
    }
    return {ok, bounded + random, secs};
}

// The suites' answers to the mutant sweep (main.cpp's table): each runs the suites that must
// catch the bug planted at the time of the call, at the CI budget.
Verdict check_ebr();            // mcas_relacy.cpp: EBR of a node, random schedules
Verdict check_mcas_random();    // mcas_relacy.cpp: up/down and transfer, random schedules
Verdict check_mcas_mixed();     // mcas_relacy.cpp: Txn::commit's shortcuts against MCAS
Verdict check_mcas_scripted();  // mcas_scripted_relacy.cpp: the parked-helper schedules
Verdict check_mcas_reads();     // mcas_scripted_relacy.cpp: readers against MCASs
Verdict check_iotlb();          // iotlb_relacy.cpp: device DMA against a deferred put
Verdict check_ring();           // ring_relacy.cpp: mpmc near the wrap, and the 2-slot ABA
Verdict check_populate();       // populate_relacy.cpp: populates against frees (lowest free)
Verdict check_cell();           // cell_relacy.cpp: the v2 frame-cell protocol (issue 16)
Verdict check_cell_balloon();   // cell_relacy.cpp: its suites one at a time
Verdict check_cell_same_leaf();
Verdict check_cell_deferred();

// Read-only words validated, not locked (issue 16, v2 step 2a; impl/mcas.cpp).
Verdict check_mcas_read_only();        // mcas_relacy.cpp: write skew, a reader of a read check
Verdict check_mcas_read_only_aba();    // mcas_relacy.cpp: one check word, not all (ABA)
Verdict check_mcas_rc_scripted();      // mcas_scripted_relacy.cpp: a read of a READ_CHECK
Verdict check_mcas_direct_scripted();  // mcas_scripted_relacy.cpp: the owner's direct install

}  // namespace impl::relacy
