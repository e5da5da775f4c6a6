// impl/tests/cell_test.cpp: the v2 frame-cell protocol (impl/frame_cell.h) on real threads: its
// sequential semantics, the atomic RMWs per operation (counted), and a stress run whose
// quiescent state must agree with itself (also under TSan: ctest --preset tsan -R impl:).
// Relacy explores its interleavings: impl/relacy/cell_relacy.cpp.
#include <doctest/doctest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "impl/frame_cell.h"

namespace {

using impl::v2::CellConfig;
using impl::v2::CellCore;
using impl::v2::Snap;
using impl::v2::St;

constexpr std::uint16_t kT = 0, kC = 1;
constexpr std::uint8_t kRw = 3;

// RMWs of f, counted by the core (every build) and by impl::Atomic (a counting build).
template <class F>
std::uint64_t rmws(F&& f) {
    const std::uint64_t w0 = CellCore::writes();
    const std::uint64_t r0 = impl::rmw_count();
    f();
    const std::uint64_t w = CellCore::writes() - w0;
    if constexpr (impl::kCountRmw) CHECK(impl::rmw_count() - r0 == w);
    return w;
}

void check_quiescent(CellCore& core) {
    const CellConfig& cfg = core.config();
    for (std::uint32_t m = 0; m < cfg.frames; ++m) {
        const Snap s = core.snap(m);
        CHECK(!s.reserved());
        if (s.free()) continue;
        CHECK(s.h.count == (s.h.allocated ? 1u : 0u) + s.n);  // INV-COUNT
        CHECK(s.h.deferred == 0);
        CHECK(s.h.count != 0);
        if (s.h.allocated) CHECK(impl::v2::cell_idx(core.raw_p2m(s.h.owner, s.gfn)) == m + 1);
        for (std::uint32_t k = 0; k < s.n; ++k) {
            const std::uint64_t v = core.raw_leaf(impl::v2::holder_emulator(s.hw[k]), s.hb[k]);
            CHECK(impl::v2::leaf_mfn(v) == m);
        }
    }
    for (std::uint16_t d = 0; d < cfg.doms; ++d) {
        for (std::uint64_t b = 0; b < cfg.bfns; ++b) {
            const std::uint64_t v = core.raw_leaf(d, b);
            const std::uint64_t code = impl::v2::leaf_code(v);
            CHECK(code != impl::v2::kLeafIntent);
            if (code == impl::v2::kLeafLocal || code == impl::v2::kLeafForeign)
                CHECK(core.snap(static_cast<std::uint32_t>(impl::v2::leaf_mfn(v)))
                          .holds_leaf(d, b, code == impl::v2::kLeafLocal));
        }
        for (std::uint64_t g = 0; g < cfg.gfns; ++g) {
            const std::uint64_t p = core.raw_p2m(d, g);
            if (p != 0) CHECK(core.snap(impl::v2::cell_idx(p) - 1).backs(d, g));
        }
    }
}

}  // namespace

TEST_CASE("v2 cell: sequential semantics and atomic RMWs per operation") {
    CellConfig cfg;
    cfg.frames = 4;
    cfg.records = 16;
    cfg.descs = 4;
    CellCore core(cfg);
    core.seed(0, kT, 0);
    // Warm this thread's magazine (a record and a descriptor), then count.
    CHECK(core.map_page(kT, 3, 0, kRw) == St::ok);
    std::uint32_t wm = 9;
    CHECK(core.unmap_page(kT, 3, &wm) == St::ok);
    CHECK(core.put_deferred(wm, 1));
    std::uint64_t bfn = 99;
    CHECK(rmws([&] { CHECK(core.lookup(kT, 0, 0, &bfn) == St::enoent); }) == impl::v2::kRmwLookup);
    CHECK(rmws([&] { CHECK(core.map_foreign(kC, 1, kT, 0, 0, kRw, true) == St::ok); }) ==
          impl::v2::kRmwMapNew);
    CHECK(rmws([&] { CHECK(core.lookup(kT, 0, 0, &bfn) == St::ok); }) == impl::v2::kRmwLookup);
    CHECK(bfn == 1);
    CHECK(core.map_foreign(kC, 1, kT, 0, 0, kRw, true) == St::ok);  // idempotent: no new tuple
    CHECK(core.snap(0).h.count == 2);
    CHECK(core.map_foreign(kC, 1, kT, 0, 1, kRw, false) == St::enxio);  // gfn 1 not populated
    CHECK(core.map_page(kT, 0, 0, kRw) == St::ok);
    CHECK(core.map_page(kT, 0, 0, kRw) == St::eexist);
    CHECK(core.snap(0).h.count == 3);
    std::uint32_t m = 9;
    CHECK(rmws([&] { CHECK(core.unmap_foreign(kC, 1, kT, 0, &m) == St::ok); }) ==
          impl::v2::kRmwUnmap);
    CHECK(m == 0);
    CHECK(core.snap(0).h.count == 2);
    CHECK(core.snap(0).h.deferred == 1);  // step 5: waits for the flush
    CHECK(rmws([&] { CHECK(core.put_deferred(0, 1)); }) == impl::v2::kRmwPutDeferred);
    CHECK(core.read_leaf(kC, 1) == 0);
    CHECK(rmws([&] { CHECK(core.populate(kT, 1) == St::ok); }) == impl::v2::kRmwPopulate);
    CHECK(core.snap(1).backs(kT, 1));  // R8: the lowest free frame
    std::uint32_t k = 9;
    CHECK(rmws([&] { CHECK(core.balloon(kT, 1, &m, &k) == St::ok); }) == impl::v2::kRmwBalloon);
    CHECK((m == 1 && k == 0 && core.snap(1).free()));
    // A balloon with a swap-flagged tuple: its leaf goes to scratch, its ref is deferred.
    CHECK(core.map_foreign(kC, 1, kT, 0, 0, kRw, true) == St::ok);
    std::uint64_t ahb[impl::v2::kMaxHolders], ahw[impl::v2::kMaxHolders];
    std::uint32_t na = 0;
    CHECK(core.balloon(kT, 0, &m, &k, ahb, ahw, &na) == St::ok);
    CHECK((m == 0 && k == 1 && na == 1 && ahb[0] == 1));
    CHECK(impl::v2::leaf_code(core.read_leaf(kC, 1)) == impl::v2::kLeafScratch);
    CHECK(core.snap(0).h.count == 1);  // the local entry's
    CHECK(rmws([&] { CHECK(core.put_deferred(0, 1)); }) == impl::v2::kRmwPutDeferred);
    CHECK(core.map_foreign(kC, 0, kT, 0, 0, kRw, false) == St::enxio);  // ballooned
    std::uint32_t lm = 9;
    CHECK(core.unmap_page(kT, 0, &lm) == St::ok);
    CHECK(rmws([&] { CHECK(core.put_deferred(lm, 1)); }) == impl::v2::kRmwPutDeferred);
    CHECK(core.snap(0).free());
    CHECK(core.populate(kT, 0) == St::ok);
    CHECK(core.snap(0).backs(kT, 0));
    check_quiescent(core);
}

