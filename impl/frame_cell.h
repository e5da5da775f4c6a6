// impl/frame_cell.h: the v2 frame-cell protocol (issue 16; impl/README.md, "v2"), the core of
// the redesigned data path, written over impl::Atomic (impl/atomic.h) so that the same code runs
// in the product build, under TSan (impl/tests/cell_test.cpp) and under Relacy
// (impl/relacy/cell_relacy.cpp). Not yet wired into impl::Hypervisor, which still runs every
// operation as one MCAS (impl/hypervisor.cpp); this is the standalone, model-checked core.
//
// State (CellCore):
//   - per MFN one 64-bit CELL: bit 63 "reserved" (a populate between its frame and its P2M
//     write), bits 34-62 a sequence number (bumped by every CAS), bits 2-33 the index of an
//     immutable RECORD in a preallocated arena (0: the frame is free), bits 0-1 zero (so that an
//     MCAS may compare and swap a cell like any other word). Every change of a frame is ONE CAS
//     of its cell that installs a freshly filled record (or bumps the sequence).
//   - a RECORD: the frame header (count, allocated, state, owner, deferred: the frame word of
//     v1), the frame's gfn (M2P: the P2M check is folded into the cell), and its HOLDERS: every
//     tuple (foreign holder) AND every local entry (local holder) that holds a reference. So
//     INV-COUNT (count == allocated + holders; deferred references apart) is a property of one
//     record: it holds at every instant, by construction.
//   - per (domain, gfn) a P2M leaf: 0 or enc(mfn + 1). It is a hint; the truth is the cell:
//     P2M(d, g) = m  iff  leaf(d, g) == m AND cell(m) is allocated, owned by d, with gfn g, not
//     reserved. Invariant P: cell(m) allocated for (d, g) implies leaf(d, g) == m (populate
//     writes the leaf before it un-reserves the cell; balloon changes the cell before it clears
//     the leaf).
//   - per (domain, bfn) an IOMMU leaf: 0, an entry (local/foreign/scratch, perms, mfn), or an
//     INTENT: enc(5 | descriptor index << 8 | generation << 32). An intent names a descriptor
//     (mfn m, holder h, add/remove, the leaf's value before and after). Its DECISION is the
//     cell: an add intent is decided iff h is in cell(m)'s record, a remove intent iff h is not.
//     A reader (device walk, lookup) that meets an intent reads cell(m) and computes the leaf's
//     value: it never writes. A writer that meets one SETTLES it: bumps cell(m)'s sequence (a
//     fence: the owner's pending cell CAS, which expects an older cell value, can no longer
//     succeed), reads the decision from the cell and CASes the leaf to its value.
//
// Reads never write and take no grace period: a record or descriptor is recycled as soon as
// its cell (leaf) moves off it, and a reader validates (seqlock): load the cell (acquire), read
// the record's fields (relaxed), fence(acquire), load the cell again; equal means the record
// was the cell's for the whole read (the sequence number never repeats within 2^29 changes of
// one cell). A writer fills a popped record after a fence(release), so a reader that reads a
// refilled field synchronizes with it and then sees the cell moved. Reason for this over a
// pointer to an EBR-reclaimed record: no epoch pin and no fence per operation, no retire list,
// a fixed arena (bounded memory, no allocation), and a 64-bit cell (one CMPXCHG, which MCAS can
// also handle; a 16-byte CMPXCHG16B cell is not an MCAS word and Relacy has no 16-byte atomics).
//
// Linearization points (every op re-reads and restarts when a CAS fails):
//   populate   the CAS that clears "reserved" (by the populate or a helper that saw the leaf)
//   balloon    the cell CAS (allocated off, swapped holders out and their references moved to
//              the deferred field, the allocation reference dropped); the P2M leaf is cleared
//              after it (by it, or by a populate that helps)
//   map        (local map_page and map_foreign_page) the cell CAS that adds the holder; the
//              leaf's intent, installed before, becomes the entry at that instant
//   unmap      the cell CAS that removes the holder (reference -> deferred); then the flush
//              (the caller's), then put_deferred
//   lookup     the validated snapshot of cell(m): no write at all
//   errors     the validated read the status was decided on
//
// Atomic RMWs per op, uncontended (counted by impl/tests/cell_test.cpp in a
// -DPVIOMMU_COUNT_RMW=ON build): see kRmw* below.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "impl/atomic.h"

