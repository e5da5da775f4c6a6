// R11 (D21) and R12 (D24) on impl: IOTLBs, flushes and deferred puts, with simulated devices.
//
//  - Unit cases: a flush waits for a device section that started before it, and the frame of
//    the removed mapping stays pinned (deferred, not free) until then; a cached translation is
//    not used after the flush that covers its removal; each context has its own scratch page;
//    a balloon that swaps more references of one frame than the frame word's deferred field
//    holds still frees the frame only after the flush.
//  - The race: device threads translate through their emulator's IOTLB and "DMA" (write a tag)
//    into frames and scratch pages while vCPU threads map, unmap, look up, balloon, populate
//    and drain. Every bfn range is mapped for one domain only (a target's gfns, or the
//    emulator's own), so a device knows whose frame it may reach: the domain the interface
//    mapped the range for. Checked: no DMA lands in a free frame, or in a frame another domain
//    owns (before and after the write, inside the read section); a scratch DMA lands in the
//    device's own context's page; INV-NO-FREE-WHILE-CACHED at every flush point (the
//    Hypervisor's flush observer, steps 6-7 of the protocol); afterwards every invariant, no
//    reference left deferred, and a teardown that frees every frame.
//  - Planted bug 10 (put-before-flush): the race must catch it (mutants build only; ctest
//    mutants:put-before-flush).
//
// Budget: PVIOMMU_BUDGET=ci (default) or full, as the props and proofs suites.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "impl/hypervisor.h"
#include "impl/mutants.h"

using namespace spec;
using Kind = impl::Hypervisor::Translation::Kind;
using FlushPoint = impl::Hypervisor::FlushPoint;

namespace {

bool full_budget() {
    const char* b = std::getenv("PVIOMMU_BUDGET");
    return b != nullptr && std::string(b) == "full";
}

constexpr std::uint8_t kRw = IOMMUOP_readable | IOMMUOP_writeable;

std::string violations(const State& s) {
    std::string out;
    for (const auto& v : check_invariants(s)) out += v.invariant + ": " + v.detail + "\n";
    return out;
}

MapForeignPage mfp(std::uint64_t bfn, std::uint64_t gfn, std::uint16_t domid,
                   std::uint16_t ioserver, std::uint16_t flags = kRw) {
    MapForeignPage m;
    m.bfn = Bfn{bfn};
    m.gfn = Gfn{gfn};
    m.domid = DomId{domid};
    m.ioserver = IoServId{ioserver};
    m.flags = Flags::with_order(0, flags);
    return m;
}

UnmapForeignPage ufp(std::uint64_t bfn, std::uint16_t domid, std::uint16_t ioserver) {
    UnmapForeignPage u;
    u.bfn = Bfn{bfn};
    u.domid = DomId{domid};
    u.ioserver = IoServId{ioserver};
    return u;
}

// Hardware domain 0 (usable, ram 8), guest 1 (ram 8), server (1,0) served by 0.
std::unique_ptr<impl::Hypervisor> small_world() {
    Host h;
    h.frames = 64;
    auto hv = std::make_unique<impl::Hypervisor>(h);
    REQUIRE(hv->create_domain(DomId{0}, DomainRole::hardware, true, 8));
    REQUIRE(hv->create_domain(DomId{1}, DomainRole::guest, false, 8));
    hv->create_ioserver(DomId{1}, IoServId{0}, DomId{0}, 511);
    return hv;
}

}  // namespace

