// Concurrency stress test of impl/: several threads issue random subops, balloons, populates and
// drains on overlapping frames of one shared world. Afterwards, at a quiescent point: every
// state invariant holds (counts reconcile exactly with the tuples, allocations and local entries
// that remain; no frame is mapped while free), every P2M is injective and points at frames its
// domain owns, every invalidate a balloon delivered is either drained or still pending, and
// tearing every domain down leaves every frame free with count 0 (nothing leaked, nothing freed
// twice: a double free would underflow a count or free a frame still in a P2M first).
//
// PVIOMMU_STRESS_ITERS / PVIOMMU_STRESS_OPS scale it (CI runs the defaults; the sanitizer presets
// run it too). The seed of each iteration is printed on failure.
#include "impl/tests/stress.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "impl/hypervisor.h"

using namespace spec;
using namespace impl_test;

namespace {

std::uint64_t env_or(const char* name, std::uint64_t dflt) {
    const char* v = std::getenv(name);
    return v != nullptr ? std::strtoull(v, nullptr, 10) : dflt;
}

constexpr std::uint16_t kHw = 0, kG1 = 1, kG2 = 2, kStub = 3;

std::unique_ptr<spec::Hypervisor> build_world(const Setup& setup = {}) {
    Host h;
    h.frames = 256;
    h.max_order = 2;
    h.max_count = setup.max_count;
    auto hv = impl::make(h);
    REQUIRE(hv->create_domain(DomId{kHw}, DomainRole::hardware, true, 32));
    REQUIRE(hv->create_domain(DomId{kG1}, DomainRole::guest, false, 32));
    REQUIRE(hv->create_domain(DomId{kG2}, DomainRole::guest, false, 32));
    REQUIRE(hv->create_domain(DomId{kStub}, DomainRole::guest, true, 4));
    if (setup.hw_quota) hv->set_quota(DomId{kHw}, *setup.hw_quota);
    if (setup.stub_quota) hv->set_quota(DomId{kStub}, *setup.stub_quota);
    hv->grant_dm(DomId{kStub}, DomId{kG1});
    hv->grant_dm(DomId{kStub}, DomId{kG2});
    hv->create_ioserver(DomId{kG1}, IoServId{0}, DomId{kHw}, 9);
    hv->create_ioserver(DomId{kG1}, IoServId{1}, DomId{kStub}, 5);
    hv->create_ioserver(DomId{kG2}, IoServId{0}, DomId{kHw}, 511);
    hv->create_ioserver(DomId{kG2}, IoServId{1}, DomId{kStub}, 3);
    hv->add_rmrr(DomId{kStub}, Bfn{0x1030}, 4);
    return hv;
}

// Which operations may free a frame now: an in-flight count (low 32 bits) and a started count
// (high 32 bits), moved together by the stress threads around every unmap and balloon (the only
// data-path operations that put references). A populate whose interval saw the word constant
// with nothing in flight raced no free: it must have taken the lowest free frame (R8; the
// concurrency contract allows a higher one only to a populate racing frees).
struct FreeRaces {
    std::atomic<std::uint64_t> word{0};
    // seq_cst: a populate's reads of this word, of the frames and of it again must be ordered
    // with the brackets' increments (a store-load pattern across threads).
    void begin() { word.fetch_add((std::uint64_t{1} << 32) + 1, std::memory_order_seq_cst); }
    void end() { word.fetch_sub(1, std::memory_order_seq_cst); }
    [[nodiscard]] std::uint64_t now() const { return word.load(std::memory_order_seq_cst); }
};

// A populate that raced no free took the lowest free frame: checks every frame below it is not
// free now, and that still no free started (so a free frame below it was free at its commit).
void check_populate(const impl::Hypervisor& hv, FreeRaces& races, std::uint64_t before,
                    const PopulateOutcome& out, Counters& c) {
    if ((before & 0xffffffffu) != 0 || !out.mfn) return;  // a free in flight: not checked
    std::uint64_t lower_free = ~std::uint64_t{0};
    for (std::uint64_t m = 0; m < out.mfn->v && lower_free == ~std::uint64_t{0}; ++m)
        if (hv.frame_view(Mfn{m}).state == FrameState::free) lower_free = m;
    if (races.now() != before) return;  // a free started meanwhile: not checked
    ++c.populate_checked;
    if (lower_free != ~std::uint64_t{0}) {
        ++c.populate_not_lowest;
        MESSAGE("populate took mfn " << out.mfn->v << " while mfn " << lower_free
                                     << " was free and no free raced it");
    }
}

void worker(spec::Hypervisor& hv, std::uint64_t seed, std::uint64_t ops, Counters& c,
            std::atomic<int>& start, FreeRaces& races) {
    const auto& ihv = dynamic_cast<const impl::Hypervisor&>(hv);
    std::mt19937_64 rng(seed);
    // Start together so the operations really overlap. acq_rel/acquire: the world built before
    // the threads started is visible (thread creation orders it anyway).
    start.fetch_sub(1, std::memory_order_acq_rel);
    while (start.load(std::memory_order_acquire) > 0) std::this_thread::yield();
    auto pick = [&](std::uint64_t n) { return rng() % n; };
    for (std::uint64_t i = 0; i < ops; ++i) {
        const DomId target{static_cast<std::uint16_t>(pick(2) == 0 ? kG1 : kG2)};
        const bool by_stubdom = pick(2) == 0;  // the stub domain emulates, or the hardware domain
        const DomId caller{by_stubdom ? kStub : kHw};
        const IoServId srv{static_cast<std::uint16_t>(by_stubdom ? 1 : 0)};
        const unsigned order = pick(6) == 0 ? 1 : 0;
        const std::uint64_t gfn = pick(36) & ~std::uint64_t{order};
        const std::uint64_t bfn = (0x1000 + pick(0x40)) & ~std::uint64_t{order};
        std::uint16_t perms = static_cast<std::uint16_t>(1 + pick(3));
        if (pick(2) == 0) perms |= IOMMUOP_swap_mfn;
        pv_iommu_op raw{};
        Op op;
        switch (pick(10)) {
            case 0:
            case 1:
            case 2: {
                MapForeignPage m;
                m.flags = Flags::with_order(order, perms);
                m.bfn = Bfn{bfn};
                m.gfn = Gfn{gfn};
                m.domid = target;
                m.ioserver = srv;
                op = m;
                break;
            }
            case 3: {
                LookupForeignPage l;
                l.gfn = Gfn{pick(36)};
                l.domid = target;
                l.ioserver = srv;
                op = l;
                break;
            }
            case 4:
            case 5: {
                UnmapForeignPage u;
                u.bfn = Bfn{pick(3) == 0 ? 0x20 + pick(0x50)
                                         : 0x1000 + pick(0x40)};  // some at 1:1 bfns
                u.domid = target;
                u.ioserver = srv;
                op = u;
                break;
            }
            case 6: {
                if (pick(2) == 0) {
                    MapPage m;
                    m.flags = Flags::with_order(order, perms & 3);
                    m.bfn = Bfn{bfn};
                    m.gfn = Gfn{pick(caller.v == kStub ? 4 : 32) & ~std::uint64_t{order}};
                    op = m;
                } else {
                    UnmapPage u;
                    u.flags = Flags::with_order(order, 0);
                    u.bfn = Bfn{bfn};
                    op = u;
                }
                break;
            }
            case 7: {
                races.begin();
                const BalloonOutcome b = hv.balloon(target, Gfn{pick(36)});
                races.end();
                c.invalidates += b.invalidates;
                c.sync += b.synchronous;
                continue;
            }
            case 8: {
                const std::uint64_t before = races.now();
                const PopulateOutcome out = hv.populate(target, Gfn{pick(40)});
                check_populate(ihv, races, before, out, c);
                continue;
            }
            default:
                c.drained += hv.drain(target, IoServId{static_cast<std::uint16_t>(pick(2))},
                                      static_cast<std::uint32_t>(1 + pick(4)))
                                 .size();
                continue;
        }
        raw = encode(op);
        const bool may_free =
            std::holds_alternative<UnmapForeignPage>(op) || std::holds_alternative<UnmapPage>(op);
        if (may_free) races.begin();
        (void)hv.iommu_op(caller, std::span<pv_iommu_op>(&raw, 1));
        if (may_free) races.end();
        (raw.status == 0 ? c.ok : c.errors)++;
        c.eio += raw.status == static_cast<std::int32_t>(Status::eio);
        c.enomem += raw.status == static_cast<std::int32_t>(Status::enomem);
        c.eoverflow += raw.status == static_cast<std::int32_t>(Status::eoverflow);
    }
}

std::string show(const std::vector<Violation>& vs) {
    std::ostringstream os;
    for (const auto& v : vs) os << v.invariant << ": " << v.detail << "\n";
    return os.str();
}

}  // namespace