namespace impl::v2 {

// Planted bugs of the protocol (impl/relacy/cell_relacy.cpp must catch each; main.cpp's sweep).
enum class CellMutant : int {
    none = 0,
    read_no_validate,      // a snapshot skips the seqlock re-check of the cell
    map_trusts_p2m,        // map decides on the P2M leaf, not the cell (the P2M check not folded)
    settle_no_bump,        // a helper settles another op's intent without fencing the owner
    read_settles,          // a leaf read that meets an intent settles it (a read that writes)
    put_ignores_deferred,  // a deferred put frees at count 0 while other deferred refs remain
};
#ifdef PVIOMMU_RELACY
namespace relacy {
// Set only between Relacy runs (the test's own thread), read by the simulated threads.
inline CellMutant g_cell_mutant = CellMutant::none;
}  // namespace relacy
[[nodiscard]] inline bool planted(CellMutant m) { return relacy::g_cell_mutant == m; }
#else
[[nodiscard]] constexpr bool planted(CellMutant) { return false; }
#endif

enum class St { ok, enxio, eexist, enoent, eperm, none };
enum class FState : std::uint8_t { free = 0, xen = 1, owned = 2 };  // spec::FrameState's values

inline constexpr std::uint32_t kMaxHolders = 4;  // per record (the model's; v2 product: chains)
static_assert(kMaxHolders % 2 == 0, "a record packs two holders' bfns per word");

// Atomic RMWs per operation, uncontended, once the thread's magazine holds a record and a
// descriptor (after its first op; every CAS, exchange and fetch_add through impl::Atomic;
// cell_test.cpp checks them, also against impl::rmw_count() in a counting build). An op whose
// magazine is empty (or full) adds one Treiber-stack CAS per record or descriptor.
inline constexpr int kRmwMapNew = 3;       // CAS leaf -> intent, CAS cell, CAS leaf -> entry
inline constexpr int kRmwUnmap = 3;        // the same (holder out, its reference -> deferred)
inline constexpr int kRmwPutDeferred = 1;  // CAS cell (also when it frees)
inline constexpr int kRmwBalloon = 2;      // CAS cell, CAS P2M leaf (no swaps; +2 per swap)
inline constexpr int kRmwPopulate = 3;     // CAS cell (reserve), CAS P2M leaf, CAS cell
inline constexpr int kRmwLookup = 0;       // reads only

// ---- cells ----------------------------------------------------------------------------------
inline constexpr std::uint64_t kReserved = std::uint64_t{1} << 63;
inline constexpr std::uint64_t kSeqOne = std::uint64_t{1} << 34;
inline constexpr std::uint64_t kSeqMask = ((std::uint64_t{1} << 29) - 1) << 34;
[[nodiscard]] constexpr std::uint32_t cell_idx(std::uint64_t c) {
    return static_cast<std::uint32_t>(c >> 2);
}
// The cell after c with record index i: the sequence number moves on, "reserved" as given.
[[nodiscard]] constexpr std::uint64_t next_cell(std::uint64_t c, std::uint32_t i, bool reserved) {
    return (reserved ? kReserved : 0) | (((c & kSeqMask) + kSeqOne) & kSeqMask) |
           (std::uint64_t{i} << 2);
}

// ---- the frame header (a record's hdr field: v1's frame word, not enc'd) -----------------------
struct Hdr {
    std::uint32_t count = 0;
    bool allocated = false;
    FState state = FState::free;
    std::uint16_t owner = 0;
    std::uint32_t deferred = 0;
};
[[nodiscard]] constexpr std::uint64_t pack(const Hdr& h) {
    return std::uint64_t{h.count} | std::uint64_t{h.allocated} << 32 |
           std::uint64_t(h.state) << 33 | std::uint64_t{h.owner} << 35 |
           std::uint64_t{h.deferred} << 50;
}
[[nodiscard]] constexpr Hdr unpack(std::uint64_t v) {
    return Hdr{static_cast<std::uint32_t>(v), ((v >> 32) & 1) != 0,
               static_cast<FState>((v >> 33) & 3), static_cast<std::uint16_t>((v >> 35) & 0x7fff),
               static_cast<std::uint32_t>((v >> 50) & 0xfff)};
}

// ---- holders (hb: the bfn; hw: kind and who) ---------------------------------------------------
inline constexpr std::uint64_t kHolderLocal = 1, kHolderSwap = 2;
[[nodiscard]] constexpr std::uint64_t foreign_holder(std::uint16_t emulator, std::uint16_t domid,
                                                     std::uint16_t ioserver, bool swap) {
    return (swap ? kHolderSwap : 0) | std::uint64_t{emulator} << 3 | std::uint64_t{domid} << 19 |
           std::uint64_t{ioserver} << 35;
}
[[nodiscard]] constexpr std::uint64_t local_holder(std::uint16_t dom) {
    return kHolderLocal | std::uint64_t{dom} << 3;
}
[[nodiscard]] constexpr std::uint16_t holder_emulator(std::uint64_t hw) {
    return static_cast<std::uint16_t>(hw >> 3);
}
[[nodiscard]] constexpr std::uint16_t holder_domid(std::uint64_t hw) {
    return static_cast<std::uint16_t>(hw >> 19);
}
[[nodiscard]] constexpr std::uint16_t holder_ioserver(std::uint64_t hw) {
    return static_cast<std::uint16_t>(hw >> 35);
}
// The tuple identity (bfn, domid, ioserver) and kind, without the swap flag.
[[nodiscard]] constexpr std::uint64_t holder_key(std::uint64_t hw) { return hw & ~kHolderSwap; }

// ---- IOMMU leaves (as impl/hypervisor.cpp's, enc'd) --------------------------------------------
enum : std::uint64_t { kLeafLocal = 2, kLeafForeign = 3, kLeafScratch = 4, kLeafIntent = 5 };
[[nodiscard]] constexpr std::uint64_t leaf_entry(std::uint64_t code, std::uint8_t perms,
                                                 std::uint64_t mfn) {
    return (code | std::uint64_t{perms} << 3 | mfn << 5) << 2;
}
[[nodiscard]] constexpr std::uint64_t leaf_code(std::uint64_t v) { return (v >> 2) & 7; }
[[nodiscard]] constexpr std::uint64_t leaf_mfn(std::uint64_t v) {
    return (v >> 7) & ((std::uint64_t{1} << 35) - 1);
}
[[nodiscard]] constexpr std::uint64_t leaf_intent(std::uint32_t desc, std::uint64_t gen) {
    return (kLeafIntent | std::uint64_t{desc} << 8 | (gen & 0x3fffffff) << 32) << 2;
}
[[nodiscard]] constexpr std::uint32_t intent_desc(std::uint64_t v) {
    return static_cast<std::uint32_t>((v >> 10) & 0xffffff);
}

// The P2M check folded into the cell: does the frame whose cell, header and gfn these are back
// (d, g), i.e. is it P2M(d, g)?
[[nodiscard]] constexpr bool cell_backs(std::uint64_t cell, const Hdr& h, std::uint64_t gfn,
                                        std::uint16_t d, std::uint64_t g) {
    return cell_idx(cell) != 0 && (cell & kReserved) == 0 && h.allocated && h.owner == d &&
           gfn == g;
}

// ---- a plain snapshot of a cell and its record -------------------------------------------------
struct Snap {
    std::uint64_t cell = 0;
    Hdr h;
    std::uint64_t gfn = 0;
    std::uint32_t n = 0;
    std::uint64_t hb[kMaxHolders] = {};
    std::uint64_t hw[kMaxHolders] = {};
    [[nodiscard]] bool free() const { return cell_idx(cell) == 0; }
    [[nodiscard]] bool reserved() const { return (cell & kReserved) != 0; }
    // The P2M check folded into the cell: is this frame P2M(d, g)?
    [[nodiscard]] bool backs(std::uint16_t d, std::uint64_t g) const {
        return cell_backs(cell, h, gfn, d, g);
    }
    [[nodiscard]] int find(std::uint64_t bfn, std::uint64_t hw_key) const {
        for (std::uint32_t i = 0; i < n; ++i)
            if (hb[i] == bfn && holder_key(hw[i]) == hw_key) return static_cast<int>(i);
        return -1;
    }
    // Any holder of the leaf (dom, bfn) of this kind: a local holder of dom, or a foreign
    // holder whose emulator is dom.
    [[nodiscard]] bool holds_leaf(std::uint16_t dom, std::uint64_t bfn, bool local) const {
        for (std::uint32_t i = 0; i < n; ++i)
            if (hb[i] == bfn && ((hw[i] & kHolderLocal) != 0) == local &&
                holder_emulator(hw[i]) == dom)
                return true;
        return false;
    }
};

// Sizes of one CellCore (the model's small worlds; the product's would be the host's).
struct CellConfig {
    std::uint32_t frames = 2, doms = 2, gfns = 2, bfns = 2;
    std::uint32_t records = 16, descs = 8;
};

// The protocol core: cells, arenas, P2M and IOMMU leaves of a small world. Every method is a
// data-path operation (lock-free; no allocation: arenas are made by the constructor).
class CellCore {
public:
    explicit CellCore(const CellConfig& cfg);
    CellCore(const CellCore&) = delete;
    CellCore& operator=(const CellCore&) = delete;