TEST_CASE(
    "iotlb: a flush waits for a device section that started before it; the frame stays "
    "pinned until then (R11 deferred put)") {
    auto hv = small_world();
    const DomId e{0};
    const int dev = hv->attach_device(e);
    REQUIRE(dev >= 0);
    // guest gfn 3 is mfn 11; mapped at bfn 0x1000, then ballooned: only the tuple holds it.
    REQUIRE(run_op(*hv, e, mfp(0x1000, 3, 1, 0)).status == Status::ok);
    const Mfn m{11};
    REQUIRE(hv->balloon(DomId{1}, Gfn{3}).mfn == m);
    REQUIRE(hv->frame_view(m).count == 1);

    std::atomic<int> phase{0};  // seq_cst: a test handshake
    std::thread device([&] {
        impl::Hypervisor::DeviceSection s(*hv, e, dev);
        const auto t = s.translate(Bfn{0x1000});
        CHECK(t.kind == Kind::frame);
        CHECK(t.mfn == m);
        phase = 1;
        while (phase.load() < 2) std::this_thread::yield();
        // Still inside the section: the unmap has committed but must not have put.
        const auto f = hv->frame_view(m);
        CHECK(f.state == FrameState::owned);
        CHECK(f.count == 0);
        CHECK(f.deferred == 1);
    });
    while (phase.load() < 1) std::this_thread::yield();
    std::atomic<bool> unmapped{false};  // seq_cst (default): a test flag
    std::thread vcpu([&] {
        CHECK(run_op(*hv, e, ufp(0x1000, 1, 0)).status == Status::ok);
        unmapped = true;
    });
    // The unmap's removal commits (the tuple and entry go) and then waits in its flush.
    for (int i = 0; i < 2000 && hv->frame_view(m).deferred == 0; ++i)
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK_FALSE(unmapped.load());
    phase = 2;
    device.join();
    vcpu.join();
    CHECK(unmapped.load());
    CHECK(hv->frame_view(m).state == FrameState::free);  // put after the flush: freed
    CHECK(hv->iotlb_flushes(e) >= 1);
    hv->detach_device(e, dev);
    CHECK(violations(hv->snapshot()).empty());
}

TEST_CASE("iotlb: a translation cached before a removal is not used after its flush") {
    auto hv = small_world();
    const DomId e{0};
    const int dev = hv->attach_device(e);
    REQUIRE(dev >= 0);
    REQUIRE(run_op(*hv, e, mfp(0x2000, 1, 1, 0)).status == Status::ok);
    {
        impl::Hypervisor::DeviceSection s(*hv, e, dev);
        const auto a = s.translate(Bfn{0x2000});
        CHECK(a.kind == Kind::frame);
        CHECK_FALSE(a.cached);
        const auto b = s.translate(Bfn{0x2000});
        CHECK(b.kind == Kind::frame);
        CHECK(b.cached);  // the IOTLB now holds it
        std::uint64_t seen = 0;
        CHECK(hv->check_no_free_while_cached(&seen).empty());
        CHECK(seen == 1);
    }
    REQUIRE(run_op(*hv, e, ufp(0x2000, 1, 0)).status == Status::ok);
    {
        impl::Hypervisor::DeviceSection s(*hv, e, dev);
        const auto c = s.translate(Bfn{0x2000});
        CHECK(c.kind == Kind::fault);
        CHECK_FALSE(c.cached);
    }
    // The 1:1 rule is walked, never cached (it holds no reference).
    {
        impl::Hypervisor::DeviceSection s(*hv, e, dev);
        CHECK(s.translate(Bfn{5}).kind == Kind::identity);
        const auto again = s.translate(Bfn{5});
        CHECK(again.kind == Kind::identity);
        CHECK_FALSE(again.cached);
    }
    hv->detach_device(e, dev);
}

