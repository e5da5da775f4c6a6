// impl/hypervisor.h: the lock-free implementation of the PV IOMMU model for concurrent
// hypercalls from many vCPUs. Same interface and semantics as ref/ (it is checked against ref by
// `pviommu diff` and the property tests; it does not include ref).
//
// Data path (the six subops, batches, balloon, populate, drain): no mutex, no spinlock; each
// operation is one MCAS transaction (impl/mcas.h) and is linearizable, with the two relaxations
// of spec/pv-iommu.md section 7 (a balloon delivers its invalidates one by one after its
// linearization point and before it returns; a populate racing frees takes some frame that was
// free throughout). The protocol is written out at the top of impl/hypervisor.cpp. An operation
// that removes or re-points an entry or tuple flushes the IOTLBs of the contexts it touched and
// only then drops the references they held (R11's deferred put, D21: per op), before returning;
// simulated devices translate through those IOTLBs (DeviceSection, impl/iotlb.h).
//
// Control plane (domain, dm, ioserver, rmrr, xen_gfn, fault, destroy) and snapshot(): run only
// at quiescent points (no data-path operation in flight), serialised by control_mu_.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

// GCC 12 reports a false -Wstringop-overread inside Boost.Container's memcpy of a trivially
// copyable small_vector (the bound it reasons with is the inline capacity, not the size).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overread"
#endif
#include <boost/container/flat_set.hpp>
#include <boost/container/small_vector.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include "impl/frame_hint.h"
#include "impl/iotlb.h"
#include "impl/mcas.h"
#include "impl/radix.h"
#include "impl/ring.h"
#include "spec/hypervisor.h"

namespace impl {

// impl's per-thread block pool (hypervisor.cpp): a block of at least `bytes`, recycled through
// a free list per size class (exact up to 256 bytes, powers of two above), so that the data
// path's steady state allocates nothing (spec/pv-iommu.md; issue 16). pool_give takes the same
// `bytes` the block was taken with; a block may be given back by another thread than the one
// that took it.
void* pool_take(std::size_t bytes);
void pool_give(void* p, std::size_t bytes) noexcept;

// The allocator of Small: heap storage from the block pool.
template <class T>
struct PoolAllocator {
    using value_type = T;
    PoolAllocator() = default;
    template <class U>
    explicit PoolAllocator(const PoolAllocator<U>& /*other*/) noexcept {}
    // sizeof(T): the element's size, also where T is a pointer (Small<const DomainRec*>).
    T* allocate(std::size_t n) {
        return static_cast<T*>(pool_take(n * sizeof(T)));  // NOLINT(bugprone-sizeof-expression)
    }
    void deallocate(T* p, std::size_t n) noexcept {
        pool_give(p, n * sizeof(T));  // NOLINT(bugprone-sizeof-expression)
    }
    friend bool operator==(const PoolAllocator&, const PoolAllocator&) { return true; }
};

// A data-path operation's scratch list (a frame's tuples, an order-k map's frames), inline for
// the order-0 and few-tuple cases that dominate, and from the block pool beyond: the data path
// should not allocate (spec/pv-iommu.md), and a heap vector here was one malloc and free per
// operation (issue 6).
template <class T>
using Small = boost::container::small_vector<T, 8, PoolAllocator<T>>;

class Hypervisor final : public spec::Hypervisor {
    struct DomainRec;  // below (private)

public:
    explicit Hypervisor(const spec::Host& host);
    ~Hypervisor() override;

    [[nodiscard]] bool create_domain(spec::DomId d, spec::DomainRole role, bool iommu_hw,
                                     std::uint64_t ram) override;
    void grant_dm(spec::DomId emulator, spec::DomId target) override;
    void create_ioserver(spec::DomId target, spec::IoServId id, spec::DomId emulator,
                         std::uint32_t ring_slots) override;
    void add_rmrr(spec::DomId d, spec::Bfn first, std::uint64_t count) override;
    [[nodiscard]] bool add_xen_gfn(spec::DomId d, spec::Gfn g) override;
    void arm_iommu_map_fault(std::uint32_t count) override;
    void set_quota(spec::DomId d, std::uint32_t quota) override;
    void destroy(spec::DomId d) override;