TEST_CASE("v2 cell: stress, threads mapping, unmapping, ballooning and populating two gfns") {
    CellConfig cfg;
    cfg.frames = 4;
    cfg.doms = 2;
    cfg.gfns = 2;
    cfg.bfns = 4;
    cfg.records = 64;
    cfg.descs = 32;
    CellCore core(cfg);
    core.seed(0, kT, 0);
    core.seed(1, kT, 1);
    constexpr int kThreads = 4, kOps = 20000;
    std::atomic<int> read_writes{0};
    std::vector<std::thread> ts;
    ts.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) {
        ts.emplace_back([&core, &read_writes, t] {
            std::mt19937 rng(static_cast<unsigned>(t) + 1);
            for (int i = 0; i < kOps; ++i) {
                const auto g = static_cast<std::uint64_t>(rng() % 2);
                const auto b = static_cast<std::uint64_t>(rng() % 4);
                const auto sv = static_cast<std::uint16_t>(rng() % 2);
                std::uint32_t m = 0, k = 0;
                switch (rng() % 8) {
                    case 0:
                    case 1:
                        (void)core.map_foreign(kC, b, kT, sv, g, kRw, (rng() & 1) != 0);
                        break;
                    case 2:
                        if (core.unmap_foreign(kC, b, kT, sv, &m) == St::ok)
                            CHECK(core.put_deferred(m, 1));
                        break;
                    case 3:
                        (void)core.map_page(kT, b, g, kRw);
                        break;
                    case 4:
                        if (core.unmap_page(kT, b, &m) == St::ok) CHECK(core.put_deferred(m, 1));
                        break;
                    case 5:
                        if (core.balloon(kT, g, &m, &k) == St::ok && k != 0)
                            CHECK(core.put_deferred(m, k));
                        break;
                    case 6:
                        (void)core.populate(kT, g);
                        break;
                    default: {
                        const std::uint64_t w0 = CellCore::writes();
                        std::uint64_t bfn = 0;
                        (void)core.lookup(kT, sv, g, &bfn);
                        (void)core.read_leaf(kC, b);
                        for (std::uint32_t f = 0; f < 4; ++f) {
                            const Snap s = core.snap(f);
                            if (!s.free() && s.h.count != (s.h.allocated ? 1u : 0u) + s.n)
                                read_writes.fetch_add(1000, std::memory_order_relaxed);
                        }
                        if (CellCore::writes() != w0)
                            read_writes.fetch_add(1, std::memory_order_relaxed);
                    }
                }
            }
        });
    }
    for (auto& t : ts) t.join();
    CHECK(read_writes.load() == 0);  // reads never wrote, INV-COUNT at every snapshot
    check_quiescent(core);
}

TEST_CASE("v2 cell: a balloon swaps two tuples of one IOMMU leaf (one intent, two references)") {
    // Two swap-flagged tuples of emulator C at bfn 0 (servers 0 and 1) share one leaf: the
    // balloon must not meet its own intent there as another op's (it spun forever).
    CellConfig cfg;
    cfg.frames = 2;
    cfg.records = 16;
    cfg.descs = 4;
    CellCore core(cfg);
    core.seed(0, kT, 0);
    CHECK(core.map_foreign(kC, 0, kT, 0, 0, kRw, true) == St::ok);
    CHECK(core.map_foreign(kC, 0, kT, 1, 0, kRw, true) == St::ok);
    std::uint32_t m = 9, k = 9, na = 0;
    std::uint64_t ahb[impl::v2::kMaxHolders], ahw[impl::v2::kMaxHolders];
    CHECK(core.balloon(kT, 0, &m, &k, ahb, ahw, &na) == St::ok);
    CHECK((m == 0 && k == 2 && na == 2));
    CHECK(impl::v2::leaf_code(core.read_leaf(kC, 0)) == impl::v2::kLeafScratch);
    CHECK(core.snap(0).h.deferred == 2);
    CHECK(core.put_deferred(0, 2));
    CHECK(core.snap(0).free());
}