TEST_CASE("iotlb: each usable context has its own scratch page (R12, D24)") {
    Host h;
    h.frames = 64;
    impl::Hypervisor hv(h);
    REQUIRE(hv.create_domain(DomId{0}, DomainRole::hardware, true, 8));
    REQUIRE(hv.create_domain(DomId{1}, DomainRole::guest, false, 8));
    REQUIRE(hv.create_domain(DomId{2}, DomainRole::guest, true, 4));
    hv.grant_dm(DomId{2}, DomId{1});
    hv.create_ioserver(DomId{1}, IoServId{0}, DomId{0}, 511);
    hv.create_ioserver(DomId{1}, IoServId{1}, DomId{2}, 511);
    CHECK(hv.scratch_page(DomId{1}) == nullptr);  // not usable: no context, no scratch
    REQUIRE(hv.scratch_page(DomId{0}) != nullptr);
    REQUIRE(hv.scratch_page(DomId{2}) != nullptr);
    CHECK(hv.scratch_page(DomId{0}) != hv.scratch_page(DomId{2}));
    const std::uint16_t swap = kRw | IOMMUOP_swap_mfn;
    REQUIRE(run_op(hv, DomId{0}, mfp(0x3000, 2, 1, 0, swap)).status == Status::ok);
    REQUIRE(run_op(hv, DomId{2}, mfp(0x3000, 2, 1, 1, swap)).status == Status::ok);
    const int d0 = hv.attach_device(DomId{0}), d2 = hv.attach_device(DomId{2});
    REQUIRE(d0 >= 0);
    REQUIRE(d2 >= 0);
    {  // cache both translations, then the balloon re-points both bfns at scratch
        impl::Hypervisor::DeviceSection s0(hv, DomId{0}, d0);
        impl::Hypervisor::DeviceSection s2(hv, DomId{2}, d2);
        CHECK(s0.translate(Bfn{0x3000}).kind == Kind::frame);
        CHECK(s2.translate(Bfn{0x3000}).kind == Kind::frame);
    }
    const std::uint64_t f0 = hv.iotlb_flushes(DomId{0}), f2 = hv.iotlb_flushes(DomId{2});
    const auto out = hv.balloon(DomId{1}, Gfn{2});
    CHECK(out.invalidates == 2);
    CHECK(hv.iotlb_flushes(DomId{0}) == f0 + 1);  // both swapped contexts flushed (R11)
    CHECK(hv.iotlb_flushes(DomId{2}) == f2 + 1);
    {
        impl::Hypervisor::DeviceSection s0(hv, DomId{0}, d0);
        impl::Hypervisor::DeviceSection s2(hv, DomId{2}, d2);
        const auto t0 = s0.translate(Bfn{0x3000});
        const auto t2 = s2.translate(Bfn{0x3000});
        REQUIRE(t0.kind == Kind::scratch);
        REQUIRE(t2.kind == Kind::scratch);
        CHECK(t0.scratch == hv.scratch_page(DomId{0}));
        CHECK(t2.scratch == hv.scratch_page(DomId{2}));
        t0.scratch[0].store(0xd0, std::memory_order_relaxed);  // relaxed: single-threaded here
        t2.scratch[0].store(0xd2, std::memory_order_relaxed);
        CHECK(hv.scratch_page(DomId{0})[0].load(std::memory_order_relaxed) == 0xd0);
        CHECK(hv.scratch_page(DomId{2})[0].load(std::memory_order_relaxed) == 0xd2);
    }
    hv.detach_device(DomId{0}, d0);
    hv.detach_device(DomId{2}, d2);
    CHECK(violations(hv.snapshot()).empty());
    for (std::uint16_t d : {1, 2, 0}) hv.destroy(DomId{d});
    CHECK(hv.snapshot().frames.empty());
}

TEST_CASE(
    "iotlb: a balloon swapping more references of one frame than the deferred field "
    "holds frees the frame only after its flush") {
    Host h;
    h.frames = 64;
    impl::Hypervisor hv(h);
    REQUIRE(hv.create_domain(DomId{0}, DomainRole::hardware, true, 8));
    REQUIRE(hv.create_domain(DomId{1}, DomainRole::guest, false, 8));
    hv.create_ioserver(DomId{1}, IoServId{0}, DomId{0}, 511);
    constexpr std::uint64_t kMaps = 4100;  // > 2047, the deferred field's limit
    for (std::uint64_t i = 0; i < kMaps; ++i)
        REQUIRE(run_op(hv, DomId{0}, mfp(0x100000 + i, 0, 1, 0, kRw | IOMMUOP_swap_mfn)).status ==
                Status::ok);
    const Mfn m{8};
    REQUIRE(hv.frame_view(m).count == kMaps + 1);
    bool checked = false;
    hv.set_flush_observer([&](FlushPoint p) {
        const auto f = hv.frame_view(m);
        if (p == FlushPoint::before_flush || p == FlushPoint::after_flush) {
            CHECK(f.state == FrameState::owned);  // pinned: 2047 deferred, the rest in the count
            CHECK(f.count + f.deferred == kMaps);
            checked = true;
        } else {
            CHECK(f.state == FrameState::free);
        }
    });
    const auto out = hv.balloon(DomId{1}, Gfn{0});
    hv.set_flush_observer({});
    CHECK(checked);
    CHECK(out.invalidates == kMaps);
    CHECK(hv.frame_view(m).state == FrameState::free);
    CHECK(violations(hv.snapshot()).empty());
}