    // Control plane, before any data-path operation: frame m owned by d at gfn g, count 1
    // (the allocation reference), and the P2M leaf.
    void seed(std::uint32_t m, std::uint16_t d, std::uint64_t g);

    // ---- data path ----
    // R8: the lowest free frame for (d, g); none if g has a frame or none is free.
    St populate(std::uint16_t d, std::uint64_t g, std::uint32_t* got = nullptr);
    // R7: balloon (d, g) out (St::ok; St::none: nothing to do). announced_*[0..*n_announced):
    // the tuples it saw at its linearization point (F8: one invalidate each); swapped ones are
    // re-pointed at scratch and their references deferred: the caller flushes, then
    // put_deferred(*mfn, *deferred_refs).
    St balloon(std::uint16_t d, std::uint64_t g, std::uint32_t* mfn, std::uint32_t* deferred_refs,
               std::uint64_t* announced_hb = nullptr, std::uint64_t* announced_hw = nullptr,
               std::uint32_t* n_announced = nullptr);
    // R6 map_page (order 0): a local entry of c's own gfn g at bfn b.
    St map_page(std::uint16_t c, std::uint64_t b, std::uint64_t g, std::uint8_t perms);
    // R6 unmap_page (order 0) of a local entry: then flush, then put_deferred (the caller's).
    St unmap_page(std::uint16_t c, std::uint64_t b, std::uint32_t* deferred_mfn);
    // R3 map_foreign_page (order 0).
    St map_foreign(std::uint16_t c, std::uint64_t b, std::uint16_t t, std::uint16_t s,
                   std::uint64_t g, std::uint8_t perms, bool swap);
    // R5 unmap_foreign_page: then flush, then put_deferred.
    St unmap_foreign(std::uint16_t c, std::uint64_t b, std::uint16_t t, std::uint16_t s,
                     std::uint32_t* deferred_mfn);
    // R4's registered path: the lowest bfn of a tuple of (t, s) in P2M(t, g)'s frame. Reads only.
    St lookup(std::uint16_t t, std::uint16_t s, std::uint64_t g, std::uint64_t* bfn);
    // R11 step 7: put k deferred references of m (after the flush); frees at count 0 and
    // deferred 0 (then *freed, if given, is set: this put freed the frame). False: m had fewer
    // than k deferred references (a protocol violation).
    bool put_deferred(std::uint32_t m, std::uint32_t k, bool* freed = nullptr);

