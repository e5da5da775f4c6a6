// impl/relacy/cell_relacy.cpp: the v2 frame-cell protocol (impl/frame_cell.h, the real code,
// issue 16) under Relacy: map_page, map_foreign_page, unmap_foreign_page, lookup, leaf reads,
// balloon, populate and the deferred put racing on one or two frames.
//
// Checked in every schedule:
//   - INV-COUNT at every instant: every snapshot a reader takes has count == allocated +
//     holders (tuples and local entries); and at the end, with every deferred put done,
//     deferred == 0 and a frame with no reference is free;
//   - no reference on a freed frame: a deferred put always finds its frame holding the
//     deferred reference (put_deferred returns true);
//   - no tuple on a ballooned frame that no invalidate announced: every tuple left on the
//     ballooned life of the frame is one the balloon announced;
//   - reads never write: a lookup and a leaf read issue no store or RMW;
//   - at the end, every IOMMU leaf is settled (no intent left) and agrees with the cells (an
//     entry of frame m at (d, b) iff cell(m) has a holder of (d, b)), and every P2M leaf with
//     its cell (the cell backs (d, g)).
// Planted bugs (impl::v2::CellMutant; relacy_tests --mutants): each must fail a suite here.
#include <doctest/doctest.h>

#include <string>

#include "impl/frame_cell.h"
#include "impl/relacy/harness.h"

namespace {

using impl::v2::CellConfig;
using impl::v2::CellCore;
using impl::v2::CellMutant;
using impl::v2::Snap;
using impl::v2::St;

constexpr std::uint16_t kT = 0;  // the target (owner of the frames)
constexpr std::uint16_t kC = 1;  // the emulator
constexpr std::uint8_t kRw = 3;

CellConfig world(std::uint32_t frames) {
    CellConfig c;
    c.frames = frames;
    c.doms = 2;
    c.gfns = 2;
    c.bfns = 2;
    c.records = 40;  // the frames', 4 per thread's magazine (4 threads), in flight
    c.descs = 16;    // 2 per magazine, 4 for a balloon's swaps, in flight
    return c;
}

// INV-COUNT on one snapshot (any instant).
void check_count(const Snap& s) {
    if (s.free()) return;
    RL_ASSERT(s.h.count == (s.h.allocated ? 1u : 0u) + s.n);
}

// A reader's checks: snapshots of every frame satisfy INV-COUNT, and reads write nothing.
void reader(CellCore& core, std::uint64_t g) {
    const std::uint64_t w0 = CellCore::writes();
    std::uint64_t bfn = 0;
    (void)core.lookup(kT, 0, g, &bfn);
    for (std::uint32_t m = 0; m < core.config().frames; ++m) check_count(core.snap(m));
    (void)core.read_leaf(kC, 0);
    for (std::uint32_t m = 0; m < core.config().frames; ++m) check_count(core.snap(m));
    RL_ASSERT(CellCore::writes() == w0);  // a read never writes
}

// The quiescent state agrees with itself.
void check_quiescent(CellCore& core) {
    const CellConfig& cfg = core.config();
    for (std::uint32_t m = 0; m < cfg.frames; ++m) {
        const Snap s = core.snap(m);
        RL_ASSERT(!s.reserved());
        if (s.free()) continue;
        check_count(s);
        RL_ASSERT(s.h.deferred == 0);
        RL_ASSERT(s.h.count != 0);  // no reference left: it would be free
        if (s.h.allocated)
            RL_ASSERT(impl::v2::cell_idx(core.raw_p2m(s.h.owner, s.gfn)) == m + 1);  // P
        for (std::uint32_t k = 0; k < s.n; ++k) {
            const bool local = (s.hw[k] & impl::v2::kHolderLocal) != 0;
            const std::uint64_t v = core.raw_leaf(impl::v2::holder_emulator(s.hw[k]), s.hb[k]);
            RL_ASSERT(impl::v2::leaf_code(v) ==
                      (local ? impl::v2::kLeafLocal : impl::v2::kLeafForeign));
            RL_ASSERT(impl::v2::leaf_mfn(v) == m);
        }
    }
    for (std::uint16_t d = 0; d < cfg.doms; ++d) {
        for (std::uint64_t b = 0; b < cfg.bfns; ++b) {
            const std::uint64_t v = core.raw_leaf(d, b);
            const std::uint64_t code = impl::v2::leaf_code(v);
            RL_ASSERT(code != impl::v2::kLeafIntent);
            if (code == impl::v2::kLeafLocal || code == impl::v2::kLeafForeign) {
                const auto m = static_cast<std::uint32_t>(impl::v2::leaf_mfn(v));
                RL_ASSERT(m < cfg.frames);
                RL_ASSERT(core.snap(m).holds_leaf(d, b, code == impl::v2::kLeafLocal));
            }
        }
        for (std::uint64_t g = 0; g < cfg.gfns; ++g) {
            const std::uint64_t p = core.raw_p2m(d, g);
            if (p != 0) RL_ASSERT(core.snap(impl::v2::cell_idx(p) - 1).backs(d, g));
        }
    }
}

// Unmaps (c, b)'s tuple of server sv, then (the flush, not modelled here: iotlb_relacy.cpp)
// puts its deferred reference, which must still be there.
void unmap_and_put(CellCore& core, std::uint64_t b, std::uint16_t sv) {
    std::uint32_t m = 0;
    if (core.unmap_foreign(kC, b, kT, sv, &m) == St::ok) RL_ASSERT(core.put_deferred(m, 1));
}

// 1. A swap-flagged foreign map against a balloon of the same gfn (the frame kept by a local
//    entry mapped before), then a populate; a reader looks up and snapshots meanwhile.
struct CellBalloon : rl::test_suite<CellBalloon, 3> {
    CellCore* core = nullptr;
    St ballooned = St::none;
    std::uint32_t bm = 0, na = 0;
    std::uint64_t ahb[impl::v2::kMaxHolders] = {}, ahw[impl::v2::kMaxHolders] = {};

