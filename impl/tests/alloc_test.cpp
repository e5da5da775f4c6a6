// No allocation on any read or error path of impl's data path (spec/pv-iommu.md; issue 15:
// RadixMap::get created the radix path of every key a lookup read, so 20,000 map_page calls on
// absent gfns, all -ENXIO, grew memory by about 200 MiB: a guest-triggerable denial of service).
//
// This executable replaces the global operator new/delete (impl_tests does not: its own binary)
// to count every allocation while a test's window is open. Each error row of every subop that a
// world can reach, the read-only success paths (lookup of a registered tuple, query_caps) and
// the no-op events (balloon of an absent gfn, populate with no free frame or of a mapped gfn,
// an empty drain) run thousands of times, on fresh keys spread over the 64-bit space, after one
// warm-up round (per-thread caches: Work leases, descriptor pools, Txn buffers); the count
// must be 0.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "impl/frame_cell.h"
#include "impl/hypervisor.h"

// The replacements pair malloc with free on purpose; GCC sees operator delete's free of a
// pointer from operator new (inlined) and warns.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {

std::atomic<bool> g_counting{false};
std::atomic<std::uint64_t> g_allocs{0}, g_bytes{0}, g_largest{0};

void* counted(std::size_t n, std::size_t align = 0) {
    // relaxed: the counters are read by the same thread after the window, or after joins.
    if (g_counting.load(std::memory_order_relaxed)) {
        g_allocs.fetch_add(1, std::memory_order_relaxed);
        g_bytes.fetch_add(n, std::memory_order_relaxed);
        if (n > g_largest.load(std::memory_order_relaxed))
            g_largest.store(n, std::memory_order_relaxed);  // one thread counts at a time
    }
    if (n == 0) n = 1;
    void* p =
        align == 0 ? std::malloc(n) : std::aligned_alloc(align, (n + align - 1) / align * align);
    return p;
}

}  // namespace