// ---------------------------------------------------------------------------------------------
// The race

namespace {

constexpr std::uint16_t kHw = 0, kG1 = 1, kG2 = 2, kStub = 3;
constexpr std::uint64_t kRange = 48;  // bfns per range
// An emulator's bfn ranges, each mapped for one domain only: the device knows whose frame a
// translation of it may reach (the domain the interface mapped the range for).
constexpr std::uint64_t kG1Base = 0x10000, kG2Base = 0x20000, kLocalBase = 0x30000;
constexpr std::uint64_t kGuestRam = 40, kHwRam = 16, kStubRam = 8;

struct RaceStats {
    std::uint64_t ops = 0, ok = 0, frame_dma = 0, scratch_dma = 0, hits = 0, faults = 0;
    std::uint64_t checks = 0, cached_seen = 0, flushes = 0, balloons = 0;
    std::uint64_t violations = 0, at_flush_points = 0;  // of which by the flush-point checks
    std::string first, first_at_flush;
};

class Race {
public:
    explicit Race(std::uint64_t seed) : seed_(seed) {
        Host h;
        h.frames = 160;
        h.max_order = 1;
        hv_ = std::make_unique<impl::Hypervisor>(h);
        REQUIRE(hv_->create_domain(DomId{kHw}, DomainRole::hardware, true, kHwRam));
        REQUIRE(hv_->create_domain(DomId{kG1}, DomainRole::guest, false, kGuestRam));
        REQUIRE(hv_->create_domain(DomId{kG2}, DomainRole::guest, false, kGuestRam));
        REQUIRE(hv_->create_domain(DomId{kStub}, DomainRole::guest, true, kStubRam));
        hv_->grant_dm(DomId{kStub}, DomId{kG1});
        hv_->grant_dm(DomId{kStub}, DomId{kG2});
        hv_->create_ioserver(DomId{kG1}, IoServId{0}, DomId{kHw}, 511);
        hv_->create_ioserver(DomId{kG1}, IoServId{1}, DomId{kStub}, 7);
        hv_->create_ioserver(DomId{kG2}, IoServId{0}, DomId{kHw}, 511);
        hv_->create_ioserver(DomId{kG2}, IoServId{1}, DomId{kStub}, 7);
        mem_ = std::vector<std::atomic<std::uint64_t>>(h.frames);
        // INV-NO-FREE-WHILE-CACHED at every flush point of every operation (steps 6-7).
        hv_->set_flush_observer([this](FlushPoint) {
            std::uint64_t seen = 0;
            const auto v = hv_->check_no_free_while_cached(&seen);
            checks_.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
            cached_seen_.fetch_add(seen, std::memory_order_relaxed);
            if (!v.empty()) fail(v.front() + " (at a flush point)", true);
        });
    }

    RaceStats run(std::uint64_t ops_per_vcpu) {
        std::atomic<bool> stop{false};  // seq_cst (default): a test flag
        std::vector<std::thread> ts;
        std::vector<RaceStats> vs(2), ds(2);
        for (int i = 0; i < 2; ++i)
            ts.emplace_back([&, i] { device(i == 0 ? kHw : kStub, seed_ * 7 + i, stop, ds[i]); });
        std::vector<std::thread> vcpus;
        for (int i = 0; i < 2; ++i)
            vcpus.emplace_back([&, i] { vcpu(seed_ * 13 + i, ops_per_vcpu, vs[i]); });
        for (auto& t : vcpus) t.join();
        stop = true;  // seq_cst: a test flag
        for (auto& t : ts) t.join();
        hv_->set_flush_observer({});

        RaceStats s;
        for (const auto& x : vs) {
            s.ops += x.ops;
            s.ok += x.ok;
            s.balloons += x.balloons;
        }
        for (const auto& x : ds) {
            s.frame_dma += x.frame_dma;
            s.scratch_dma += x.scratch_dma;
            s.hits += x.hits;
            s.faults += x.faults;
        }
        s.checks = checks_.load(std::memory_order_relaxed);
        s.cached_seen = cached_seen_.load(std::memory_order_relaxed);
        s.flushes = hv_->iotlb_flushes(DomId{kHw}) + hv_->iotlb_flushes(DomId{kStub});
        s.violations = violations_.load();
        s.at_flush_points = at_flush_.load();
        {
            std::lock_guard g(mu_);
            s.first = first_;
            s.first_at_flush = first_at_flush_;
        }
        return s;
    }