    void before() {
        core = new CellCore(world(2));
        core->seed(0, kT, 0);  // frame 0 is T's gfn 0; frame 1 free
        RL_ASSERT(core->map_page(kT, 1, 0, kRw) == St::ok);
        ballooned = St::none;
        na = 0;
    }
    void thread(unsigned i) {
        if (i == 0) {
            (void)core->map_foreign(kC, 0, kT, 0, 0, kRw, true);
        } else if (i == 1) {
            std::uint32_t k = 0;
            ballooned = core->balloon(kT, 0, &bm, &k, ahb, ahw, &na);
            if (ballooned == St::ok && k != 0) RL_ASSERT(core->put_deferred(bm, k));
            (void)core->populate(kT, 0);
        } else {
            reader(*core, 0);
        }
    }
    void after() {
        check_quiescent(*core);
        RL_ASSERT(ballooned == St::ok);
        // Every tuple left on the ballooned life of the frame was announced.
        const Snap s = core->snap(bm);
        RL_ASSERT(!s.free() && !s.h.allocated);  // the local entry keeps it
        for (std::uint32_t k = 0; k < s.n; ++k) {
            if ((s.hw[k] & impl::v2::kHolderLocal) != 0) continue;
            bool announced = false;
            for (std::uint32_t a = 0; a < na; ++a)
                announced = announced || (ahb[a] == s.hb[k] && ahw[a] == s.hw[k]);
            RL_ASSERT(announced);
        }
        delete core;
    }
};

// 2. Two maps of one IOMMU leaf (two servers, two frames) and an unmap: writers settle each
//    other's intents; a leaf read meets them.
struct CellSameLeaf : rl::test_suite<CellSameLeaf, 3> {
    CellCore* core = nullptr;

    void before() {
        core = new CellCore(world(2));
        core->seed(0, kT, 0);
        core->seed(1, kT, 1);
    }
    void thread(unsigned i) {
        if (i == 0) {
            (void)core->map_foreign(kC, 0, kT, 0, 0, kRw, false);
        } else if (i == 1) {
            (void)core->map_foreign(kC, 0, kT, 1, 1, kRw, false);
        } else {
            reader(*core, 0);
            unmap_and_put(*core, 0, 0);
        }
    }
    void after() {
        check_quiescent(*core);
        // One leaf, one frame: never both frames holding (C, 0).
        RL_ASSERT(
            !(core->snap(0).holds_leaf(kC, 0, false) && core->snap(1).holds_leaf(kC, 0, false)));
        delete core;
    }
};

// 3. Two tuples (mapped before) unmapped, two deferred references, against a balloon that
//    drops the last other reference, then populates that may take the frame again.
struct CellDeferred : rl::test_suite<CellDeferred, 3> {
    CellCore* core = nullptr;

