// impl/tests/stress.h: the concurrency stress run of stress_test.cpp, shared with the fault and
// resource-limit tests: 4 threads of random subops, balloons, populates and drains on one world
// (a hardware domain, two guests, a stub domain serving both), then every invariant, the P2M,
// the invalidate reconciliation and a leak-free teardown are checked (doctest CHECKs).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "spec/faults.h"
#include "spec/types.h"

namespace impl_test {

struct Counters {
    std::uint64_t invalidates = 0, drained = 0, ok = 0, errors = 0, sync = 0;
    std::uint64_t eio = 0, enomem = 0, eoverflow = 0;  // injected faults and resource limits
    // Populates that raced no free (checked: the lowest free frame, R8), and those that were not.
    std::uint64_t populate_checked = 0, populate_not_lowest = 0;
};

// What a stress run varies: the host's count limit (D19), quotas (D20), a fault plan.
struct Setup {
    std::uint32_t max_count = spec::kMaxCountLimit;
    std::optional<std::uint32_t> hw_quota, stub_quota;
    std::function<std::shared_ptr<spec::FaultPlan>(std::uint64_t seed)> plan;  // empty: none
};

// `iters` iterations (seeds 0x5eed0000 + i) of 4 threads x `ops`. If plans is given, each
// iteration's plan is appended to it (to read its hit counters afterwards).
Counters run_stress(std::uint64_t iters, std::uint64_t ops, const Setup& setup,
                    std::vector<std::shared_ptr<spec::FaultPlan>>* plans = nullptr);

}  // namespace impl_test