    [[nodiscard]] spec::Status query_caps(spec::DomId c, spec::QueryCaps& op) override;
    [[nodiscard]] spec::Status map_page(spec::DomId c, spec::MapPage& op) override;
    [[nodiscard]] spec::Status unmap_page(spec::DomId c, spec::UnmapPage& op) override;
    [[nodiscard]] spec::Status map_foreign_page(spec::DomId c, spec::MapForeignPage& op) override;
    [[nodiscard]] spec::Status lookup_foreign_page(spec::DomId c,
                                                   spec::LookupForeignPage& op) override;
    [[nodiscard]] spec::Status unmap_foreign_page(spec::DomId c,
                                                  spec::UnmapForeignPage& op) override;

    spec::BalloonOutcome balloon(spec::DomId d, spec::Gfn g) override;
    spec::PopulateOutcome populate(spec::DomId d, spec::Gfn g) override;
    std::vector<spec::IoReq> drain(spec::DomId target, spec::IoServId id,
                                   std::uint32_t max) override;

    [[nodiscard]] spec::State snapshot() const override;
    [[nodiscard]] std::string name() const override { return "impl"; }
    // True if an operation ever found the state breaking an invariant (only planted bugs do
    // that); such an operation wrote nothing.
    [[nodiscard]] bool corrupt() const { return corrupt_.load(std::memory_order_relaxed); }

    // ----- R11 device model: simulated devices of usable emulators (impl/iotlb.h) -----------
    // What a device reaches at a bus address (F13, D25): a frame through an explicit entry
    // (local or foreign, cached in the IOTLB), the 1:1 rule (identity: walked, never cached),
    // the context's own scratch page (R12), or a fault.
    struct Translation {
        enum class Kind : std::uint8_t { fault, frame, identity, scratch };
        Kind kind = Kind::fault;
        spec::Mfn mfn{};                                // frame, identity
        std::uint8_t perms = 0;                         // IOMMUOP_readable | IOMMUOP_writeable
        std::atomic<std::uint64_t>* scratch = nullptr;  // scratch: the context's page
        bool cached = false;  // served by the IOTLB (statistics for tests)
    };
    // A device read section (impl/iotlb.h I1): every translation and the DMA that uses it run
    // inside one; flushes wait for it. Keep it short, and never make a hypercall inside it (a
    // flush of this context would wait for the section that waits for the flush).
    class DeviceSection {
    public:
        DeviceSection(const Hypervisor& hv, spec::DomId e, int dev);
        ~DeviceSection();
        DeviceSection(const DeviceSection&) = delete;
        DeviceSection& operator=(const DeviceSection&) = delete;
        // The IOTLB, else a walk of the context (filling the IOTLB for explicit entries).
        [[nodiscard]] Translation translate(spec::Bfn b);

    private:
        EpochGuard pin_;  // the walk reads MCAS words (mcas_read may help a descriptor)
        const Hypervisor& hv_;
        const DomainRec& ctx_;
        int dev_;
        std::uint64_t gen_;
    };
    // Attaches a device to usable emulator e's context: its id, or -1 (e not usable, or no
    // reader slot free). Lock-free; any time while e lives. Detach before e is destroyed.
    [[nodiscard]] int attach_device(spec::DomId e);
    void detach_device(spec::DomId e, int dev);
    // e's scratch page (R12, D24), or nullptr if e has no usable context.
    [[nodiscard]] const std::atomic<std::uint64_t>* scratch_page(spec::DomId e) const;
    // IOTLB flushes of e's context so far (tests: non-vacuity).
    [[nodiscard]] std::uint64_t iotlb_flushes(spec::DomId e) const;
    // INV-NO-FREE-WHILE-CACHED, checked now, concurrently with anything: a translation cached
    // in a usable context's IOTLB (current generation) whose frame is free. Each violation is
    // described in one string; `cached` (if given) gets how many frame translations were seen.
    [[nodiscard]] std::vector<std::string> check_no_free_while_cached(
        std::uint64_t* cached = nullptr) const;
    // A frame as its cell says now (tests: a device checks where its DMA lands). deferred:
    // references removed but not yet put (their flush has not finished, protocol step 7).
    struct FrameView {
        spec::FrameState state = spec::FrameState::free;
        spec::DomId owner{};
        std::uint32_t count = 0;
        std::uint32_t deferred = 0;
    };
    [[nodiscard]] FrameView frame_view(spec::Mfn m) const;
    // Test hook, called by every operation at each flush point of protocol steps 6-7 (the
    // deferred-put steps). Set at a quiescent point; called concurrently from any thread.
    enum class FlushPoint : std::uint8_t { before_flush, after_flush, after_put };
    void set_flush_observer(std::function<void(FlushPoint)> f) { observer_ = std::move(f); }