    impl::Hypervisor& hv() { return *hv_; }

private:
    void fail(const std::string& what, bool at_flush = false) {
        if (at_flush && at_flush_.fetch_add(1) == 0) {  // seq_cst: rare; keep the first
            std::lock_guard g(mu_);
            first_at_flush_ = what;
        }
        if (violations_.fetch_add(1) == 0) {  // seq_cst: rare; keep the first message
            std::lock_guard g(mu_);
            first_ = what;
        }
    }

    static std::uint64_t owner_of_range(std::uint64_t bfn, std::uint16_t e) {
        if (bfn >= kLocalBase) return e;
        return bfn >= kG2Base ? kG2 : kG1;
    }

    void device(std::uint16_t e, std::uint64_t seed, const std::atomic<bool>& stop, RaceStats& st) {
        std::mt19937_64 rng(seed);
        const int dev = hv_->attach_device(DomId{e});
        if (dev < 0) {
            fail("no reader slot for a device of " + std::to_string(e));
            return;
        }
        const auto* own_scratch = hv_->scratch_page(DomId{e});
        const std::uint64_t tag = 0xd0000000 | e;
        while (!stop.load()) {
            impl::Hypervisor::DeviceSection s(*hv_, DomId{e}, dev);
            // A burst of DMAs in one section (a descriptor ring's worth).
            for (int k = 0; k < 4; ++k) {
                const std::uint64_t r = rng() % 3;
                const std::uint64_t base = r == 0 ? kG1Base : r == 1 ? kG2Base : kLocalBase;
                const std::uint64_t bfn = base + rng() % kRange;
                const auto t = s.translate(Bfn{bfn});
                st.hits += t.cached;
                switch (t.kind) {
                    case Kind::fault:
                        ++st.faults;
                        break;
                    case Kind::identity:
                        fail("a device reached the 1:1 map at bfn=" + hex(bfn));
                        break;
                    case Kind::scratch:
                        if (t.scratch != own_scratch)
                            fail("context " + std::to_string(e) + " DMAed to another's scratch");
                        // relaxed: a device write; only its placement is checked.
                        t.scratch[bfn % impl::Iotlb::kScratchWords].store(
                            tag, std::memory_order_relaxed);
                        ++st.scratch_dma;
                        break;
                    case Kind::frame: {
                        const std::uint64_t want = owner_of_range(bfn, e);
                        auto land = [&](const char* when) {
                            const auto f = hv_->frame_view(t.mfn);
                            if (f.state == FrameState::free)
                                fail(std::string("DMA ") + when +
                                     " into free frame mfn=" + hex(t.mfn.v) +
                                     " via bfn=" + hex(bfn) + " of context " + std::to_string(e));
                            else if (f.state != FrameState::owned || f.owner.v != want)
                                fail(std::string("DMA ") + when + " into mfn=" + hex(t.mfn.v) +
                                     " owned by " + std::to_string(f.owner.v) + ", mapped for " +
                                     std::to_string(want) + " via bfn=" + hex(bfn));
                        };
                        land("before the write");
                        // relaxed: the DMA itself; the section's exit (release) orders it
                        // before the deferred put that may free the frame.
                        mem_[t.mfn.v].store(tag ^ bfn, std::memory_order_relaxed);
                        if (rng() % 4 == 0) std::this_thread::yield();  // a slow transfer
                        land("after the write");
                        ++st.frame_dma;
                        break;
                    }
                }
            }
        }
        hv_->detach_device(DomId{e}, dev);
    }