    void before() {
        core = new CellCore(world(2));
        core->seed(0, kT, 0);
        RL_ASSERT(core->map_foreign(kC, 0, kT, 0, 0, kRw, false) == St::ok);
        RL_ASSERT(core->map_foreign(kC, 1, kT, 0, 0, kRw, false) == St::ok);
    }
    void thread(unsigned i) {
        if (i < 2) {
            unmap_and_put(*core, i, 0);
        } else {
            std::uint32_t m = 0, k = 0;
            if (core->balloon(kT, 0, &m, &k) == St::ok && k != 0)
                RL_ASSERT(core->put_deferred(m, k));
            (void)core->populate(kT, 0);
            (void)core->populate(kT, 1);
        }
    }
    void after() {
        check_quiescent(*core);
        delete core;
    }
};

// 4. Records recycled under a reader: two threads map and unmap local entries of one frame
//    (every change installs a fresh record and frees the old one at once) while a third takes
//    snapshots, each of which must satisfy INV-COUNT.
struct CellTorn : rl::test_suite<CellTorn, 3> {
    CellCore* core = nullptr;

    void before() {
        core = new CellCore(world(1));
        core->seed(0, kT, 0);
    }
    void thread(unsigned i) {
        if (i < 2) {
            for (int k = 0; k < 2; ++k) {
                std::uint32_t m = 0;
                if (core->map_page(kT, i, 0, kRw) == St::ok &&
                    core->unmap_page(kT, i, &m) == St::ok)
                    RL_ASSERT(core->put_deferred(m, 1));
            }
        } else {
            for (int k = 0; k < 4; ++k) check_count(core->snap(0));
        }
    }
    void after() {
        check_quiescent(*core);
        delete core;
    }
};

}  // namespace

namespace impl::relacy {

// The mutant sweep's checks (main.cpp), at the CI budget: one suite each (the one that targets
// the mutant: the sweep stays fast), or all four in turn (check_cell).
Verdict check_cell_balloon() {
    Verdict v;
    add(v, "cell balloon", explore<CellBalloon>("cell balloon", random_sizes(true)));
    return v;
}
Verdict check_cell_same_leaf() {
    Verdict v;
    add(v, "cell same leaf", explore<CellSameLeaf>("cell same leaf", random_sizes(true)));
    return v;
}
Verdict check_cell_deferred() {
    Verdict v;
    add(v, "cell deferred", explore<CellDeferred>("cell deferred", random_sizes(true)));
    return v;
}
Verdict check_cell() {
    Verdict v;
    for (Verdict (*check)() : {check_cell_balloon, check_cell_same_leaf, check_cell_deferred}) {
        if (v.caught) break;
        const Verdict w = check();
        v.schedules += w.schedules;
        v.secs += w.secs;
        v.caught = w.caught;
        v.suite = w.suite;
    }
    if (!v.caught) add(v, "cell torn", explore<CellTorn>("cell torn", random_sizes(true)));
    return v;
}

}  // namespace impl::relacy

TEST_CASE("relacy: v2 cell, a foreign map, lookups and a populate against a balloon") {
    CHECK(impl::relacy::explore<CellBalloon>("cell balloon", impl::relacy::random_sizes(false)).ok);
}

TEST_CASE("relacy: v2 cell, two maps and an unmap of one IOMMU leaf (intents settled)") {
    CHECK(impl::relacy::explore<CellSameLeaf>("cell same leaf", impl::relacy::random_sizes(false))
              .ok);
}

TEST_CASE("relacy: v2 cell, deferred puts against a balloon and populates") {
    CHECK(
        impl::relacy::explore<CellDeferred>("cell deferred", impl::relacy::random_sizes(false)).ok);
}

TEST_CASE("relacy: v2 cell, snapshots while records are recycled") {
    CHECK(impl::relacy::explore<CellTorn>("cell torn", impl::relacy::random_sizes(false)).ok);
}

TEST_CASE("relacy: planted v2 cell bugs are caught") {
    for (const auto& [m, name] :
         {std::pair{CellMutant::read_no_validate, "cell-read-no-validate"},
          std::pair{CellMutant::map_trusts_p2m, "cell-map-trusts-p2m"},
          std::pair{CellMutant::settle_no_bump, "cell-settle-no-bump"},
          std::pair{CellMutant::read_settles, "cell-read-settles"},
          std::pair{CellMutant::put_ignores_deferred, "cell-put-ignores-deferred"}}) {
        impl::v2::relacy::g_cell_mutant = m;
        const impl::relacy::Verdict v = impl::relacy::check_cell();
        impl::v2::relacy::g_cell_mutant = CellMutant::none;
        MESSAGE(std::string(name) << ": "
                                  << (v.caught ? "caught by " + v.suite : std::string("MISSED"))
                                  << " (" << v.schedules << " schedules, " << v.secs << " s)");
        CHECK(v.caught);
    }
}
