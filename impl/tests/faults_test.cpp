// Fault injection (spec/faults.h) and resource limits (D19, D20) on impl:
//  - iommu_map: an order-k map that fails at ANY unit changes nothing (F10), for map_page and
//    map_foreign_page; the schedule is a function of the seed;
//  - ring_full: forced synchronous delivery, nothing dropped;
//  - one test per stall point: concurrent stress with only that point stalling reaches it,
//    and every invariant holds and teardown leaks nothing;
//  - the stress run with every fault at once, and with small quotas and max_count: no quota or
//    count is ever overshot under races (INV-QUOTA, INV-MAX-COUNT after every run, plus a
//    dedicated race on the last unit of a quota).
#include <doctest/doctest.h>

#include <set>
#include <thread>
#include <utility>

#include "impl/hypervisor.h"
#include "impl/tests/stress.h"

using namespace spec;
using namespace impl_test;

namespace {

// Hardware domain 0 (ram 8, mfn 0-7), guest 1 (ram 8, mfn 8-15), server (1,0) served by 0.
std::unique_ptr<spec::Hypervisor> small_world(const Host& h = {}) {
    auto hv = impl::make(h);
    REQUIRE(hv->create_domain(DomId{0}, DomainRole::hardware, true, 8));
    REQUIRE(hv->create_domain(DomId{1}, DomainRole::guest, false, 8));
    hv->create_ioserver(DomId{1}, IoServId{0}, DomId{0}, 511);
    return hv;
}

std::string violations(const State& s) {
    std::string out;
    for (const auto& v : check_invariants(s)) out += v.invariant + ": " + v.detail + "\n";
    return out;
}

}  // namespace

TEST_CASE("fault iommu_map: an order-2 map failing at any unit changes nothing (F10)") {
    std::set<std::uint64_t> units_map, units_foreign;
    for (std::uint64_t seed = 1; seed <= 64; ++seed) {
        CAPTURE(seed);
        auto hv = small_world();
        auto plan = std::make_shared<FaultPlan>(seed);
        plan->rate(FaultPoint::iommu_map, 1);
        hv->set_fault_plan(plan);
        const State before = hv->snapshot();

        MapForeignPage f;
        f.bfn = Bfn{0x10000};
        f.gfn = Gfn{4};
        f.domid = DomId{1};
        f.ioserver = IoServId{0};
        f.flags = Flags::with_order(2, IOMMUOP_readable | IOMMUOP_writeable | IOMMUOP_swap_mfn);
        CHECK(run_op(*hv, DomId{0}, f).status == Status::eio);
        units_foreign.insert(*plan->last_unit());
        MapPage m;
        m.bfn = Bfn{0x20000};
        m.gfn = Gfn{4};
        m.flags = Flags::with_order(2, IOMMUOP_readable);
        CHECK(run_op(*hv, DomId{0}, m).status == Status::eio);
        units_map.insert(*plan->last_unit());

        const State after = hv->snapshot();
        CHECK(dump(after) == dump(before));
        CHECK(violations(after).empty());
        CHECK(plan->hits(FaultPoint::iommu_map) == 2);
    }
    CHECK(units_foreign == std::set<std::uint64_t>{0, 1, 2, 3});
    CHECK(units_map == std::set<std::uint64_t>{0, 1, 2, 3});
    impl::epoch_quiesce();
}

TEST_CASE("fault iommu_map: the schedule is a function of the seed") {
    auto schedule = [](std::uint64_t seed) {
        auto hv = small_world();
        auto plan = std::make_shared<FaultPlan>(seed);
        plan->rate(FaultPoint::iommu_map, 3);
        hv->set_fault_plan(plan);
        std::string out;
        for (std::uint64_t i = 0; i < 40; ++i) {
            MapPage m;
            m.bfn = Bfn{0x10000 + i};
            m.gfn = Gfn{i % 8};
            m.flags = Flags{IOMMUOP_readable};
            out += std::string(status_name(run_op(*hv, DomId{0}, m).status)) + " ";
        }
        return out + dump(hv->snapshot());
    };
    CHECK(schedule(7) == schedule(7));
    CHECK(schedule(7) != schedule(8));
    CHECK(schedule(7).find("-EIO") != std::string::npos);
    impl::epoch_quiesce();
}

TEST_CASE("fault ring_full: every invalidate goes synchronous, none is dropped (R7)") {
    auto hv = small_world();
    auto plan = std::make_shared<FaultPlan>(11);
    plan->rate(FaultPoint::ring_full, 1);
    hv->set_fault_plan(plan);
    for (std::uint64_t i = 0; i < 3; ++i) {
        MapForeignPage f;
        f.bfn = Bfn{0x10000 + i};
        f.gfn = Gfn{2};
        f.domid = DomId{1};
        f.ioserver = IoServId{0};
        f.flags = Flags{IOMMUOP_readable};
        REQUIRE(run_op(*hv, DomId{0}, f).status == Status::ok);
    }
    const BalloonOutcome b = hv->balloon(DomId{1}, Gfn{2});
    CHECK(b.invalidates == 3);
    CHECK(b.synchronous == 3);  // the ring (511 slots) had room: the fault forced it
    const State s = hv->snapshot();
    const IoServer& srv = s.servers.at({DomId{1}, IoServId{0}});
    CHECK(srv.buffered.empty());
    CHECK(srv.sync.size() == 3);
    CHECK(violations(s).empty());
    CHECK(hv->drain(DomId{1}, IoServId{0}, 10).size() == 3);
    CHECK(plan->hits(FaultPoint::ring_full) == 3);
    impl::epoch_quiesce();
}

