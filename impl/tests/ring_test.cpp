// The buffered ring (impl/ring.h; issue 15): pointers packed in one word and canonical, so that
// a ring whose slot count does not divide 2^32 (or 2^31) delivers and drains in order across
// the counters' wrap. The rings here start their pointers just below the wrap (the test-only
// `start`) and run thousands of requests through it with every fill level; the old scheme
// (free-running counters, slot = counter mod N) overwrote a pending request at the wrap.
#include "impl/ring.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <deque>
#include <vector>

#include "impl/hypervisor.h"

using namespace spec;

namespace {

// Pushes and pops requests i = 0, 1, 2, ... (slot payloads enc(2i), enc(2i + 1)) through ring,
// `rounds` times filling it to `fill` requests then draining it; checks FIFO order, that every
// push succeeds exactly when two slots are free, and that the pointers stay canonical.
struct Mismatches {
    std::uint64_t content = 0;    // lost, duplicated, torn, out of order, wrong "full"
    std::uint64_t canonical = 0;  // rounds that ended with non-canonical pointers
};
Mismatches drive(impl::BufRing& ring, std::uint32_t fill, std::uint32_t rounds) {
    impl::EpochGuard g;
    std::deque<std::uint64_t> model;  // pending request numbers
    std::uint64_t next = 0;
    Mismatches m;
    std::uint64_t& bad = m.content;
    const std::uint32_t capacity = ring.slots() / 2;
    for (std::uint32_t r = 0; r < rounds; ++r) {
        for (std::uint32_t i = 0; i < fill + 1; ++i) {
            impl::Txn t;
            const bool ok = ring.push(t, impl::enc(2 * next), impl::enc(2 * next + 1));
            REQUIRE(t.commit());
            if (ok != (model.size() < capacity)) ++bad;  // R7: exactly when 2 slots are free
            if (ok) model.push_back(next++);
        }
        // Drain in two pops of different sizes.
        for (const std::uint32_t max : {1u, ~0u}) {
            impl::Txn t;
            std::vector<std::uint64_t> got;
            (void)ring.pop(t, max, [&](std::uint64_t lo, std::uint64_t hi) {
                const std::uint64_t n = impl::dec(lo) / 2;
                if (impl::dec(lo) != 2 * n || impl::dec(hi) != 2 * n + 1) ++bad;  // torn
                got.push_back(n);
            });
            REQUIRE(t.commit());
            for (const std::uint64_t n : got) {
                if (model.empty() || model.front() != n) {
                    ++bad;  // lost, duplicated or out of order
                } else {
                    model.pop_front();
                }
            }
        }
        if (!model.empty()) ++bad;  // the drain left something behind
        const auto p = ring.pointers();
        if (!(p.read < ring.slots() && p.read <= p.write && p.write <= p.read + ring.slots()))
            ++m.canonical;
    }
    return m;
}

}  // namespace

TEST_CASE("ring: non-power-of-2 slot counts drain in order across the counters' wrap") {
    // Start just below 2^31 (the packed pointers' width) and below 2^32 - 2^31 aliases: the
    // canonical form must bring either into range at the first push.
    for (const std::uint32_t slots : {3u, 5u, 6u, 7u, 10u, 511u}) {
        for (const std::uint32_t start : {0u, (1u << 31) - 7, (1u << 31) - 2}) {
            for (std::uint32_t fill = 1; fill <= slots / 2 + 1; fill += (slots > 20 ? 50 : 1)) {
                CAPTURE(slots);
                CAPTURE(start);
                CAPTURE(fill);
                impl::BufRing ring(slots, start);
                const Mismatches m = drive(ring, fill, 40);
                CHECK(m.content == 0);
                CHECK(m.canonical == 0);
            }
        }
    }
    impl::epoch_quiesce();
}

TEST_CASE("ring: a 3-slot server of a Hypervisor takes one invalidate at a time, in order") {
    // Through the product path (deliver and drain): a ring of 3 slots holds one invalidate;
    // the second of a balloon's goes synchronous; drains return buffered then synchronous, and
    // the pointers stay canonical over many cycles.
    Host h;
    h.frames = 64;
    auto hv = impl::make(h);
    REQUIRE(hv->create_domain(DomId{0}, DomainRole::hardware, true, 8));
    REQUIRE(hv->create_domain(DomId{1}, DomainRole::guest, false, 40));
    hv->create_ioserver(DomId{1}, IoServId{0}, DomId{0}, 3);
    std::uint64_t expected_bfn = 0, drained = 0;
    for (std::uint64_t gfn = 0; gfn < 40; ++gfn) {
        // Two tuples on the frame of gfn (bfns 0x1000 + 2 gfn and + 1), then balloon it out:
        // two invalidates, one buffered (3 slots hold one) and one synchronous.
        for (std::uint64_t k = 0; k < 2; ++k) {
            MapForeignPage m;
            m.flags = Flags::with_order(0, IOMMUOP_readable);
            m.bfn = Bfn{0x1000 + 2 * gfn + k};
            m.gfn = Gfn{gfn};
            m.domid = DomId{1};
            m.ioserver = IoServId{0};
            REQUIRE(run_op(*hv, DomId{0}, m).status == Status::ok);
        }
        const BalloonOutcome b = hv->balloon(DomId{1}, Gfn{gfn});
        CHECK(b.invalidates == 2);
        CHECK(b.synchronous == 1);
        const auto got = hv->drain(DomId{1}, IoServId{0}, 8);
        REQUIRE(got.size() == 2);
        for (const IoReq& r : got) {
            CHECK(r.bfn.v == 0x1000 + expected_bfn);  // F8 order; ring first, then sync
            ++expected_bfn;
            ++drained;
        }
        for (std::uint64_t k = 0; k < 2; ++k) {
            UnmapForeignPage u;
            u.bfn = Bfn{0x1000 + 2 * gfn + k};
            u.domid = DomId{1};
            u.ioserver = IoServId{0};
            REQUIRE(run_op(*hv, DomId{0}, u).status == Status::ok);
        }
    }
    CHECK(drained == 80);
    impl::epoch_quiesce();
}