    // One M2B tuple as stored: immutable once published. 16 bytes (issue 6 measures bytes per
    // mapping): the key (bfn, domid, ioserver), then D22's emulator and orphan mark.
    struct TupleRec {
        spec::Bfn bfn;
        spec::DomId domid;
        spec::IoServId ioserver;
        // D22: whose bus address space bfn is in (the caller of the map or lookup that made
        // it). R9, F5 and D20 use it, never the server (an orphan has none).
        spec::DomId emulator;
        bool swap = false;    // R3: swap_mfn of the map_foreign_page that made it
        bool orphan = false;  // D22, R9 v2 step 2: its server went with its target
        [[nodiscard]] auto key() const { return std::tie(bfn.v, domid.v, ioserver.v); }
    };
    static_assert(sizeof(TupleRec) == 16);
    // A frame's header as the data path edits it (the fields of spec::Frame, plus deferred:
    // references removed whose put waits for a flush, protocol step 5). Packed into 61 bits
    // (hypervisor.cpp, pack_header).
    struct FrameVal {
        std::uint32_t count = 0;
        bool allocated = false;
        spec::FrameState state = spec::FrameState::free;
        std::uint16_t owner = 0;
        std::uint32_t deferred = 0;
    };
    // A frame's record (v2 step 1): its header and its M2B set (an array sorted by (bfn,
    // domid, ioserver), F8) in one immutable block, the value of the frame's cell word while
    // the frame has tuples. Replaced whole, copy-on-write, by every change of the frame (its
    // count or its tuples) and reclaimed by EBR, so the header and the set change together in
    // one word (INV-COUNT holds at every instant). alignas(8): its address is a Word value.
    // One allocation, the tuples right after the header (issue 6). Made by make(), freed by
    // dispose() (plain delete is deleted: it would not know the size). Blocks come from the
    // block pool (issue 6: every map and unmap makes one record and retires one, and EBR
    // frees them in batches of 64 and more).
    struct alignas(8) FrameRec {
        std::uint64_t header = 0;  // pack_header(FrameVal), without the cell's inline tag
        std::uint32_t n = 0;       // >= 1: a frame without tuples has no record
        [[nodiscard]] std::span<const TupleRec> t() const {
            return {reinterpret_cast<const TupleRec*>(this + 1), n};
        }
        [[nodiscard]] static FrameRec* make(std::uint64_t header, std::span<const TupleRec> tuples);
        // A record of tuples with one edit at index at: add inserted there (add != nullptr), or
        // tuples[at] left out (add == nullptr). No staging copy (the direct paths).
        [[nodiscard]] static FrameRec* make_edited(std::uint64_t header,
                                                   std::span<const TupleRec> tuples, std::size_t at,
                                                   const TupleRec* add);
        static void dispose(const FrameRec* r);
        // Disposes of r (nullptr: nothing) once no pinned thread can still read it (EBR): r
        // was unlinked by a committed MCAS. Requires an EpochGuard.
        static void retire(const FrameRec* r);
        static void operator delete(void*) = delete;