void* operator new(std::size_t n) {
    if (void* p = counted(n)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
    if (void* p = counted(n)) return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
    if (void* p = counted(n, static_cast<std::size_t>(a))) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) {
    if (void* p = counted(n, static_cast<std::size_t>(a))) return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

using namespace spec;

namespace {

constexpr DomId kHw{0}, kG1{1}, kG2{2}, kStub{3};

// Allocations (count, bytes) made by f.
struct Count {
    std::uint64_t allocs = 0, bytes = 0, largest = 0;
};
template <class F>
Count counting(F&& f) {
    g_allocs.store(0, std::memory_order_relaxed);
    g_bytes.store(0, std::memory_order_relaxed);
    g_largest.store(0, std::memory_order_relaxed);
    g_counting.store(true, std::memory_order_relaxed);
    f();
    g_counting.store(false, std::memory_order_relaxed);
    return Count{g_allocs.load(std::memory_order_relaxed), g_bytes.load(std::memory_order_relaxed),
                 g_largest.load(std::memory_order_relaxed)};
}

// The verdict on a window: no allocation at all. Under AddressSanitizer impl's pools free
// instead of recycling (impl/mcas.h kAddressSanitizer), so every MCAS, read-only ones included,
// allocates its descriptor there: the check is then that no radix node (2 KiB, 256 words) or
// anything as large was made.
void check_none(const Count& c) {
    if (impl::kAddressSanitizer) {
        MESSAGE("AddressSanitizer build: descriptors are not pooled; largest allocation "
                << c.largest << " bytes");
        CHECK(c.largest < 2048);
        return;
    }
    CHECK(c.allocs == 0);
}

// The verdict on a window whose only allocations may be the results of `drains` non-empty drains
// (spec::Hypervisor::drain returns a std::vector, reserved once per drain).
void check_drains_only(const Count& c, std::uint64_t drains) {
    if (impl::kAddressSanitizer) {
        check_none(c);
        return;
    }
    CHECK(c.allocs == drains);
}

// A fresh key spread over the 64-bit space (every call a new radix path), aligned to 2^order.
std::uint64_t spread(std::uint64_t i, unsigned order = 0) {
    return splitmix64(i) & ~((std::uint64_t{1} << order) - 1) & ~std::uint64_t{0xfff};
}

// Every frame taken (64 frames: hardware domain 0 and guest 1 23 RAM + 1 Xen frame each, guest 2
// and the stub domain 3 8 each), so populate finds none free. 0 and 3 are usable; 3 (quota 1,
// full) emulates guest 1 through server (1,1), 0 through (1,0); guest 2 (not usable) through
// (1,2). Frame of guest 1 gfn 5 is at max_count (12: allocation + 11 tuples of 0).
struct World {
    std::unique_ptr<spec::Hypervisor> hv;
    std::uint64_t lookup_gfn = 4;  // guest 1: a tuple of (1,0) registered by server 0
    Bfn busy_bfn{};                // 0's identity bfn that lookup registered (-EBUSY)
};

World make_world() {
    Host h;
    h.frames = 64;
    h.max_order = 2;
    h.max_count = 12;
    World w;
    w.hv = impl::make(h);
    auto& hv = *w.hv;
    REQUIRE(hv.create_domain(kHw, DomainRole::hardware, true, 23));
    REQUIRE(hv.create_domain(kG1, DomainRole::guest, false, 23));
    REQUIRE(hv.create_domain(kG2, DomainRole::guest, false, 8));
    REQUIRE(hv.create_domain(kStub, DomainRole::guest, true, 8));
    REQUIRE(hv.add_xen_gfn(kHw, Gfn{30}));
    REQUIRE(hv.add_xen_gfn(kG1, Gfn{30}));
    hv.set_quota(kStub, 1);
    hv.grant_dm(kStub, kG1);
    hv.grant_dm(kG2, kG1);
    hv.create_ioserver(kG1, IoServId{0}, kHw, 511);
    hv.create_ioserver(kG1, IoServId{1}, kStub, 511);
    hv.create_ioserver(kG1, IoServId{2}, kG2, 511);
    hv.add_rmrr(kHw, Bfn{0x5000}, 4);
    // The stub domain's quota: one local map.
    MapPage mp;
    mp.flags = Flags::with_order(0, IOMMUOP_readable);
    mp.bfn = Bfn{0x100};
    mp.gfn = Gfn{0};
    REQUIRE(run_op(hv, kStub, mp).status == Status::ok);
    // Guest 1 gfn 5's frame at max_count: allocation + 11 tuples (more than TupleVec's inline
    // 8: reading the set must not copy it).
    for (std::uint64_t k = 0; k < 11; ++k) {
        MapForeignPage f;
        f.flags = Flags::with_order(0, IOMMUOP_readable);
        f.bfn = Bfn{0x7000 + k};
        f.gfn = Gfn{5};
        f.domid = kG1;
        f.ioserver = IoServId{0};
        REQUIRE(run_op(hv, kHw, f).status == Status::ok);
    }
    // A lookup on 0's 1:1 map registers a tuple on gfn 4's frame at bfn = mfn.
    LookupForeignPage l;
    l.gfn = Gfn{w.lookup_gfn};
    l.domid = kG1;
    l.ioserver = IoServId{0};
    const OpResult lr = run_op(hv, kHw, l);
    REQUIRE(lr.status == Status::ok);
    w.busy_bfn = std::get<LookupForeignPage>(lr.op).bfn;
    return w;
}

// One row: a caller and an encoded op, and the status it must return.
struct Row {
    std::string name;
    DomId caller;
    pv_iommu_op raw;
    Status expect;
};

std::vector<Row> rows(const World& w, std::uint64_t i) {
    std::vector<Row> out;
    const auto add = [&](std::string name, DomId c, const Op& op, Status st) {
        out.push_back(Row{std::move(name), c, encode(op), st});
    };
    const std::uint16_t r = IOMMUOP_readable;
    {
        pv_iommu_op raw{};
        raw.subop_id = 99;
        out.push_back(Row{"R1 unknown subop", kHw, raw, Status::eopnotsupp});
    }
    MapPage mp;
    mp.flags = Flags::with_order(0, r);
    mp.bfn = Bfn{spread(i)};
    mp.gfn = Gfn{spread(i + 1)};
    add("map_page absent gfn -ENXIO", kHw, mp, Status::enxio);
    {
        MapPage m = mp;
        m.flags = Flags{static_cast<std::uint16_t>(r | (1u << 3))};
        add("map_page reserved flag -EINVAL", kHw, m, Status::einval);
        m.flags = Flags::with_order(3, r);
        add("map_page order -ENOSPC", kHw, m, Status::enospc);
        m.flags = Flags::with_order(0, r);
        add("map_page not usable -EPERM", kG1, m, Status::eperm);
        m.gfn = Gfn{30};
        add("map_page Xen frame -EPERM", kHw, m, Status::eperm);
        m.gfn = Gfn{1};
        m.bfn = Bfn{0x5001};
        add("map_page RMRR -EACCES", kHw, m, Status::eacces);
        m.bfn = Bfn{2};
        add("map_page identity occupied -EEXIST", kHw, m, Status::eexist);
        m.bfn = Bfn{spread(i + 2)};
        m.gfn = Gfn{1};
        add("map_page quota -ENOMEM", kStub, m, Status::enomem);
    }
    {
        UnmapPage u;
        u.bfn = Bfn{spread(i + 3)};
        add("unmap_page absent -ENOENT", kHw, u, Status::enoent);
        u.bfn = Bfn{0x7000};
        add("unmap_page foreign -EPERM", kHw, u, Status::eperm);
        u.bfn = w.busy_bfn;
        add("unmap_page claimed -EBUSY", kHw, u, Status::ebusy);
        add("unmap_page not usable -EPERM", kG1, u, Status::eperm);
    }
    MapForeignPage f;
    f.flags = Flags::with_order(0, r);
    f.bfn = Bfn{spread(i + 4)};
    f.gfn = Gfn{spread(i + 5)};
    f.domid = kG1;
    f.ioserver = IoServId{0};
    add("map_foreign_page absent gfn -ENXIO", kHw, f, Status::enxio);
    {
        MapForeignPage m = f;
        add("map_foreign_page not usable -EPERM", kG2, m, Status::eperm);
        m.domid = kHw;
        add("map_foreign_page self -EPERM", kHw, m, Status::eperm);
        m.domid = DomId{50};
        add("map_foreign_page dead domid -ENXIO", kHw, m, Status::enxio);
        m.domid = kG2;
        add("map_foreign_page no privilege -EPERM", kStub, m, Status::eperm);
        m.domid = kG1;
        m.ioserver = IoServId{7};
        add("map_foreign_page ioserver -ENODEV", kHw, m, Status::enodev);
        m.ioserver = IoServId{0};
        m.gfn = Gfn{30};
        add("map_foreign_page Xen frame -EPERM", kHw, m, Status::eperm);
        m.gfn = Gfn{1};
        m.bfn = Bfn{0x5002};
        add("map_foreign_page RMRR -EACCES", kHw, m, Status::eacces);
        m.bfn = Bfn{3};
        add("map_foreign_page identity -EEXIST", kHw, m, Status::eexist);
        m.bfn = Bfn{spread(i + 6)};
        m.gfn = Gfn{5};
        add("map_foreign_page count -EOVERFLOW, frame of 11 tuples", kHw, m, Status::eoverflow);
        m.gfn = Gfn{1};
        m.ioserver = IoServId{1};
        add("map_foreign_page quota -ENOMEM", kStub, m, Status::enomem);
    }
    {
        LookupForeignPage l;
        l.gfn = Gfn{spread(i + 7)};
        l.domid = kG1;
        l.ioserver = IoServId{0};
        add("lookup_foreign_page absent gfn -ENXIO", kHw, l, Status::enxio);
        l.gfn = Gfn{w.lookup_gfn};
        add("lookup_foreign_page registered (read-only success)", kHw, l, Status::ok);
        l.gfn = Gfn{30};
        add("lookup_foreign_page Xen frame -EPERM", kHw, l, Status::eperm);
        l.gfn = Gfn{6};
        l.ioserver = IoServId{1};
        add("lookup_foreign_page no tuple, no 1:1 -ENOENT", kStub, l, Status::enoent);
        l.gfn = Gfn{5};
        add("lookup_foreign_page -ENOENT, frame of 11 tuples", kStub, l, Status::enoent);
        l.ioserver = IoServId{2};
        l.bfn = Bfn{spread(i + 8)};
        add("lookup_foreign_page not usable, bfn given -EINVAL", kG2, l, Status::einval);
        l.flags = Flags::with_order(1, 0);
        add("lookup_foreign_page order -ENOSPC", kG2, l, Status::enospc);
    }
    {
        UnmapForeignPage u;
        u.bfn = Bfn{spread(i + 9)};
        u.domid = kG1;
        u.ioserver = IoServId{0};
        add("unmap_foreign_page absent -ENOENT", kHw, u, Status::enoent);
        add("unmap_foreign_page not usable, absent -ENOENT", kG2, u, Status::enoent);
        u.bfn = Bfn{2};
        add("unmap_foreign_page identity -ENOENT", kHw, u, Status::enoent);
        u.bfn = Bfn{0x7003};
        u.ioserver = IoServId{1};
        add("unmap_foreign_page other key, frame of 11 tuples -ENOENT", kHw, u, Status::enoent);
    }
    add("query_caps", kHw, QueryCaps{}, Status::ok);
    return out;
}

// Runs every row and the no-op events for keys [from, to); returns the number of wrong
// statuses and outcomes.
std::uint64_t run_rows(World& w, std::uint64_t from, std::uint64_t to) {
    auto& hv = *w.hv;
    std::uint64_t bad = 0;
    for (std::uint64_t i = from; i < to; ++i) {
        for (Row& row : rows(w, i * 16)) {
            (void)hv.iommu_op(row.caller, std::span<pv_iommu_op>(&row.raw, 1));
            if (row.raw.status != static_cast<std::int32_t>(row.expect)) {
                ++bad;
                MESSAGE(row.name << ": status " << row.raw.status);
            }
        }
        bad += hv.balloon(kG1, Gfn{spread(i * 16 + 10)}).mfn.has_value();   // absent: nothing
        bad += hv.balloon(kG1, Gfn{30}).mfn.has_value();                    // Xen frame (F7)
        bad += hv.populate(kG2, Gfn{spread(i * 16 + 11)}).mfn.has_value();  // none free
        bad += hv.populate(kG2, Gfn{1}).mfn.has_value();                    // mapped gfn
        bad += !hv.drain(kG1, IoServId{0}, 4).empty();                      // empty
    }
    return bad;
}

}  // namespace

TEST_CASE("alloc: no read or error path allocates (issue 15)") {
    World w = make_world();
    // The rows vector itself allocates: built outside the window, per key, below.
    std::vector<std::vector<Row>> all;
    constexpr std::uint64_t kKeys = 2000;
    REQUIRE(run_rows(w, 0, 200) == 0);  // warm-up: per-thread caches, pools
    for (std::uint64_t i = 200; i < 200 + kKeys; ++i) all.push_back(rows(w, i * 16));
    // Counted per row, so that a failure names the rows that allocate.
    const std::size_t nrows = all[0].size();
    const std::vector<std::string> events{"balloon of an absent gfn", "balloon of a Xen gfn",
                                          "populate, no frame free", "populate of a mapped gfn",
                                          "drain, nothing pending"};
    std::vector<Count> per(nrows + events.size());
    const auto tally = [&](std::size_t j, auto&& f) {
        const Count one = counting(f);
        per[j].allocs += one.allocs;
        per[j].bytes += one.bytes;
        per[j].largest = std::max(per[j].largest, one.largest);
    };
    std::uint64_t bad = 0, calls = 0;
    auto& hv = *w.hv;
    for (std::uint64_t k = 0; k < kKeys; ++k) {
        for (std::size_t j = 0; j < nrows; ++j) {
            Row& row = all[k][j];
            tally(j, [&] { (void)hv.iommu_op(row.caller, std::span<pv_iommu_op>(&row.raw, 1)); });
            bad += row.raw.status != static_cast<std::int32_t>(row.expect);
            ++calls;
        }
        const std::uint64_t i = k + 200;
        tally(nrows, [&] { bad += hv.balloon(kG1, Gfn{spread(i * 16 + 10)}).mfn.has_value(); });
        tally(nrows + 1, [&] { bad += hv.balloon(kG1, Gfn{30}).mfn.has_value(); });
        tally(nrows + 2,
              [&] { bad += hv.populate(kG2, Gfn{spread(i * 16 + 11)}).mfn.has_value(); });
        tally(nrows + 3, [&] { bad += hv.populate(kG2, Gfn{1}).mfn.has_value(); });
        tally(nrows + 4, [&] { bad += !hv.drain(kG1, IoServId{0}, 4).empty(); });
        calls += events.size();
    }
    Count c;
    for (std::size_t j = 0; j < per.size(); ++j) {
        c.allocs += per[j].allocs;
        c.bytes += per[j].bytes;
        c.largest = std::max(c.largest, per[j].largest);
        if (per[j].allocs != 0 && !impl::kAddressSanitizer)
            MESSAGE("  allocates: " << (j < nrows ? all[0][j].name : events[j - nrows]) << ": "
                                    << per[j].allocs << " allocations, " << per[j].bytes
                                    << " bytes");
    }
    MESSAGE("alloc: " << calls << " read/error-path calls (" << nrows << " subop rows + "
                      << events.size() << " events, x " << kKeys << " keys): " << c.allocs
                      << " allocations, " << c.bytes << " bytes");
    CHECK(bad == 0);
    check_none(c);
    impl::epoch_quiesce();
}

TEST_CASE("alloc: 20,000 map_page on absent gfns allocate nothing (issue 15's DoS)") {
    World w = make_world();
    REQUIRE(run_rows(w, 0, 1) == 0);
    constexpr std::uint64_t kCalls = 20000;
    std::vector<pv_iommu_op> ops(kCalls);
    for (std::uint64_t i = 0; i < kCalls; ++i) {
        MapPage mp;
        mp.flags = Flags::with_order(0, IOMMUOP_readable);
        mp.bfn = Bfn{0x200000 + i};
        mp.gfn = Gfn{spread(i + 1000000)};
        ops[i] = encode(mp);
    }
    std::uint64_t bad = 0;
    const Count c = counting([&] {
        for (auto& raw : ops) {
            (void)w.hv->iommu_op(kHw, std::span<pv_iommu_op>(&raw, 1));
            bad += raw.status != static_cast<std::int32_t>(Status::enxio);
        }
    });
    MESSAGE("alloc: " << kCalls << " map_page on absent gfns: " << c.allocs << " allocations, "
                      << c.bytes / (1024 * 1024) << " MiB");
    CHECK(bad == 0);
    check_none(c);
    impl::epoch_quiesce();
}

TEST_CASE("alloc: the counter sees allocations (non-vacuity)") {
    static std::vector<std::uint64_t>* volatile sink = nullptr;  // not elided
    const Count c = counting([] { sink = new std::vector<std::uint64_t>(63); });
    delete sink;
    CHECK(c.allocs == 2);  // the vector and its 63 elements
    CHECK(c.bytes == sizeof(std::vector<std::uint64_t>) + 63 * sizeof(std::uint64_t));
}

// Issue 16's v2 frame-cell core (impl/frame_cell.h): every data-path operation, success and
// error paths, allocates nothing (records and intent descriptors come from arenas made by the
// constructor, through per-thread magazines; a thread's slot is a static thread_local).
TEST_CASE("alloc: the v2 frame-cell core allocates nothing on any data-path operation") {
    impl::v2::CellConfig cfg;
    cfg.frames = 8;
    cfg.doms = 2;
    cfg.gfns = 4;
    cfg.bfns = 4;
    cfg.records = 64;
    cfg.descs = 16;
    impl::v2::CellCore core(cfg);
    for (std::uint32_t g = 0; g < 3; ++g) core.seed(g, 0, g);  // gfn 3 not populated
    using impl::v2::St;
    std::uint64_t sts = 0;  // statuses seen (bit per St): the loop reaches errors and successes
    const auto round = [&](std::uint64_t i) {
        const std::uint64_t g = i % 4, b = (i / 4) % 4;
        std::uint32_t m = 0, k = 0;
        std::uint64_t bfn = 0;
        const auto seen = [&](St st) { sts |= std::uint64_t{1} << static_cast<int>(st); };
        seen(core.map_foreign(1, b, 0, static_cast<std::uint16_t>(i % 2), g, 3, (i & 4) != 0));
        seen(core.lookup(0, static_cast<std::uint16_t>(i % 2), g, &bfn));
        (void)core.read_leaf(1, b);
        seen(core.map_page(0, b, g, 3));
        if (const St st = core.unmap_foreign(1, b, 0, static_cast<std::uint16_t>(i % 2), &m);
            st == St::ok)
            CHECK(core.put_deferred(m, 1));
        if (i % 3 == 0 && core.unmap_page(0, b, &m) == St::ok) CHECK(core.put_deferred(m, 1));
        if (i % 5 == 0 && core.balloon(0, g, &m, &k) == St::ok && k != 0)
            CHECK(core.put_deferred(m, k));
        seen(core.populate(0, g));
    };
    for (std::uint64_t i = 0; i < 64; ++i) round(i);  // warm-up: this thread's slot, magazines
    const Count c = counting([&] {
        for (std::uint64_t i = 64; i < 10064; ++i) round(i);
    });
    MESSAGE("alloc: v2 cell core, 10,000 rounds of 8 ops: " << c.allocs << " allocations");
    for (const St st : {St::ok, St::enxio, St::eexist, St::none})
        CHECK((sts >> static_cast<int>(st) & 1) != 0);
    check_none(c);
}

// Issue 16: "no allocation anywhere on the data path": the success paths too, in a steady
// state (after a warm-up that fills the per-thread pools): map_foreign_page and
// unmap_foreign_page toggling tuples on a few frames, with the R11 flush and deferred put.
TEST_CASE("alloc: steady-state map/unmap_foreign_page successes allocate nothing (issue 16)") {
    World w = make_world();
    auto& hv = *w.hv;
    const auto toggle = [&](std::uint64_t i) {
        MapForeignPage f;
        f.flags = Flags::with_order(0, IOMMUOP_readable | IOMMUOP_writeable);
        f.bfn = Bfn{0x9000 + i % 8};
        f.gfn = Gfn{6 + i % 4};
        f.domid = kG1;
        f.ioserver = IoServId{0};
        REQUIRE(run_op(hv, kHw, f).status == Status::ok);
        UnmapForeignPage u;
        u.bfn = f.bfn;
        u.domid = kG1;
        u.ioserver = IoServId{0};
        REQUIRE(run_op(hv, kHw, u).status == Status::ok);
    };
    for (std::uint64_t i = 0; i < 2000; ++i) toggle(i);  // warm-up: pools, radix paths
    const Count c = counting([&] {
        for (std::uint64_t i = 0; i < 10000; ++i) toggle(i);
    });
    MESSAGE("20,000 successful map/unmap_foreign_page calls: " << c.allocs << " allocations, "
                                                               << c.bytes << " bytes");
    check_none(c);
}

// The other data-path successes in their steady state: a local map and unmap, and a balloon of
// a frame with a swap-flagged tuple (R7: the entry becomes the emulator's scratch page, the
// invalidate goes onto the server's ring, the deferred reference is put after the flush), the
// populate that takes the frame back, the drain of the invalidate and the unmap of the scratch
// entry. drain() returns its requests in a std::vector (spec::Hypervisor's interface): that
// vector is the only allocation allowed, one per non-empty drain.
TEST_CASE("alloc: steady-state local maps, balloons, populates, drains: drain's result only") {
    World w = make_world();
    auto& hv = *w.hv;
    const std::uint16_t rw = IOMMUOP_readable | IOMMUOP_writeable;
    std::uint64_t drained = 0;
    const auto cycle = [&](std::uint64_t i) {
        MapPage mp;
        mp.flags = Flags::with_order(0, rw);
        mp.bfn = Bfn{0x9100 + i % 8};
        mp.gfn = Gfn{7 + i % 4};
        REQUIRE(run_op(hv, kHw, mp).status == Status::ok);
        UnmapPage up;
        up.bfn = mp.bfn;
        REQUIRE(run_op(hv, kHw, up).status == Status::ok);
        MapForeignPage f;
        f.flags = Flags::with_order(0, rw | IOMMUOP_swap_mfn);
        f.bfn = Bfn{0x9200 + i % 8};
        f.gfn = Gfn{10};
        f.domid = kG1;
        f.ioserver = IoServId{0};
        REQUIRE(run_op(hv, kHw, f).status == Status::ok);
        const BalloonOutcome b = hv.balloon(kG1, Gfn{10});
        REQUIRE(b.mfn.has_value());
        REQUIRE(b.invalidates == 1);
        REQUIRE(b.synchronous == 0);
        REQUIRE(hv.populate(kG1, Gfn{10}).mfn.has_value());
        const std::vector<IoReq> reqs = hv.drain(kG1, IoServId{0}, 16);
        REQUIRE(reqs.size() == 1);
        drained += reqs.size();
        UnmapForeignPage u;  // R5, F5: the scratch entry the balloon left
        u.bfn = f.bfn;
        u.domid = kG1;
        u.ioserver = IoServId{0};
        REQUIRE(run_op(hv, kHw, u).status == Status::ok);
    };
    for (std::uint64_t i = 0; i < 2000; ++i) cycle(i);  // warm-up: pools, radix paths
    constexpr std::uint64_t kCycles = 5000;
    const Count c = counting([&] {
        for (std::uint64_t i = 0; i < kCycles; ++i) cycle(i);
    });
    MESSAGE(kCycles << " cycles of 7 calls: " << c.allocs << " allocations, " << c.bytes
                    << " bytes, largest " << c.largest);
    CHECK(drained == 2000 + kCycles);
    check_drains_only(c, kCycles);
}

// The synchronous channel in its steady state (R7: an invalidate that finds the ring full goes
// there; D11: a drain takes the ring first, then the channel). Server 3 of guest 1 has a ring of
// 2 slots, so of two balloons of frames with its swap-flagged tuples, the first invalidate
// fills the ring and the second is queued; one drain takes both and retires the queue's node.
// Queue nodes are recycled through a per-thread pool after their grace period (they used to be
// allocated per queued invalidate and freed by EBR).
TEST_CASE("alloc: steady-state synchronous invalidates allocate nothing but drain's result") {
    World w = make_world();
    auto& hv = *w.hv;
    hv.create_ioserver(kG1, IoServId{3}, kHw, 2);
    const std::uint16_t rw = IOMMUOP_readable | IOMMUOP_writeable;
    std::uint64_t synchronous = 0;
    const auto cycle = [&] {
        for (std::uint64_t k = 0; k < 2; ++k) {
            MapForeignPage f;
            f.flags = Flags::with_order(0, rw | IOMMUOP_swap_mfn);
            f.bfn = Bfn{0x9300 + k};
            f.gfn = Gfn{10 + k};
            f.domid = kG1;
            f.ioserver = IoServId{3};
            REQUIRE(run_op(hv, kHw, f).status == Status::ok);
            const BalloonOutcome b = hv.balloon(kG1, f.gfn);
            REQUIRE(b.invalidates == 1);
            synchronous += b.synchronous;
            REQUIRE(hv.populate(kG1, f.gfn).mfn.has_value());
        }
        REQUIRE(hv.drain(kG1, IoServId{3}, 16).size() == 2);
        for (std::uint64_t k = 0; k < 2; ++k) {
            UnmapForeignPage u;  // the scratch entry
            u.bfn = Bfn{0x9300 + k};
            u.domid = kG1;
            u.ioserver = IoServId{3};
            REQUIRE(run_op(hv, kHw, u).status == Status::ok);
        }
    };
    for (std::uint64_t i = 0; i < 2000; ++i) cycle();  // warm-up: pools, radix paths
    constexpr std::uint64_t kCycles = 5000;
    synchronous = 0;
    const Count c = counting([&] {
        for (std::uint64_t i = 0; i < kCycles; ++i) cycle();
    });
    MESSAGE(kCycles << " cycles, " << synchronous << " synchronous invalidates: " << c.allocs
                    << " allocations, " << c.bytes << " bytes, largest " << c.largest);
    CHECK(synchronous == kCycles);  // one queued invalidate per cycle: the path is exercised
    check_drains_only(c, kCycles);
}

// A frame with more tuples than a Small list holds inline (guest 1 gfn 5: 11 tuples): every
// unmap and map of one of them copies its set (10 or 11 tuples) and makes a record of that
// size. Both come from the block pool (size classes beyond 8 tuples), so the steady state
// allocates nothing here either.
TEST_CASE("alloc: steady-state toggles on a frame of 11 tuples allocate nothing") {
    World w = make_world();
    auto& hv = *w.hv;
    const auto toggle = [&](std::uint64_t i) {
        UnmapForeignPage u;
        u.bfn = Bfn{0x7000 + i % 11};
        u.domid = kG1;
        u.ioserver = IoServId{0};
        REQUIRE(run_op(hv, kHw, u).status == Status::ok);
        MapForeignPage f;
        f.flags = Flags::with_order(0, IOMMUOP_readable);
        f.bfn = u.bfn;
        f.gfn = Gfn{5};
        f.domid = kG1;
        f.ioserver = IoServId{0};
        REQUIRE(run_op(hv, kHw, f).status == Status::ok);
    };
    for (std::uint64_t i = 0; i < 2000; ++i) toggle(i);  // warm-up: pools
    const Count c = counting([&] {
        for (std::uint64_t i = 0; i < 10000; ++i) toggle(i);
    });
    MESSAGE("20,000 toggles of a tuple on a frame of 11: " << c.allocs << " allocations, "
                                                           << c.bytes << " bytes");
    check_none(c);
}
