// Fault injection in the props suites (spec/faults.h, issue 7):
//  - sequential faults (iommu_map, ring_full) honoured by both models: ref and impl given plans
//    with the same seed agree on random traces statement by statement (outcomes and dumps),
//    with every invariant checked after every statement (D15) — random traces also carry small
//    max_count and quota values (D19, D20);
//  - stalls at every named point of impl's protocol while the parallel property runs: the
//    histories stay linearizable, and the stalls push threads onto the retry, help and doomed
//    paths that coverage measures.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <sstream>
#include <string>

#include "impl/hypervisor.h"
#include "impl/mcas.h"
#include "props/parallel.h"
#include "ref/hypervisor.h"
#include "trace/diff.h"
#include "trace/gen.h"

using namespace spec;

namespace {

bool full_budget() {
    const char* b = std::getenv("PVIOMMU_BUDGET");
    return b != nullptr && std::string(b) == "full";
}

std::shared_ptr<FaultPlan> sequential_plan(std::uint64_t seed) {
    auto p = std::make_shared<FaultPlan>(seed);
    p->rate(FaultPoint::iommu_map, 5).rate(FaultPoint::ring_full, 3);
    return p;
}

}  // namespace

TEST_CASE("faults: ref and impl with equal seeded plans agree on random traces") {
    const std::uint64_t traces = full_budget() ? 1000 : 150;
    std::uint64_t map_faults = 0, ring_faults = 0, limited = 0;
    for (std::uint64_t seed = 1; seed <= traces; ++seed) {
        CAPTURE(seed);
        const trace::Trace t = trace::random_trace(seed, 150);
        std::shared_ptr<FaultPlan> ref_plan, impl_plan;
        const trace::ModelFactory a = [&](const Host& h) {
            auto m = ref::make(h);
            ref_plan = sequential_plan(seed);
            m->set_fault_plan(ref_plan);
            return m;
        };
        const trace::ModelFactory b = [&](const Host& h) {
            auto m = impl::make(h);
            impl_plan = sequential_plan(seed);
            m->set_fault_plan(impl_plan);
            return m;
        };
        const trace::DiffResult r = trace::diff(t, a, b);
        if (r.divergence) {
            std::ostringstream os;
            os << "line " << r.divergence->line << ": " << r.divergence->statement
               << "\n  ref:  " << r.divergence->outcome_a << "\n  impl: " << r.divergence->outcome_b
               << "\n";
            for (const auto& l : r.divergence->dump_diff) os << "  " << l << "\n";
            FAIL_CHECK(os.str());
        }
        CHECK(r.failures_a.empty());
        CHECK(r.failures_b.empty());
        CHECK(ref_plan->hits(FaultPoint::iommu_map) == impl_plan->hits(FaultPoint::iommu_map));
        CHECK(ref_plan->hits(FaultPoint::ring_full) == impl_plan->hits(FaultPoint::ring_full));
        map_faults += ref_plan->hits(FaultPoint::iommu_map);
        ring_faults += ref_plan->hits(FaultPoint::ring_full);
        limited += t.host.max_count != kMaxCountLimit;
    }
    MESSAGE("faults: " << traces << " traces, " << map_faults << " iommu_map faults, "
                       << ring_faults << " ring_full faults, " << limited
                       << " hosts with a small max_count");
    CHECK(map_faults > 0);
    CHECK(ring_faults > 0);
    CHECK(limited > 0);
    impl::epoch_quiesce();
}

TEST_CASE("parallel: impl stalling at every named point stays linearizable") {
    // One plan per system under test, seeded from a counter: stalls do not change outcomes,
    // so the histories must still linearize against ref.
    auto next = std::make_shared<std::atomic<std::uint64_t>>(0x57a11);
    std::vector<std::shared_ptr<FaultPlan>> plans;
    props::ParallelOptions opt;
    opt.seed = 0x57a11ed;
    opt.cases = full_budget() ? 600 : 80;
    opt.repetitions = full_budget() ? 10 : 6;
    opt.shrink = false;
    opt.sut = [next, &plans](const Host& h) {
        auto m = impl::make(h);
        // relaxed: distinct seeds only; the factory runs before the threads start.
        auto p = std::make_shared<FaultPlan>(next->fetch_add(1, std::memory_order_relaxed));
        p->stalls(3).max_sleep_us(3);
        m->set_fault_plan(p);
        plans.push_back(p);
        return m;
    };
    std::ostringstream out;
    const props::ParallelSummary s = props::run_parallel(opt, out);
    CHECK_MESSAGE(s.failed == 0, out.str());
    std::ostringstream hits;
    for (FaultPoint p : all_fault_points()) {
        if (!is_stall(p)) continue;
        std::uint64_t n = 0;
        for (const auto& plan : plans) n += plan->hits(p);
        hits << " " << fault_point_name(p) << "=" << n;
        if (p != FaultPoint::stall_help_other) CHECK_MESSAGE(n > 0, fault_point_name(p));
    }
    MESSAGE("stall hits:" << hits.str());
    impl::epoch_quiesce();
}