    void vcpu(std::uint64_t seed, std::uint64_t ops, RaceStats& st) {
        std::mt19937_64 rng(seed);
        auto pick = [&](std::uint64_t n) { return rng() % n; };
        for (std::uint64_t i = 0; i < ops; ++i) {
            const std::uint16_t e = pick(2) == 0 ? kHw : kStub;
            const std::uint16_t srv = e == kHw ? 0 : 1;
            const std::uint16_t target = pick(2) == 0 ? kG1 : kG2;
            const std::uint64_t base = target == kG1 ? kG1Base : kG2Base;
            const unsigned order = pick(5) == 0 ? 1 : 0;
            const std::uint64_t bfn = (base + pick(kRange)) & ~std::uint64_t{order};
            const std::uint64_t gfn = pick(kGuestRam) & ~std::uint64_t{order};
            Op op;
            switch (pick(12)) {
                case 0:
                case 1:
                case 2: {
                    MapForeignPage m = mfp(bfn, gfn, target, srv);
                    std::uint16_t fl = static_cast<std::uint16_t>(1 + pick(3));
                    if (pick(2) == 0) fl |= IOMMUOP_swap_mfn;
                    m.flags = Flags::with_order(order, fl);
                    op = m;
                    break;
                }
                case 3:
                case 4:
                    op = ufp(base + pick(kRange), target, srv);
                    break;
                case 5: {
                    LookupForeignPage l;
                    l.gfn = Gfn{pick(kGuestRam)};
                    l.domid = DomId{target};
                    l.ioserver = IoServId{srv};
                    op = l;
                    break;
                }
                case 6: {
                    const std::uint64_t ram = e == kHw ? kHwRam : kStubRam;
                    if (pick(2) == 0) {
                        MapPage m;
                        m.flags = Flags::with_order(order, static_cast<std::uint16_t>(1 + pick(3)));
                        m.bfn = Bfn{(kLocalBase + pick(kRange)) & ~std::uint64_t{order}};
                        m.gfn = Gfn{pick(ram) & ~std::uint64_t{order}};
                        op = m;
                    } else {
                        UnmapPage u;
                        u.flags = Flags::with_order(order, 0);
                        u.bfn = Bfn{(kLocalBase + pick(kRange)) & ~std::uint64_t{order}};
                        op = u;
                    }
                    break;
                }
                case 7:
                case 8: {
                    const auto b = hv_->balloon(DomId{target}, Gfn{pick(kGuestRam)});
                    st.balloons += b.mfn.has_value();
                    continue;
                }
                case 9:
                case 10:
                    (void)hv_->populate(DomId{target}, Gfn{pick(kGuestRam)});
                    continue;
                default:
                    (void)hv_->drain(DomId{target}, IoServId{srv}, 8);
                    continue;
            }
            ++st.ops;
            st.ok += run_op(*hv_, DomId{e}, op).status == Status::ok;
        }
    }

    std::uint64_t seed_;
    std::unique_ptr<impl::Hypervisor> hv_;
    // The frames' contents as devices write them. Atomics: devices write them concurrently.
    std::vector<std::atomic<std::uint64_t>> mem_;
    std::atomic<std::uint64_t> checks_{0}, cached_seen_{0};   // statistics; relaxed
    std::atomic<std::uint64_t> violations_{0}, at_flush_{0};  // seq_cst: read after joins
    std::mutex mu_;  // guards first_ and first_at_flush_ (test code)
    std::string first_, first_at_flush_;
};

struct Totals {
    RaceStats s;
    bool clean_after = true;
    std::string after;
};

// `iters` races of 2 devices and 2 vCPUs x `ops`; afterwards (quiescent) every invariant, no
// deferred reference, INV-NO-FREE-WHILE-CACHED, and a teardown that frees every frame.
Totals run_races(std::uint64_t iters, std::uint64_t ops, std::uint64_t first_seed = 0x10b0000) {
    Totals t;
    for (std::uint64_t it = 0; it < iters; ++it) {
        const std::uint64_t seed = first_seed + it;
        Race r(seed);
        const RaceStats s = r.run(ops);
        t.s.ops += s.ops;
        t.s.ok += s.ok;
        t.s.frame_dma += s.frame_dma;
        t.s.scratch_dma += s.scratch_dma;
        t.s.hits += s.hits;
        t.s.faults += s.faults;
        t.s.checks += s.checks;
        t.s.cached_seen += s.cached_seen;
        t.s.flushes += s.flushes;
        t.s.balloons += s.balloons;
        if (s.violations != 0 && t.s.violations == 0)
            t.s.first = "seed " + std::to_string(seed) + ": " + s.first;
        if (s.at_flush_points != 0 && t.s.at_flush_points == 0)
            t.s.first_at_flush = "seed " + std::to_string(seed) + ": " + s.first_at_flush;
        t.s.violations += s.violations;
        t.s.at_flush_points += s.at_flush_points;
        impl::Hypervisor& hv = r.hv();
        const State st = hv.snapshot();
        std::string bad = violations(st);
        for (std::uint64_t m = 0; m < st.host.frames; ++m)
            if (hv.frame_view(Mfn{m}).deferred != 0)
                bad += "mfn " + hex(m) + " still has deferred references\n";
        for (const auto& v : hv.check_no_free_while_cached()) bad += v + "\n";
        for (std::uint16_t d : {kG1, kG2, kStub, kHw}) hv.destroy(DomId{d});
        if (!hv.snapshot().frames.empty()) bad += "teardown left frames:\n" + dump(hv.snapshot());
        if (!bad.empty() && t.clean_after) {
            t.clean_after = false;
            t.after = "seed " + std::to_string(seed) + ":\n" + bad;
        }
    }
    return t;
}

std::string describe(const RaceStats& s) {
    std::ostringstream os;
    os << s.ops << " subops (" << s.ok << " ok), " << s.balloons
       << " balloons; devices: " << s.frame_dma << " frame DMAs, " << s.scratch_dma
       << " scratch DMAs, " << s.hits << " IOTLB hits, " << s.faults << " faults; " << s.flushes
       << " flushes; " << s.checks << " flush-point checks saw " << s.cached_seen
       << " cached frame translations; " << s.violations << " violations (" << s.at_flush_points
       << " at flush points)";
    return os.str();
}

}  // namespace

