#include "impl/mutants.h"

#include <array>
#include <atomic>

namespace impl {

namespace {

constexpr std::array<MutantInfo, 12> kMutants{{
    {1, "ref-after-publish",
     "map_foreign_page publishes the tuple, then takes the reference in a second step", true},
    {2, "no-sync-fallback", "a balloon drops the invalidate when the ring is full", false},
    {3, "skip-second-server", "a balloon skips the invalidates of the second server of a frame",
     false},
    {4, "unmap-releases-twice",
     "unmap_foreign_page drops two references when the frame has more than two", false},
    {5, "balloon-unmaps-bfn",
     "a balloon removes the emulator's foreign entry instead of leaving it (non-swap)", false},
    {6, "p2m-getpage-window",
     "map_foreign_page does not re-check the P2M entry when it takes the reference", true},
    {7, "swap-keeps-tuple",
     "a balloon swaps the bfn to scratch and drops the reference but keeps the tuple", false},
    {8, "no-rmrr-order", "map_foreign_page skips the RMRR check for order > 0", false},
    {9, "idempotent-takes-ref", "an identical re-map of a tuple takes another reference", false},
    {10, "put-before-flush",
     "a removal's deferred put runs before the IOTLB flush that covers it (R11, XSA-346's class)",
     true, true},
    {11, "teardown-v1",
     "destroy drops every tuple of a server of the target, as R9 v1 did (no orphans)", false},
    {12, "populate-hint-no-generation",
     "a free lowers populate's hint only below it and bumps no generation (issue 15 bug 3): a "
     "scan that passed the frame raises the hint over it",
     true},
}};

// Written at quiescent points only; relaxed: every later operation is ordered after the write by
// the quiescence that the caller guarantees (thread start/join).
std::atomic<int> g_selected{0};

}  // namespace

std::span<const MutantInfo> mutants() { return kMutants; }

bool mutants_compiled() {
#ifdef PVIOMMU_MUTANTS
    return true;
#else
    return false;
#endif
}

bool select_mutant(int k) {
    // cppcheck-suppress knownConditionTrueFalse ; constant per build, not per program
    if (!mutants_compiled() || k < 0 || k > static_cast<int>(kMutants.size())) return false;
    g_selected.store(k, std::memory_order_relaxed);
    return true;
}

int selected_mutant() { return g_selected.load(std::memory_order_relaxed); }

}  // namespace impl
