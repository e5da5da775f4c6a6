// impl/relacy/main.cpp: relacy_tests' entry point.
//   relacy_tests [doctest options]   the Relacy suites (doctest; ctest relacy:*)
//   relacy_tests --mutants           the concurrency-mutant sweep (ctest relacy:mutants): each
//                                    planted bug of the table below in turn, and the suites that
//                                    must catch it, at the CI budget. One line per mutant:
//     concurrency-mutant NAME caught by SUITE (N schedules, T s)
//     concurrency-mutant NAME MISSED (N schedules, T s)
//   and last `concurrency mutants caught K/N`; exit 1 unless every one is caught.
//   PVIOMMU_RELACY_PLANT=NAME[,NAME...] relacy_tests [doctest options]
//                                    the suites with those bugs of the table planted (to see
//                                    which suite catches what, and the failing schedule).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "impl/frame_cell.h"
#include "impl/frame_hint.h"
#include "impl/iotlb.h"
#include "impl/mcas.h"
#include "impl/relacy/harness.h"
#include "impl/ring.h"

namespace {

using impl::relacy::Verdict;

// One planted bug: plant() puts it into every later Relacy iteration, unplant() takes it out,
// check() runs the suites that must catch it and says which did.
struct ConcurrencyMutant {
    const char* name;
    const char* what;
    void (*plant)();
    void (*unplant)();
    Verdict (*check)();
};

#define CORE_MUTANT(m)                                    \
    [] { impl::relacy::plant(impl::relacy::Mutant::m); }, \
        [] { impl::relacy::plant(impl::relacy::Mutant::none); }
#define CELL_MUTANT(m)                                                 \
    [] { impl::v2::relacy::g_cell_mutant = impl::v2::CellMutant::m; }, \
        [] { impl::v2::relacy::g_cell_mutant = impl::v2::CellMutant::none; }
#define IOTLB_MUTANT(m)                                              \
    [] { impl::relacy::plant_iotlb(impl::relacy::IotlbMutant::m); }, \
        [] { impl::relacy::plant_iotlb(impl::relacy::IotlbMutant::none); }

// The table. Register a mutant here: its name, what it plants, how to plant and remove it, and
// the check that runs the suites that must catch it (impl/relacy/harness.h declares them).
const ConcurrencyMutant kMutants[] = {
    // MCAS core (impl/mcas.h, relacy::Mutant)
    {"grace-period-short", "EBR frees an object retired in epoch e at e+1, not e+2",
     CORE_MUTANT(grace_period_short), impl::relacy::check_ebr},
    {"rdcss-no-generation", "RDCSS installs carry no generation (issue 15 bug 2: ABA)",
     CORE_MUTANT(rdcss_no_generation), impl::relacy::check_mcas_scripted},
    {"descriptor-grace-two",
     "MCAS descriptors freed two epochs after retirement (issue 15 bug 1: a stale helper "
     "publishes a retired descriptor to a reader of the next epoch)",
     CORE_MUTANT(descriptor_grace_two), impl::relacy::check_mcas_scripted},
    {"slot-bound-acquire", "EBR slot bound raised/read with release/acquire, not seq_cst",
     CORE_MUTANT(slot_bound_acquire), impl::relacy::check_ebr},
    {"helper-skips-word", "a helper's phase 1 skips the last word", CORE_MUTANT(helper_skips_word),
     impl::relacy::check_mcas_random},
    {"read-skips-help", "mcas_read returns the value a descriptor replaced, without helping",
     CORE_MUTANT(read_skips_help), impl::relacy::check_mcas_reads},
    // Read-only words validated, not locked (issue 16, v2 step 2a)
    {"read-check-skipped", "the read-only check word of an MCAS is never validated",
     CORE_MUTANT(read_check_skipped), impl::relacy::check_mcas_read_only},
    {"rc-cycle-not-broken",
     "a read check takes a READ_CHECK descriptor at its old value (no order: write skew)",
     CORE_MUTANT(rc_cycle_not_broken), impl::relacy::check_mcas_read_only},
    {"validate-all-reads", "every read-only word validated at its own instant (ABA), not one",
     CORE_MUTANT(validate_all_reads), impl::relacy::check_mcas_read_only_aba},
    {"read-returns-old-rc",
     "mcas_read returns the old value under a READ_CHECK descriptor, without helping",
     CORE_MUTANT(read_returns_old_rc), impl::relacy::check_mcas_rc_scripted},
    // Txn::commit's shortcuts (issue 16, v2 step 2b)
    {"one-word-cas-blind", "the one-word commit's CAS writes over a descriptor it meets",
     CORE_MUTANT(one_word_cas_blind), impl::relacy::check_mcas_mixed},
    {"direct-install-all",
     "the owner installs every locked word directly (no RDCSS), not only the first",
     CORE_MUTANT(direct_install_all), impl::relacy::check_mcas_direct_scripted},
    // Issue 15's three MCAS fixes reverted at once: the code before the issue.
    {"mcas-before-issue-15",
     "no generations, no phase-2 cleanup, descriptors freed after two epochs",
     [] {
         impl::relacy::plant(impl::relacy::Mutant::rdcss_no_generation);
         impl::relacy::plant(impl::relacy::Mutant::phase2_no_cleanup);
         impl::relacy::plant(impl::relacy::Mutant::descriptor_grace_two);
     },
     [] { impl::relacy::plant(impl::relacy::Mutant::none); }, impl::relacy::check_mcas_scripted},
    // Not in the sweep: phase2-no-cleanup alone (relacy::Mutant::phase2_no_cleanup) is
    // equivalent once descriptors wait three epochs (README.md); with descriptor-grace-two
    // the scripted stale-completion suite catches it.
    // IOTLB and the deferred put (impl/iotlb.h, relacy::IotlbMutant)
    {"put-before-flush", "the deferred put (R11) done before the IOTLB flush",
     IOTLB_MUTANT(put_before_flush), impl::relacy::check_iotlb},
    {"enter-no-recheck",
     "a device section announces its generation without re-reading it (no store-load)",
     IOTLB_MUTANT(enter_no_recheck), impl::relacy::check_iotlb},
    {"exit-relaxed", "a device section ends with a relaxed store (its DMA not released)",
     IOTLB_MUTANT(exit_relaxed), impl::relacy::check_iotlb},
    // The buf_ioreq ring (impl/ring.h, relacy::RingMutant)
    {"ring-free-running",
     "free-running 32-bit ring counters (slots alias at the wrap when the count is not a power "
     "of two)",
     [] { impl::relacy::g_ring_mutant = impl::relacy::RingMutant::free_running; },
     [] { impl::relacy::g_ring_mutant = impl::relacy::RingMutant::none; },
     impl::relacy::check_ring},
    {"ring-pop-unvalidated",
     "a pop reads its slots outside its transaction (ABA on the packed word)",
     [] { impl::relacy::g_ring_mutant = impl::relacy::RingMutant::pop_unvalidated; },
     [] { impl::relacy::g_ring_mutant = impl::relacy::RingMutant::none; },
     impl::relacy::check_ring},
    // populate's allocation hint (impl/frame_hint.h, relacy::HintMutant)
    {"populate-hint-no-generation",
     "the allocation hint raised without a free generation (issue 15 bug 3: a free is lost)",
     [] { impl::relacy::g_hint_mutant = impl::relacy::HintMutant::no_generation; },
     [] { impl::relacy::g_hint_mutant = impl::relacy::HintMutant::none; },
     impl::relacy::check_populate},
    // The v2 frame-cell protocol (impl/frame_cell.h, impl::v2::CellMutant; issue 16)
    {"cell-read-no-validate", "a cell snapshot skips the seqlock re-check (a torn record)",
     CELL_MUTANT(read_no_validate), impl::relacy::check_cell_balloon},
    {"cell-map-trusts-p2m",
     "map decides on the P2M leaf, not the cell (a tuple on a ballooned frame, unannounced)",
     CELL_MUTANT(map_trusts_p2m), impl::relacy::check_cell_balloon},
    {"cell-settle-no-bump",
     "a helper settles another op's intent without fencing the owner's cell CAS",
     CELL_MUTANT(settle_no_bump), impl::relacy::check_cell_same_leaf},
    {"cell-read-settles", "a leaf read that meets an intent settles it (a read that writes)",
     CELL_MUTANT(read_settles), impl::relacy::check_cell_balloon},
    {"cell-put-ignores-deferred",
     "a deferred put frees at count 0 while other deferred references remain",
     CELL_MUTANT(put_ignores_deferred), impl::relacy::check_cell_deferred},
};

int run_mutants() {
    int caught = 0, n = 0;
    for (const ConcurrencyMutant& m : kMutants) {
        m.plant();
        const Verdict v = m.check();
        m.unplant();
        ++n;
        caught += v.caught ? 1 : 0;
        char figures[96];
        std::snprintf(figures, sizeof figures, "(%llu schedules, %.1f s)",
                      static_cast<unsigned long long>(v.schedules), v.secs);
        if (v.caught)
            std::cout << "concurrency-mutant " << m.name << " caught by " << v.suite << " "
                      << figures << "\n";
        else
            std::cout << "concurrency-mutant " << m.name << " MISSED " << figures << ": " << m.what
                      << "\n";
        std::cout.flush();
    }
    std::cout << "concurrency mutants caught " << caught << "/" << n << "\n";
    return caught == n ? 0 : 1;
}

// Plants the table's mutants named in PVIOMMU_RELACY_PLANT (comma-separated); false if a name
// is unknown.
bool plant_from_env() {
    const char* env = std::getenv("PVIOMMU_RELACY_PLANT");  // NOLINT(concurrency-mt-unsafe)
    if (env == nullptr) return true;
    const std::string list(env);
    std::size_t at = 0;
    while (at <= list.size()) {
        const std::size_t end = std::min(list.find(',', at), list.size());
        const std::string name = list.substr(at, end - at);
        bool found = false;
        for (const ConcurrencyMutant& m : kMutants) {
            if (name == m.name) {
                m.plant();
                found = true;
            }
        }
        for (const auto& m : impl::relacy::mutants()) {  // the core's, phase2-no-cleanup too
            if (!found && name == m.name) {
                impl::relacy::plant(m.m);
                found = true;
            }
        }
        if (!found) {
            std::cerr << __FILE__ << ":" << __LINE__ << ": unknown mutant '" << name << "'\n";
            return false;
        }
        at = end + 1;
    }
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 2 && std::string(argv[1]) == "--mutants") return run_mutants();
    if (!plant_from_env()) return 2;
    doctest::Context ctx(argc, argv);
    return ctx.run();
}