TEST_CASE(
    "iotlb race: devices DMA only into live frames of the domain the mapping was made "
    "for, and no IOTLB caches a free frame at any flush point") {
    const bool full = full_budget();
    const std::uint64_t iters = full ? 40 : 4, ops = full ? 20000 : 3000;
    const Totals t = run_races(iters, ops);
    MESSAGE("iotlb race: " << iters << " races x 2 vCPUs x " << ops << " ops: " << describe(t.s));
    CHECK_MESSAGE(t.s.violations == 0, t.s.first);
    CHECK_MESSAGE(t.clean_after, t.after);
    // Non-vacuity: the devices reached frames through cached translations, scratch pages were
    // used, flushes ran and their checks saw cached frame translations.
    CHECK(t.s.frame_dma > 0);
    CHECK(t.s.scratch_dma > 0);
    CHECK(t.s.hits > 0);
    CHECK(t.s.flushes > 0);
    CHECK(t.s.cached_seen > 0);
    impl::epoch_quiesce();
}

TEST_CASE("iotlb race: planted bug put-before-flush is caught (mutants build)") {
    if (!impl::mutants_compiled()) {
        MESSAGE("this build carries no mutants (-DPVIOMMU_MUTANTS=ON): nothing to check");
        return;
    }
    int id = 0;
    for (const auto& m : impl::mutants())
        if (m.name == "put-before-flush") id = m.id;
    REQUIRE(id != 0);
    REQUIRE(impl::select_mutant(id));
    // Stop at the first race that catches it; give up after the full budget's worth.
    // Both detectors must see it: a device's DMA into a frame already put (free or taken by a
    // populate), and INV-NO-FREE-WHILE-CACHED at a flush point.
    RaceStats t;
    const std::uint64_t max_iters = full_budget() ? 40 : 12;
    std::uint64_t it = 0;
    for (; it < max_iters && (t.violations == t.at_flush_points || t.at_flush_points == 0); ++it) {
        const Totals one = run_races(1, 3000, 0x10b1000 + it);
        if (t.first.empty()) t.first = one.s.first;
        if (t.first_at_flush.empty()) t.first_at_flush = one.s.first_at_flush;
        t.violations += one.s.violations;
        t.at_flush_points += one.s.at_flush_points;
    }
    impl::select_mutant(0);
    MESSAGE("put-before-flush: " << t.violations << " violations in " << it << " race(s), "
                                 << t.at_flush_points << " of them at flush points; first: "
                                 << t.first << "; first at a flush point: " << t.first_at_flush);
    CHECK(t.violations > t.at_flush_points);  // devices' DMA checks
    CHECK(t.at_flush_points > 0);             // INV-NO-FREE-WHILE-CACHED
    impl::epoch_quiesce();
}