    // ---- reads (never write) ----
    [[nodiscard]] Snap snap(std::uint32_t m) const {
        Snap s;
        snap_into(m, s);
        return s;
    }
    // The same into s.
    void snap_into(std::uint32_t m, Snap& s) const;
    // The logical value of IOMMU leaf (c, b): an intent resolved through its cell.
    [[nodiscard]] std::uint64_t read_leaf(std::uint16_t c, std::uint64_t b);
    [[nodiscard]] std::uint64_t raw_leaf(std::uint16_t c, std::uint64_t b) const {
        return leaf(c, b).load(std::memory_order_acquire);  // acquire: pairs with the CASes
    }
    [[nodiscard]] std::uint64_t raw_p2m(std::uint16_t d, std::uint64_t g) const {
        return p2m(d, g).load(std::memory_order_acquire);  // acquire: pairs with the CASes
    }
    [[nodiscard]] const CellConfig& config() const { return cfg_; }

    // Atomic RMWs this thread has issued in CellCore's operations (any build; equal to the
    // impl::rmw_count() delta in a counting build): the test of "a read never writes" and of
    // the RMWs per op. A push's plain store of its node's link is not counted.
    [[nodiscard]] static std::uint64_t& writes();

    // Threads that may use CellCores at once (each owns a magazine slot in every core).
#ifdef PVIOMMU_RELACY
    static constexpr unsigned kSlots = 16;
#else
    static constexpr unsigned kSlots = 1024;
#endif

private:
    // One cache line per record, everything in it (64 B: at 1e5 frames the records' lines are
    // half as many pages as at 128 B, so a lookup's walk misses the TLB less; W1's lookups
    // were 1.5-2x slower at 128 B, bench/RESULTS.md).
    static constexpr unsigned kNShift = 61;  // Record::gfn_n: gfn below, n from here
    struct alignas(64) Record {
        Atomic<std::uint64_t> hdr;
        // gfn | n << kNShift (n: the holders); while the record is free, the pool's link.
        Atomic<std::uint64_t> gfn_n;
        // Holder k's bfn in the low (k even) or high (k odd) half of word k / 2: a bfn of the
        // core is a slot below CellConfig::bfns, 32 bits.
        Atomic<std::uint64_t> hb2[kMaxHolders / 2];
        Atomic<std::uint64_t> hw[kMaxHolders];
        Atomic<std::uint64_t>& link() { return gfn_n; }
        // gfn_n's value from its fields, and its fields (n bounded: a torn read is validated).
        [[nodiscard]] static constexpr std::uint64_t gfn_n_of(std::uint64_t gfn, std::uint32_t n) {
            return gfn | std::uint64_t{n} << kNShift;
        }
        [[nodiscard]] static constexpr std::uint64_t gfn_of(std::uint64_t gn) {
            return gn & ((std::uint64_t{1} << kNShift) - 1);
        }
        [[nodiscard]] static constexpr std::uint32_t n_of(std::uint64_t gn) {
            return std::min(static_cast<std::uint32_t>(gn >> kNShift), kMaxHolders);
        }
        [[nodiscard]] std::uint64_t hb(std::uint32_t k) const {
            // relaxed: a seqlock read, validated by read_cell.
            return (hb2[k / 2].load(std::memory_order_relaxed) >> (32 * (k % 2))) & 0xffffffffU;
        }
    };
    struct alignas(64) Desc {  // a line each: threads fill their own descriptors
        Atomic<std::uint64_t> mfn, hb, hw, add, before, after, gen;
        Atomic<std::uint64_t> next;  // the pool's link while free
        Atomic<std::uint64_t>& link() { return next; }
    };
#ifndef PVIOMMU_RELACY
    static_assert(sizeof(Record) == 64 && sizeof(Desc) == 64, "one cache line each");
#endif
    // A Treiber stack of free indices (1..N-1) with a tag against ABA: head = tag << 32 | idx.
    template <class Node>
    struct Pool {
        std::unique_ptr<Node[]> nodes;
        Atomic<std::uint64_t> head{0};
        std::uint32_t size = 0;
        std::uint32_t pop();
        void push(std::uint32_t i);
    };