    private:
        FrameRec() = default;
    };
    static_assert(sizeof(FrameRec) == 16 && sizeof(FrameRec) % alignof(TupleRec) == 0);
    // A frame's tuples being edited by one attempt (a frame has 1-4 in every workload of bench/).
    using TupleVec = Small<TupleRec>;
    static_assert(std::is_trivially_destructible_v<TupleRec>);
    // A request on a server's synchronous channel (a Michael-Scott queue node, linked by MCAS).
    // Made and disposed of through a per-thread pool (no allocation in the steady state).
    struct alignas(8) SyncNode {
        Word next{0};     // SyncNode* or 0; set once, by the enqueue MCAS
        spec::Bfn bfn{};  // immutable once published
        static SyncNode* make(spec::Bfn b);
        static void dispose(SyncNode* n);  // n unreachable by any thread (or nullptr)
    };

private:
    // Immutable while data-path operations run (written by the control plane only).
    struct Server;
    struct DomainRec {
        bool hardware = false;
        bool iommu_hw = false;
        bool usable = false;  // usable(C), fixed at creation
        std::vector<spec::Range> rmrr;
        // `dm self over T`: a sorted vector (Boost's flat_set), not a node-based set: check_target
        // scans it on every foreign call, and an emulator is privileged over few domains.
        boost::container::flat_set<spec::DomId> dm_over;
        RadixMap p2m;    // leaf: 0 none, else enc(mfn + 1)
        RadixMap iommu;  // leaf: 0 none (the 1:1 rule may apply), else an encoded entry
        // D20. quota: control plane. held: enc(State::holdings of this domain), kept only
        // when quota is set (no cost otherwise); MCAS-guarded: read and written inside the
        // same Txn as the tuples and entries it counts, so no race can overshoot the quota.
        std::optional<std::uint32_t> quota;
        mutable Word held{0};
        // R11, R12: the context's IOTLB and scratch page; usable domains only, made and freed
        // with the domain (control plane). Its own fields say what guards them.
        std::unique_ptr<Iotlb> iotlb;
        // Control plane (quiescent writes, free reads): the servers targeting this domain, so
        // that server() costs the domain's slot and a scan of its few servers instead of an
        // std::map walk (issue 6: check_target runs on every foreign call). Owned by servers_.
        std::vector<Server*> servers;
    };
    struct Server {
        spec::DomId target, emulator;
        spec::IoServId id;
        std::uint32_t slots = 0;
        std::unique_ptr<BufRing> ring;    // buf_ioreq slots, 2 per invalidate (R7); ring.h
        Word sync_head{0}, sync_tail{0};  // SyncNode*: dummy head, last node
        Server() = default;
        Server(const Server&) = delete;
        Server& operator=(const Server&) = delete;
        // Quiescent (control plane): frees the synchronous channel's nodes, pending requests
        // and dummy head (F11: pending requests go with the server).
        ~Server();
    };

    // A reference that a removal moved from a frame's count to its deferred field (protocol
    // step 5), to be put after the flush (step 7). via_count: the deferred field was full, so
    // the reference stayed in the count (see defer_ref).
    struct Deferred {
        spec::Mfn m;
        bool via_count = false;
    };
    // A frame's cell as one attempt sees it: the value its Txn read, and the header and tuples
    // the attempt stages. Every edit of a frame in an attempt edits this; commit() turns each
    // edited cell into ONE write of the cell word (a new record, an inline header or 0).
    // The implicit move constructor moves a small_vector, which clang-tidy cannot see cannot
    // throw here: TupleRec is trivially copyable and an inline buffer's move only copies it.
    struct Cell {  // NOLINT(bugprone-exception-escape)
        // User-provided on purpose: with an implicit constructor, cell()'s emplace_back()
        // value-initializes, which zeroes the whole Cell first, tuples' 128-byte inline buffer
        // included (a `rep stos` that was 5% of a map/unmap's time). The members below are
        // all initialized by their own initializers.
        Cell() noexcept {}
        Word* word = nullptr;
        std::uint64_t m = 0;
        std::uint64_t old = 0;          // the cell word as the Txn read it
        const FrameRec* rec = nullptr;  // old's record, or nullptr (free or inline)
        FrameVal f;                     // the header, as staged
        TupleVec tuples;                // the tuples, as staged (only if tuples_edited)
        bool tuples_edited = false;
        bool dirty = false;  // f or tuples staged: commit() writes the cell
    };
    // One attempt of one data-path operation: its transaction and what to do after it.
    struct Work {
        Txn t;
        Small<Cell> cells;                      // the frames this attempt read (by mfn)
        std::vector<FrameRec*> created;         // unpublished until commit; freed on abort
        std::vector<const FrameRec*> replaced;  // retired (EBR) after a successful commit
        std::vector<spec::Mfn> freed;           // frames this attempt frees (count -> 0)
        Small<Deferred> deferred;               // this attempt's removed references (step 5)
        Small<const DomainRec*> flush;          // contexts this attempt removes from (step 6)
        // Moved here from deferred and flush by each successful commit, for finish(): steps
        // 6-7 of what the operation committed. reset() keeps them; finish() empties them.
        Small<Deferred> to_put;
        Small<const DomainRec*> to_flush;
        // Set when the attempt read words that were never true together (the reads of one
        // attempt are taken at different instants until commit checks them): it must retry.
        bool doomed = false;
        // The IOMMU leaf entry() last found (its map and key), so that a write of the same
        // leaf in this attempt skips a second radix walk (8 levels for a bfn >= 2^24). Valid
        // for one attempt: a tree's nodes live as long as its domain, which outlives the op.
        const RadixMap* memo_map = nullptr;
        std::uint64_t memo_key = 0;
        Word* memo_leaf = nullptr;
        // The leaf word of key in map, creating its path (RadixMap::get): the memo's if it is
        // that leaf. For writes only.
        [[nodiscard]] Word& leaf(const RadixMap& map, std::uint64_t key) const {
            return memo_map == &map && memo_key == key ? *memo_leaf : map.get(key);
        }
        // The leaf an order-k map stages unit key into. If an injected IOMMU fault (fail_at)
        // will discard the staging anyway (F10), only a leaf whose path exists is staged
        // (nullptr otherwise): an error path allocates nothing. Otherwise leaf().
        [[nodiscard]] Word* leaf_to_write(const RadixMap& map, std::uint64_t key,
                                          std::optional<std::uint64_t> fail_at) const {
            return fail_at ? map.find(key) : &leaf(map, key);
        }
        void reset();
    };
    // A Work borrowed from this thread's cache for one operation and given back, cleared, when
    // the lease ends (issue 6: a fresh Work grew its four vectors, several mallocs, on every
    // operation; a cached one keeps their capacity). Any set still staged at the end was never
    // published and is freed.
    class WorkLease {
    public:
        WorkLease();
        ~WorkLease();
        WorkLease(const WorkLease&) = delete;
        WorkLease& operator=(const WorkLease&) = delete;
        Work& operator*() const { return *w_; }