// Runs `iters` stress iterations of `threads` x `ops` and checks, after each, every invariant,
// the P2M, the invalidate reconciliation and a leak-free teardown. Returns the counters.
namespace impl_test {

Counters run_stress(std::uint64_t iters, std::uint64_t ops, const Setup& setup,
                    std::vector<std::shared_ptr<FaultPlan>>* plans) {
    const unsigned threads = 4;  // oversubscribed on 2 cores: more interleavings
    Counters total;
    for (std::uint64_t it = 0; it < iters; ++it) {
        const std::uint64_t seed = 0x5eed0000 + it;
        CAPTURE(seed);
        auto hv = build_world(setup);
        if (setup.plan) {
            auto plan = setup.plan(seed);
            hv->set_fault_plan(plan);
            if (plans != nullptr) plans->push_back(plan);
        }
        std::vector<Counters> cs(threads);
        std::vector<std::thread> ts;
        std::atomic<int> start{static_cast<int>(threads)};
        FreeRaces races;
        for (unsigned t = 0; t < threads; ++t)
            ts.emplace_back(worker, std::ref(*hv), seed * 31 + t, ops, std::ref(cs[t]),
                            std::ref(start), std::ref(races));
        for (auto& t : ts) t.join();

        const State s = hv->snapshot();
        const auto vs = check_invariants(s);
        CHECK_MESSAGE(vs.empty(), show(vs));

        // P2M: injective, and every frame in a P2M is owned by that domain and allocated (or
        // Xen's).
        std::map<Mfn, std::pair<DomId, Gfn>> seen;
        for (const auto& dkv : s.domains) {
            const DomId d = dkv.first;
            for (const auto& gkv : dkv.second.p2m) {
                const Mfn m = gkv.second;
                const Frame f = s.frame(m);
                const bool fresh = seen.emplace(m, std::make_pair(d, gkv.first)).second;
                CHECK_MESSAGE(fresh, "mfn " << m.v << " in two P2M entries");
                CHECK((f.state == FrameState::owned && f.owner == d && f.allocated));
            }
        }
        // Invalidates: every one delivered is drained or pending (none dropped, none invented).
        Counters sum;
        for (const auto& c : cs) {
            sum.invalidates += c.invalidates;
            sum.drained += c.drained;
            sum.ok += c.ok;
            sum.errors += c.errors;
            sum.sync += c.sync;
            sum.populate_checked += c.populate_checked;
            sum.populate_not_lowest += c.populate_not_lowest;
        }
        CHECK(sum.populate_not_lowest == 0);  // R8 when no free races it (issue 15 bug 3)
        std::uint64_t pending = 0, pending_sync = 0;
        for (const auto& [k, srv] : s.servers) {
            pending += srv.buffered.size() + srv.sync.size();
            pending_sync += srv.sync.size();
        }
        CHECK(sum.invalidates == sum.drained + pending);
        CHECK(pending_sync <= sum.sync);

        // Teardown: every reference is accounted for, so every frame ends free with count 0.
        for (std::uint16_t d : {kG1, kG2, kStub, kHw}) hv->destroy(DomId{d});
        const State after = hv->snapshot();
        CHECK_MESSAGE(after.frames.empty(), dump(after));
        CHECK(after.m2b.empty());
        CHECK(after.servers.empty());
        total.ok += sum.ok;
        total.errors += sum.errors;
        total.invalidates += sum.invalidates;
        total.sync += sum.sync;
        total.populate_checked += sum.populate_checked;
        total.populate_not_lowest += sum.populate_not_lowest;
        for (const auto& c : cs) {
            total.eio += c.eio;
            total.enomem += c.enomem;
            total.eoverflow += c.eoverflow;
        }
    }
    return total;
}

}  // namespace impl_test