    // A thread's own cache of free records and descriptors (no RMW while it has one: an op
    // that installs a record frees the one it replaced). The arenas must hold the frames'
    // records plus kRecs records and kDescs descriptors per thread, plus those in flight.
    // One stack of up to N free indices, in front of its shared Pool.
    template <std::uint32_t N>
    struct Stash {
        static constexpr std::uint32_t kCap = N;
        std::uint32_t ids[N] = {};
        std::uint32_t n = 0;
    };
    struct Mag {
        static constexpr std::uint32_t kRecs = 4, kDescs = 2;
        Stash<kRecs> rec;
        Stash<kDescs> desc;
    };
    static unsigned thread_slot();
    std::uint32_t pop_rec();
    void push_rec(std::uint32_t i);
    std::uint32_t pop_desc();
    void push_desc(std::uint32_t i);

    Atomic<std::uint64_t>& leaf(std::uint16_t c, std::uint64_t b) const {
        return leaves_[std::size_t{c} * cfg_.bfns + b];
    }
    Atomic<std::uint64_t>& p2m(std::uint16_t d, std::uint64_t g) const {
        return p2m_[std::size_t{d} * cfg_.gfns + g];
    }
    // A CAS through which every write of the protocol goes (counted in writes()).
    static bool cas(Atomic<std::uint64_t>& w, std::uint64_t& expected, std::uint64_t desired) {
        ++writes();
        // acq_rel: release publishes a filled record/descriptor; acquire: what follows sees
        // what the previous writer published.
        return w.compare_exchange_strong(expected, desired, std::memory_order_acq_rel,
                                         std::memory_order_acquire);
    }
    // The seqlock read of cell m: f(the cell's record, or nullptr when free) reads the record's
    // fields (relaxed), again until the cell held the same value before and after; returns it.
    template <class F>
    std::uint64_t read_cell(std::uint32_t m, F&& f) const;
    // Fills a fresh record from a snapshot; returns its index (0: the arena is exhausted).
    std::uint32_t make_record(const Snap& s);
    // P2M leaf of frame m for the life that started with (reserved) cell value c: the cell's
    // sequence then is the leaf's tag, so a late clear of an older life's leaf cannot match.
    [[nodiscard]] static constexpr std::uint64_t p2m_value(std::uint32_t m, std::uint64_t c) {
        return (c & kSeqMask) | (std::uint64_t{m} + 1) << 2;
    }
    // P2M(d, g) read for a reader: St::none (retry), enxio (absent at one instant) or ok.
    // The P2M check on a validated read of frame m (cell c, header h, gfn): ok if the frame
    // backs (d, g), else enxio; p2m_read and lookup decide with it.
    static St p2m_verdict(std::uint64_t c, const Hdr& h, std::uint64_t gfn, std::uint16_t d,
                          std::uint64_t g);
    St p2m_read(std::uint16_t d, std::uint64_t g, std::uint32_t* m, Snap* s,
                std::uint64_t* leaf_value) const;
    // Settles the intent iv found on leaf lf: a helper (not its owner) first bumps the cell's
    // sequence (the owner's pending cell CAS then fails); then the decision is read from the
    // cell and the leaf CASed from iv to its value.
    void settle(Atomic<std::uint64_t>& lf, std::uint64_t iv, bool helper);
    // settle's last step, once the decision is final: reads it from the cell and CASes the
    // leaf from iv to its value (the owner calls it directly with its descriptor's fields).
    void settle_decided(Atomic<std::uint64_t>& lf, std::uint64_t iv, std::uint32_t m,
                        std::uint64_t hb, std::uint64_t hw, bool add, std::uint64_t before,
                        std::uint64_t after);
    // A validated read of the descriptor of intent iv; false: the leaf moved off it meanwhile.
    bool read_desc(const Atomic<std::uint64_t>& lf, std::uint64_t iv, std::uint64_t* mfn,
                   std::uint64_t* hb, std::uint64_t* hw, bool* add, std::uint64_t* before,
                   std::uint64_t* after) const;
    // The value of leaf whose intent (mfn, hb, hw, add) is decided as the snapshot says.
    static std::uint64_t resolve(const Snap& s, std::uint64_t hb, std::uint64_t hw, bool add,
                                 std::uint64_t before, std::uint64_t after);
    // Adds (add) or removes one holder of leaf (c, b) of frame m through an intent.
    St change_holder(std::uint16_t c, std::uint64_t b, std::uint32_t m, const Snap& s,
                     std::uint64_t expected_leaf, std::uint64_t hw, bool add,
                     std::uint64_t leaf_after);

    CellConfig cfg_;
    std::unique_ptr<Atomic<std::uint64_t>[]> cells_;
    mutable std::unique_ptr<Atomic<std::uint64_t>[]> p2m_, leaves_;
    std::unique_ptr<Mag[]> mags_;  // by thread_slot(); each touched by its thread only
    mutable Pool<Record> recs_;
    mutable Pool<Desc> descs_;
};

}  // namespace impl::v2