    private:
        // This thread's Works, one per nesting level of leases (leases are scoped, so they end
        // in the reverse order of their start): works[depth] is the next lease's.
        struct Stack {
            std::vector<std::unique_ptr<Work>> works;
            std::size_t depth = 0;
        };
        static Stack& stack();
        Work* w_;
    };

    [[nodiscard]] DomainRec* dom(spec::DomId d) const;
    [[nodiscard]] Server* server(spec::DomId target, spec::IoServId id) const;
    [[nodiscard]] static Server* server(const DomainRec& target, spec::IoServId id);
    // R3's target rows, in order (shared with R4): domid foreign, live, privileged over,
    // ioserver one of its servers served by c. Control-plane state only: no Txn needed.
    // Status::ok when every row passes. (A plain Status, not an optional: the optional came
    // back through the stack as a byte store then a wider load, a store-forwarding stall on
    // every foreign call, issue 6.)
    [[nodiscard]] spec::Status check_target(spec::DomId c, spec::DomId domid,
                                            spec::IoServId ioserver) const;
    [[nodiscard]] bool is_xen(spec::Mfn m) const;
    // C's entry at b as this attempt sees it: explicit, identity (D18), or none.
    [[nodiscard]] std::optional<spec::Entry> entry(Work& w, const DomainRec& c, spec::Bfn b);
    // Does a tuple of emulator c sit at bfn b on frame b (a claim lookup registered on a 1:1
    // bfn)? By INV-M2B-SET the only way a usable emulator's tuple can claim a bfn without an
    // entry to its own frame there.
    [[nodiscard]] bool claimed_at_identity(Work& w, spec::DomId c, spec::Bfn b);
    // m's cell in w: read through w's Txn the first time, then what w staged.
    [[nodiscard]] Cell& cell(Work& w, spec::Mfn m);
    // m's header now, outside any Txn (requires an EpochGuard: it may read a record).
    [[nodiscard]] FrameVal header_now(spec::Mfn m) const;
    // Stages every edited cell of w as one write of its word (protocol step 4's writes):
    // creates the records. An edit that left a free frame with tuples (an inconsistent read)
    // dooms w instead.
    void stage_cells(Work& w);
    [[nodiscard]] TupleVec tuples(Work& w, spec::Mfn m);
    // m's tuples as w reads them, without a copy (read-only uses: a frame's set may hold more
    // tuples than TupleVec's inline 8, and reads and error paths must not allocate).
    [[nodiscard]] std::span<const TupleRec> tuple_view(Work& w, spec::Mfn m);
    // lookup_foreign_page's read-only success path (usable caller, tuple present): no MCAS.
    // True with the tuple's bfn in out; false: take the MCAS path. (bool and an out parameter
    // for the same store-forwarding reason as check_target.)
    [[nodiscard]] bool lookup_registered(const DomainRec& td, const spec::LookupForeignPage& op,
                                         spec::Bfn& out);
    // Every other lookup_foreign_page (after R1-R3): the MCAS path. Never inlined.
    [[gnu::noinline]] spec::Status lookup_foreign_mcas(spec::DomId c, DomainRec& cd, DomainRec& td,
                                                       spec::LookupForeignPage& op);
    // Fault point iommu_map's draw for one operation: not drawn yet, or drawn (nullopt: no
    // failure; else the failing unit). See unit_fault.
    using Drawn = std::optional<std::optional<std::uint64_t>>;
    // Order-0 map_foreign_page and unmap_foreign_page in their common case, as one Txn built
    // directly (v2 step 2d, "The direct order-0 map and unmap" in hypervisor.cpp): the same
    // words and the same MCAS as the general path, without its per-frame staging. The map
    // returns the status it committed (ok, or -ENXIO on an empty P2M leaf, v2 step 2f); the
    // unmap true when it committed with Status::ok (and ran its flush and put). nullopt or
    // false: nothing was written and w is reset: run the general path.
    [[nodiscard]] std::optional<spec::Status> map_foreign_direct(spec::DomId c, const DomainRec& cd,
                                                                 const DomainRec& td,
                                                                 const spec::MapForeignPage& op,
                                                                 Work& w, Drawn& drawn);
    [[nodiscard]] bool unmap_foreign_direct(spec::DomId c, const DomainRec& cd,
                                            const spec::UnmapForeignPage& op, Work& w);
    // Commits a direct path's Txn (w.t), which installs made (or nullptr) in place of
    // replaced (or nullptr): retires replaced or disposes of made, resets w. True: committed.
    [[nodiscard]] bool commit_direct(Work& w, FrameRec* made, const FrameRec* replaced);
    // A balloon of an allocated frame with at most kBalloonDirectMax tuples, as one Txn built
    // directly (v2 step 2f, "The direct balloon" in hypervisor.cpp): the general path's words
    // and values, without its staging. True: committed; mfn is the frame and seen the record
    // the commit replaced (nullptr: no tuples), w holds the deferred puts and flushes for
    // finish(). False: nothing written, w reset: run the general path.
    [[nodiscard]] bool balloon_direct(const RadixMap& p2m, spec::Gfn g, Work& w, spec::Mfn& mfn,
                                      const FrameRec*& seen);
    // Step 9 of a balloon of m: one invalidate per tuple of seen (the tuples at its
    // linearization point, F8 order), orphans excepted.
    spec::BalloonOutcome announce(spec::Mfn m, std::span<const TupleRec> seen);
    // finish()'s step 7 for k deferred references of m (one op's, all of one frame), read and
    // written directly; false: nothing written (m not in the expected state), the general put
    // runs.
    [[nodiscard]] bool put_deferred(Work& w, spec::Mfn m, std::uint32_t k);
    // Whether the direct paths may run for caller cd: no pending injected -EIO (D10), no
    // quota on cd (D20), no planted mutant. (A fault plan's stalls apply to them; map's
    // iommu_map draw is made where the general path makes it.)
    [[nodiscard]] bool direct_allowed(const DomainRec& cd) const;
    void set_tuples(Work& w, spec::Mfn m, TupleVec&& next);
    // Whether set holds the tuple (b, domid, ioserver) (R3, R4: a re-map or re-lookup adds
    // nothing).
    [[nodiscard]] static bool holds(std::span<const TupleRec> set, spec::Bfn b, spec::DomId domid,
                                    spec::IoServId ioserver);
    // Whether set has a tuple of space(c) at bfn b, orphans included (R6 v2's claim, F12).
    [[nodiscard]] static bool claims(std::span<const TupleRec> set, spec::Bfn b, spec::DomId c);
    // unmap_foreign_page's tuple in set: (bfn, domid, ioserver) of op, emulator c (F5); end()
    // if none.
    [[nodiscard]] static std::span<const TupleRec>::iterator own_tuple(
        std::span<const TupleRec> set, const spec::UnmapForeignPage& op, spec::DomId c);
    void get_ref(Work& w, spec::Mfn m);
    // Drops a reference at once. Only the allocation reference (balloon) and references that
    // no IOTLB can cache are put this way; every reference of an entry or tuple is deferred.
    void put_ref(Work& w, spec::Mfn m, bool allocation = false);
    // Protocol step 5: the removal of an entry or tuple moves its reference from m's count to
    // m's deferred field (the frame is pinned, not freed) and schedules the put for finish().
    void defer_ref(Work& w, spec::Mfn m);
    // Protocol step 6: context c's IOTLB must be flushed before this attempt's puts.
    static void needs_flush(Work& w, const DomainRec& c);
    // The same rule, adding c to ctxs: the direct paths add to w.to_flush after their commit.
    static void needs_flush(Small<const DomainRec*>& ctxs, const DomainRec& c);
    // Protocol steps 6-8, after a successful commit: flush every context in w.to_flush, then
    // put every reference in w.to_put (one MCAS), before the operation returns.
    void finish(Work& w);
    // Commits w; on success retires what it replaced and reports its frees to the allocation
    // hint (frame_hint.h step 1); on failure frees what it created. Either way w is reset for
    // the next attempt.
    [[nodiscard]] bool commit(Work& w);
    // Consumes one armed IOMMU-unit fault in this attempt, if any is pending (F9).
    [[nodiscard]] bool take_fault(Work& w);
    // Fault point iommu_map: the unit (of `units`) at which the IOMMU fails, drawn once per
    // operation (`drawn` caches it across the attempts of one operation).
    [[nodiscard]] std::optional<std::uint64_t> unit_fault(Drawn& drawn, std::uint64_t units);
    // Turns w back into a read-only attempt: staged writes dropped, staged sets freed. The
    // commit then only validates what the decision read (an all-or-nothing failure).
    void abandon(Work& w);
    // D19: does frame m, read in w, have no room for one more reference?
    [[nodiscard]] bool count_full(Work& w, spec::Mfn m);
    // D20: would `more` new holdings take c over its quota? Reads c's holdings word in w.
    [[nodiscard]] bool over_quota(Work& w, const DomainRec& c, std::uint64_t more);
    // D20: adds delta to e's holdings word in w (domains with a quota only).
    void charge(Work& w, const DomainRec& e, std::int64_t delta);
    // Takes the lowest free frame for (d, g) in one MCAS with the P2M leaf (R8).
    [[nodiscard]] std::optional<spec::Mfn> alloc_frame(spec::DomId d, spec::Gfn g,
                                                       spec::FrameState state);
    // Delivers one invalidate to s: into the ring if it has 2 free slots, else synchronous.
    // Returns true if it went synchronous.
    bool deliver(Server& s, spec::Bfn b);
    [[nodiscard]] static spec::DomId emulator_of(const TupleRec& r) { return r.emulator; }
    void observe(FlushPoint p) const {
        if (observer_) [[unlikely]]
            observer_(p);
    }
    // A device's IOTLB miss (DeviceSection::translate): reads c's IOMMU leaf at b (no Txn, no
    // allocation) and caches an explicit entry in c's IOTLB, tagged gen.
    [[nodiscard]] Translation device_walk(const DomainRec& c, spec::Bfn b, std::uint64_t gen) const;
    // R9 v2 step helpers (destroy, quiescent).
    void delete_server(std::pair<std::uint16_t, std::uint16_t> key);  // with its requests
    void destroy_drop_held(spec::DomId d);
    void destroy_target_servers(spec::DomId d);
    void destroy_local_entries(spec::DomId d);

    std::atomic<bool> corrupt_{false};  // see corrupt(); relaxed: diagnostic only
    const spec::Host host_;
    // Per MFN: the frame's cell (v2 step 1, see hypervisor.cpp): 0 (free), an inline header
    // (no tuples), or a FrameRec* (header and tuples).
    std::unique_ptr<Word[]> cells_;
    mutable Word fault_{0};  // enc(pending injected -EIO), D10; MCAS-guarded
    // Lower bound on the lowest free frame (R8's search starts here) and the free generation:
    // its own protocol, impl/frame_hint.h. The frame cells themselves are the truth (MCAS).
    FrameHint hint_;

    // Control plane. Written only at quiescent points under control_mu_; the data path reads
    // them without synchronisation (quiescence orders the writes before any later operation).
    std::mutex control_mu_;
    // Test hook (set_flush_observer): written at quiescent points, read by the data path.
    std::function<void(FlushPoint)> observer_;
    std::vector<std::unique_ptr<DomainRec>> doms_;  // index: domid
    std::map<std::pair<std::uint16_t, std::uint16_t>, std::unique_ptr<Server>> servers_;
};

[[nodiscard]] std::unique_ptr<spec::Hypervisor> make(const spec::Host& host);

}  // namespace impl