// One test per stall point: only that point stalls (every visit draws; one in two stalls).
// help_other needs two MCASs to meet: phase-1 stalls widen that window.
#define STALL_TEST(point)                                                                      \
    TEST_CASE("fault stall." #point ": reached under concurrency, invariants hold, no leak") { \
        std::vector<std::shared_ptr<FaultPlan>> plans;                                         \
        Setup setup;                                                                           \
        setup.plan = [](std::uint64_t seed) {                                                  \
            auto p = std::make_shared<FaultPlan>(seed);                                        \
            p->rate(FaultPoint::stall_##point, 2).max_sleep_us(5);                             \
            if (FaultPoint::stall_##point == FaultPoint::stall_help_other)                     \
                p->rate(FaultPoint::stall_mcas_phase1, 3);                                     \
            return p;                                                                          \
        };                                                                                     \
        (void)run_stress(2, 300, setup, &plans);                                               \
        std::uint64_t hits = 0;                                                                \
        for (const auto& p : plans) hits += p->hits(FaultPoint::stall_##point);                \
        CHECK(hits > 0);                                                                       \
        impl::epoch_quiesce();                                                                 \
    }

STALL_TEST(txn_between_reads)
STALL_TEST(before_commit)
STALL_TEST(rdcss_phases)
STALL_TEST(mcas_phase1)
STALL_TEST(mcas_decide)
STALL_TEST(mcas_phase2)
STALL_TEST(help_other)
STALL_TEST(before_retire)
STALL_TEST(balloon_deliveries)
STALL_TEST(populate_scan)

TEST_CASE("faults: the stress run with every fault point at once keeps every invariant") {
    std::vector<std::shared_ptr<FaultPlan>> plans;
    Setup setup;
    setup.plan = [](std::uint64_t seed) {
        auto p = std::make_shared<FaultPlan>(seed);
        p->rate(FaultPoint::iommu_map, 6).rate(FaultPoint::ring_full, 3).stalls(16).max_sleep_us(5);
        return p;
    };
    const Counters c = run_stress(4, 800, setup, &plans);
    CHECK(c.eio > 0);
    CHECK(c.sync > 0);
    for (FaultPoint p : all_fault_points()) {
        std::uint64_t hits = 0;
        for (const auto& plan : plans) hits += plan->hits(p);
        MESSAGE(fault_point_name(p) << ": " << hits);
    }
    impl::epoch_quiesce();
}

TEST_CASE("limits: small quotas and max_count under concurrency are never overshot (D19, D20)") {
    Setup setup;
    setup.max_count = 3;
    setup.hw_quota = 6;
    setup.stub_quota = 3;
    // run_stress checks every invariant after each iteration, INV-QUOTA and INV-MAX-COUNT too.
    const Counters c = run_stress(6, 1500, setup);
    CHECK(c.enomem > 0);
    CHECK(c.eoverflow > 0);
    impl::epoch_quiesce();
}

namespace {

// Four threads, released together, each map_foreign_page one frame of guest 1 through server
// (1, 0) into the hardware domain at its own bfn; gfn_of(t) picks thread t's gfn. Returns how
// many succeeded and how many got `refusal`.
std::pair<int, int> race_four_maps(spec::Hypervisor& hv, std::uint64_t (*gfn_of)(int),
                                   Status refusal) {
    std::atomic<int> start{4}, ok{0}, refused{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
        ts.emplace_back([&, t] {
            // acq_rel/acquire: a start barrier; the world was built before the threads.
            start.fetch_sub(1, std::memory_order_acq_rel);
            while (start.load(std::memory_order_acquire) > 0) std::this_thread::yield();
            MapForeignPage f;
            f.bfn = Bfn{0x10000 + static_cast<std::uint64_t>(t)};
            f.gfn = Gfn{gfn_of(t)};
            f.domid = DomId{1};
            f.ioserver = IoServId{0};
            f.flags = Flags{IOMMUOP_readable};
            const Status st = run_op(hv, DomId{0}, f).status;
            // relaxed: counters read after join.
            if (st == Status::ok) ok.fetch_add(1, std::memory_order_relaxed);
            if (st == refusal) refused.fetch_add(1, std::memory_order_relaxed);
        });
    }
    for (auto& t : ts) t.join();
    return {ok.load(std::memory_order_relaxed), refused.load(std::memory_order_relaxed)};
}

}  // namespace

TEST_CASE("limits: racing maps for the last unit of a quota: exactly one wins (D20)") {
    for (int round = 0; round < 50; ++round) {
        auto hv = small_world();
        hv->set_quota(DomId{0}, 1);
        // Four different frames: only the quota is contended.
        const auto won_refused = race_four_maps(
            *hv, [](int t) { return static_cast<std::uint64_t>(t); }, Status::enomem);
        CHECK(won_refused.first == 1);
        CHECK(won_refused.second == 3);
        const State s = hv->snapshot();
        CHECK(s.holdings(DomId{0}) == 1);
        CHECK(violations(s).empty());
    }
    impl::epoch_quiesce();
}

TEST_CASE("limits: racing maps for the last reference of a frame: exactly one wins (D19)") {
    for (int round = 0; round < 50; ++round) {
        Host h;
        h.max_count = 2;  // allocation + one tuple
        auto hv = small_world(h);
        // One frame (gfn 3): only its count is contended.
        const auto won_refused = race_four_maps(
            *hv, [](int) { return std::uint64_t{3}; }, Status::eoverflow);
        CHECK(won_refused.first == 1);
        CHECK(won_refused.second == 3);
        const State s = hv->snapshot();
        CHECK(s.frame(Mfn{11}).count == 2);
        CHECK(violations(s).empty());
    }
    impl::epoch_quiesce();
}