TEST_CASE("impl stress: concurrent subops and balloons keep every invariant and reconcile") {
    const std::uint64_t iters = env_or("PVIOMMU_STRESS_ITERS", 20);
    const std::uint64_t ops = env_or("PVIOMMU_STRESS_OPS", 2000);
    const unsigned threads = 4;
    const Counters total = run_stress(iters, ops, {});
    MESSAGE("stress: " << iters << " iterations x " << threads << " threads x " << ops
                       << " ops: " << total.ok << " successful calls, " << total.errors
                       << " failed calls, " << total.invalidates << " invalidates (" << total.sync
                       << " synchronous); " << total.populate_checked
                       << " populates raced no free and were checked lowest");
    CHECK(total.ok > 0);
    CHECK(total.invalidates > 0);
    CHECK(total.sync > 0);
    CHECK(total.populate_checked > 0);  // the populate check is not vacuous
    impl::epoch_quiesce();
}

TEST_CASE("impl: MCAS is all-or-nothing and reads see whole transactions") {
    // Two threads move a unit between words a[i] and a[j] with Txns; the sum never changes and
    // every final value is a multiple of nothing in particular: the invariant is the total.
    constexpr int kWords = 8;
    impl::Word words[kWords];
    for (auto& w : words) w.store(impl::enc(100));
    std::vector<std::thread> ts;
    std::atomic<bool> bad{false};
    for (int t = 0; t < 3; ++t) {
        ts.emplace_back([&, t] {
            std::mt19937 rng(t);
            for (int i = 0; i < 20000; ++i) {
                impl::EpochGuard g;
                const int a = static_cast<int>(rng() % kWords),
                          b = static_cast<int>(rng() % kWords);
                if (a == b) continue;
                impl::Txn x;
                for (;;) {
                    const auto va = impl::dec(x.read(words[a]));
                    const auto vb = impl::dec(x.read(words[b]));
                    if (va > 0) {
                        x.write(words[a], impl::enc(va - 1));
                        x.write(words[b], impl::enc(vb + 1));
                    }
                    if (x.commit()) break;
                    x.reset();
                }
                if (i % 64 == 0) {  // a consistent read of all words
                    impl::Txn r;
                    std::uint64_t sum = 0;
                    for (auto& w : words) sum += impl::dec(r.read(w));
                    if (r.commit() && sum != 100 * kWords) bad = true;
                }
            }
        });
    }
    for (auto& t : ts) t.join();
    std::uint64_t sum = 0;
    {
        impl::EpochGuard g;
        for (auto& w : words) sum += impl::dec(impl::mcas_read(w));
    }
    CHECK(sum == 100 * kWords);
    CHECK_FALSE(bad.load());
    impl::epoch_quiesce();
}
