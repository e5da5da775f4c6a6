// impl/mutants.h: planted bugs for the property suites (issue 4). Compiled into impl only when
// the CMake option PVIOMMU_MUTANTS is ON; otherwise PVIOMMU_MUTANT(k) is the constant false and
// the data path pays nothing. A suite that catches none of them is broken.
#pragma once

#include <span>
#include <string_view>

namespace impl {

struct MutantInfo {
    int id;
    std::string_view name;
    std::string_view what;
    bool needs_concurrency;  // only an interleaving can expose it
    // Only simulated devices can expose it (R11: the IOTLB and the deferred put are invisible
    // to a model's state and to every hypercall's outcome): the props suites cannot see it;
    // impl/tests/iotlb_test.cpp does (ctest mutants:put-before-flush).
    bool needs_devices = false;
};

// Every planted bug, compiled in or not.
[[nodiscard]] std::span<const MutantInfo> mutants();
// True if this build carries the mutants.
[[nodiscard]] bool mutants_compiled();
// Selects mutant k (0: none) for every Hypervisor of the process. Returns false if the build
// carries no mutants or k is unknown. Call at a quiescent point.
bool select_mutant(int k);
[[nodiscard]] int selected_mutant();

}  // namespace impl

#ifdef PVIOMMU_MUTANTS
#define PVIOMMU_MUTANT(k) (::impl::selected_mutant() == (k))
#else
#define PVIOMMU_MUTANT(k) false
#endif
