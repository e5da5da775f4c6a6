// impl/hypervisor.cpp: the lock-free implementation.
//
// =============================================================================================
// Concurrency protocol
// =============================================================================================
// State lives in 64-bit MCAS Words (impl/mcas.h): per MFN one cell (v2 step 1: the frame's
// header (state, owner, count, allocated, deferred) and its M2B set together: 0 when free, the
// header inline when it has no tuples, else a pointer to an immutable FrameRec holding header
// and sorted tuples, replaced copy-on-write; so a frame's count and tuples change in one word
// and INV-COUNT holds at every instant); per domain a P2M and an
// IOMMU context (radix trees of Words); per ioreq server a buffered ring (one word of packed,
// canonical read/write pointers and the slots, as Xen's buffered_iopage: impl/ring.h) and a
// synchronous channel (a Michael-Scott queue of Words).
// Domains, servers, privileges and RMRRs are control-plane state: written only at quiescent
// points, read freely by the data path.
//
// Every data-path operation runs these steps:
//  1. Pin the epoch (EpochGuard). Reason: nodes and descriptors it reaches stay allocated.
//  2. Check the state-free rules (R1, R2) and the control-plane rules (usable, domid, privilege,
//     ioserver) in ruled order. Reason: they cannot change while the data path runs, so they
//     need no validation, and checking them first keeps the ruled status order.
//  3. Read, through one Txn, every Word the outcome depends on, in the ruled check order; decide
//     the status; for a success, stage every write (entries, tuple sets, frame counts).
//  4. Commit the Txn: one MCAS that compares every Word read and writes every Word staged. If
//     any Word changed since step 3, nothing is written and the operation restarts at step 3.
//     The MCAS's decision is the linearization point, for failures too: an error status is
//     returned only if the Words it was decided on were all unchanged at one instant.
//     After a successful commit: retire replaced FrameRecs (EBR) and report freed frames to
//     the allocation hint (impl/frame_hint.h step 1). Reason: only now are they unreachable / free.
//
// Removals: R11's IOTLB flush and deferred put (D21: per op). An operation that removes or
// re-points an entry or a tuple (unmap_foreign_page, unmap_page, a balloon's swap, each step of
// destroy) does, within steps 3-4 and after them, before it returns:
//  5. Its MCAS removes the entry or tuple but does NOT drop the reference it held: the frame
//     cell moves that reference from its count to its deferred field (defer_ref). The count is
//     then what ref's count is at this linearization point (D19's -EOVERFLOW and INV-COUNT are
//     decided on it), but the frame cell is not 0, so the frame is not free: no populate can
//     take it and no put can free it (a put frees only at count 0 AND deferred 0). The same
//     MCAS records nothing else: the flush and the put are not part of the linearizable effect,
//     they are its physical completion.
//  6. Flush the IOTLB of every usable context the removal touched (finish(), impl/iotlb.h I3):
//     the flush generation goes up, so no device section that starts later uses a translation
//     cached before it, and the flush returns only after every device read section that
//     started before it has ended. A device that walked the context before step 5 and caches
//     the result after the flush started tags it with the old generation: never used again.
//  7. Then the deferred put: one MCAS moves each reference out of the deferred field; a frame
//     whose count and deferred field are both 0 is freed (R8) and the allocation hint lowered.
//     The device's DMA happened before its section's exit (release), which the flush read
//     (acquire), which precedes this MCAS: no DMA of a flushed section lands in a frame after
//     it is freed or taken again (INV-NO-FREE-WHILE-CACHED at every step).
//  8. Return. A batch runs steps 1-8 for each op before the next op starts (D21), so every op
//     of a batch stands alone (R10). Ops that remove nothing skip 6-7, except that a re-map
//     that changes an entry's permissions (D3) flushes too (the device must not keep a wider
//     permission), with nothing to put.
// The only wait on the data path is step 6's, and it waits for devices, never for another
// hypercall (as Xen waits for the IOMMU's invalidation-completion); a device never makes a
// hypercall inside a read section. A reference that no IOTLB can cache (the allocation
// reference a balloon drops) is put at once, in step 4's MCAS.
//
// The balloon race (map/lookup against balloon-out of the same frame):
//  - map_foreign_page and lookup_foreign_page read the target's P2M leaf and write the frame's
//    cell (count + 1 and the new tuple, one new record) in one MCAS.
//  - balloon writes the P2M leaf (-> none), the frame's cell (allocation reference dropped at
//    once; the references of swapped tuples moved to the deferred field, step 5; swapped tuples
//    removed), and re-points swapped bfns at each emulator's own scratch
//    page (R12), in one MCAS; then steps 6-7 for the swapped emulators' contexts.
//  So they are ordered by their common Words: either the map commits first (its tuple exists
//  when the balloon reads the cell, and the balloon announces it) or the balloon does (the
//  map then reads no P2M entry: -ENXIO). A reference is never taken on a freed frame: the map's
//  MCAS compares the P2M leaf, and a frame is in a P2M only while allocated (count >= 1).
//  9. The balloon then delivers one invalidate per tuple it saw at its linearization point
//     (orphans excepted: they have no server, R9 v2), in F8 order, each as its own MCAS on the
//     server's ring (or synchronous channel when fewer than 2 slots are free), and returns
//     after the last. This is relaxation (a) of the concurrency contract: a drain racing the
//     balloon may see some of them and not yet others.
//
// Order-k maps (F2, F10), unmaps of ranges, and balloons that touch several emulators' entries
// are single MCASs over all the Words involved: all-or-nothing and atomic without a lock.
// populate scans frame cells upward from a hint and takes the first free one with one MCAS over
// the frame cell and the P2M leaf (relaxation (b) when it races frees: a frame whose references
// are deferred is not free yet, and the op that will free it is in flight). The hint carries a
// free generation (impl/frame_hint.h), so that no free is lost behind a scan (issue 15, bug 3).
// Reads and error paths never allocate: radix paths are created only by writes (impl/radix.h).
//
// destroy (control plane, quiescent for hypercalls but not for devices) runs R9 v2's four
// steps; each step commits its removals (step 5), then flushes the contexts it touched and puts
// (steps 6-7) before the next step starts.
// =============================================================================================

#include "impl/hypervisor.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cassert>
#include <chrono>
#include <set>
#include <thread>

#include "impl/mutants.h"
#include "spec/checks.h"

namespace impl {

using namespace spec;
using spec::FaultPoint;

namespace {

constexpr std::uint8_t kRw = IOMMUOP_readable | IOMMUOP_writeable;

// Frame header payload (pack_header): count bits 0-31, allocated bit 32, state bits 33-34, owner
// bits 35-49, deferred bits 50-60 (protocol step 5: references removed whose put waits for a
// flush). 61 bits: the cell's inline form (below) needs three tag bits.
//
// A frame's cell word (v2 step 1) is one of:
//   0                       free (and so no tuples: every tuple holds a reference);
//   payload << 3 | 0b100    an inline header: an allocated or Xen frame without tuples;
//   FrameRec*               (8-aligned: bit 2 clear, non-zero) header and tuples, immutable.
// Bits 0-1 are 0 in all three (mcas.h reserves them). Only a free frame is 0: a frame with count
// 0 and deferred references stays owned. An inline header suffers ABA (count up, then down);
// a record pointer does not while the reader is pinned (a new record for every change, the old
// one retired by EBR), which is what lookup_registered relies on.
constexpr std::uint32_t kDeferredMax = (1u << 11) - 1;
constexpr std::uint64_t kInline = 4;
using FrameVal = Hypervisor::FrameVal;
std::uint64_t pack_header(const FrameVal& f) {
    return std::uint64_t{f.count} | std::uint64_t{f.allocated} << 32 |
           std::uint64_t(f.state) << 33 | std::uint64_t{f.owner} << 35 |
           static_cast<std::uint64_t>(f.deferred) << 50;
}
FrameVal unpack_header(std::uint64_t p) {
    return FrameVal{static_cast<std::uint32_t>(p), ((p >> 32) & 1) != 0,
                    static_cast<FrameState>((p >> 33) & 3),
                    static_cast<std::uint16_t>((p >> 35) & 0x7fff),
                    static_cast<std::uint32_t>((p >> 50) & kDeferredMax)};
}
bool is_record(std::uint64_t cell) { return cell != 0 && (cell & kInline) == 0; }
const Hypervisor::FrameRec* record_of(std::uint64_t cell) {
    return is_record(cell) ? reinterpret_cast<const Hypervisor::FrameRec*>(cell) : nullptr;
}
// The header of a cell value (a record's is read from it: the caller is pinned).
FrameVal cell_header(std::uint64_t cell) {
    if (cell == 0) return {};
    if ((cell & kInline) != 0) return unpack_header(cell >> 3);
    return unpack_header(record_of(cell)->header);
}

// IOMMU leaf payload: code bits 0-2 (0: no explicit entry), perms bits 3-4, mfn bits 5-39, and
// bit 40 "identity gone": unmap_page removed the 1:1 entry of this bfn (D18). The flag is sticky:
// an explicit entry placed there later and removed again does not bring the 1:1 entry back, so
// every write of a leaf keeps it (put_entry).
enum : std::uint64_t { kLocal = 2, kForeign = 3, kScratch = 4 };
constexpr std::uint64_t kIdentityGone = std::uint64_t{1} << 40;
std::uint64_t pack_entry(std::uint64_t code, std::uint8_t perms, Mfn m) {
    return code | std::uint64_t{perms} << 3 | m.v << 5;  // a payload: put_entry encodes it
}
std::uint64_t entry_code(std::uint64_t v) { return dec(v) & 7; }
bool identity_gone(std::uint64_t v) { return (dec(v) & kIdentityGone) != 0; }
std::uint8_t entry_perms(std::uint64_t v) { return static_cast<std::uint8_t>((dec(v) >> 3) & 3); }
Mfn entry_mfn(std::uint64_t v) { return Mfn{(dec(v) >> 5) & ((std::uint64_t{1} << 35) - 1)}; }

// Writes an explicit entry payload (0: none) to a leaf this attempt has read, keeping the leaf's
// "identity gone" flag.
void put_entry(Txn& t, Word& leaf, std::uint64_t payload, bool gone = false) {
    const std::uint64_t keep = dec(t.read(leaf)) & kIdentityGone;
    t.write(leaf, enc(payload | keep | (gone ? kIdentityGone : 0)));
}
EntryKind code_kind(std::uint64_t code) {
    switch (code) {
        case kLocal:
            return EntryKind::local;
        case kForeign:
            return EntryKind::foreign;
        default:
            return EntryKind::scratch;
    }
}

// A leaf's value now, outside any Txn: 0 if its path is absent. Never allocates.
std::uint64_t leaf_now(const RadixMap& map, std::uint64_t key) {
    Word* const leaf = map.find(key);
    return leaf != nullptr ? mcas_read(*leaf) : 0;
}

// P2M leaf: 0 none, else enc(mfn + 1).
std::uint64_t pack_p2m(Mfn m) { return enc(m.v + 1); }
std::optional<Mfn> unpack_p2m(std::uint64_t v) {
    if (v == 0) return std::nullopt;
    return Mfn{dec(v) - 1};
}

// Buffered ring slot payload (as buf_ioreq): type bits 0-7, size code bits 8-9 (3 = 8 bytes,
// two slots), data bits 10-41. The first slot carries the bfn's low 32 bits, the second its
// high 32 bits.
std::uint64_t pack_slot(std::uint32_t data) {
    return enc(std::uint64_t{PV_IOMMU_IOREQ_TYPE_INVALIDATE} | std::uint64_t{3} << 8 |
               std::uint64_t{data} << 10);
}
std::uint32_t slot_data(std::uint64_t v) { return static_cast<std::uint32_t>(dec(v) >> 10); }

template <class T>
T* as_ptr(std::uint64_t v) {
    return reinterpret_cast<T*>(v);
}
std::uint64_t as_word(const void* p) { return reinterpret_cast<std::uint64_t>(p); }

}  // namespace

std::unique_ptr<spec::Hypervisor> make(const Host& host) {
    return std::make_unique<Hypervisor>(host);
}

Hypervisor::Hypervisor(const Host& host)
    : host_(host),
      cells_(std::make_unique<Word[]>(host.frames)),
      doms_(PV_IOMMU_DOMID_FIRST_RESERVED) {}

Hypervisor::~Hypervisor() {
    // Quiescent: nothing else can reach these any more.
    for (std::uint64_t m = 0; m < host_.frames; ++m)
        FrameRec::dispose(record_of(cells_[m].load(std::memory_order_relaxed)));
    // servers_ frees each server's synchronous channel (~Server).
}

Hypervisor::Server::~Server() {
    // relaxed: quiescent, no other thread reaches the queue.
    auto* n = as_ptr<SyncNode>(sync_head.load(std::memory_order_relaxed));
    while (n != nullptr) {
        auto* next = as_ptr<SyncNode>(n->next.load(std::memory_order_relaxed));
        SyncNode::dispose(n);
        n = next;
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

namespace {
// This thread's free blocks by size class (see pool_take): frame records, the synchronous
// channel's queue nodes and the heap storage of Small lists (issue 16: no allocation on the data
// path; an invalidate that found the ring full allocated its node, and frames of more than 8
// tuples their records and lists). Thread-local: no synchronisation; a block taken by one
// thread may come back to another (EBR frees on the retiring thread). A class keeps at most
// kPoolCap blocks or kPoolBytes, whichever is fewer (at least 16), the rest go back to malloc.
// Off under ASan (see kAddressSanitizer), and after the pool's thread_local was destroyed (a
// deleter running at thread exit).
constexpr std::size_t kGrain = 16;         // every class is a multiple of 16 bytes
constexpr std::size_t kExactClasses = 16;  // 16, 32, ..., 256 bytes exactly
constexpr std::size_t kMaxLog = 24;        // powers of two up to 2^24 grains (256 MiB)
constexpr std::size_t kClasses = kExactClasses + kMaxLog - 3;  // classes 1..kClasses-1
constexpr std::size_t kPoolCap = 4096;
constexpr std::size_t kPoolBytes = std::size_t{1} << 20;
constexpr bool kPoolBlocks = !kAddressSanitizer;
constinit thread_local bool t_block_pool_gone = false;  // the pool below was destroyed (exit)
// A class's free blocks: an intrusive stack (each free block holds the next one's address), so
// that giving and taking a block touch no container (issue 16: a vector's push_back with its
// growth check and handler cost about 40 instructions per record freed).
struct FreeBlock {
    FreeBlock* next;
};
struct FreeList {
    FreeBlock* head = nullptr;
    std::size_t n = 0;
};
struct BlockPool {
    std::array<FreeList, kClasses> free{};
    ~BlockPool() {
        t_block_pool_gone = true;
        for (FreeList& l : free)
            while (FreeBlock* b = l.head) {
                l.head = b->next;
                ::operator delete(b);
            }
    }
};
BlockPool& block_pool() {
    thread_local BlockPool p;
    return p;
}
struct SizeClass {
    std::size_t index;  // 0: none (too large; malloc'd and freed as is)
    std::size_t bytes;  // what a block of the class holds
};
// What a block of class i (1..kClasses-1) holds: i grains for the exact classes, then 2^lg
// grains for class kExactClasses + lg - 4.
constexpr std::size_t class_bytes(std::size_t i) {
    return i <= kExactClasses ? i * kGrain : (std::size_t{1} << (i + 4 - kExactClasses)) * kGrain;
}
SizeClass size_class(std::size_t bytes) {
    const std::size_t grains = std::max<std::size_t>(1, (bytes + kGrain - 1) / kGrain);
    if (grains <= kExactClasses) return {grains, class_bytes(grains)};
    const auto lg = static_cast<std::size_t>(std::bit_width(grains - 1));  // grains <= 2^lg
    if (lg > kMaxLog) return {0, bytes};
    return {kExactClasses + lg - 4, class_bytes(kExactClasses + lg - 4)};
}
// How many free blocks class i keeps (see BlockPool), computed once: no division per give.
constexpr auto kClassCap = [] {
    std::array<std::size_t, kClasses> cap{};
    for (std::size_t i = 1; i < kClasses; ++i)
        cap[i] = std::min(kPoolCap, std::max<std::size_t>(16, kPoolBytes / class_bytes(i)));
    return cap;
}();
static_assert(kClassCap[1] == kPoolCap && kClassCap[kClasses - 1] == 16);
}  // namespace

void* pool_take(std::size_t bytes) {
    const SizeClass c = size_class(bytes);
    if (kPoolBlocks && c.index != 0 && !t_block_pool_gone) {
        FreeList& l = block_pool().free[c.index];
        if (FreeBlock* b = l.head) {
            l.head = b->next;
            --l.n;
            return b;
        }
    }
    // The class's size (never 0, at least a FreeBlock): the block may enter any pool later.
    return ::operator new(std::max(c.bytes, kGrain));
}

void pool_give(void* p, std::size_t bytes) noexcept {
    if (p == nullptr) return;
    const SizeClass c = size_class(bytes);
    if (kPoolBlocks && c.index != 0 && !t_block_pool_gone) {
        FreeList& l = block_pool().free[c.index];
        if (l.n < kClassCap[c.index]) {
            l.head = new (p) FreeBlock{l.head};  // the block's storage now holds the link
            ++l.n;
            return;
        }
    }
    ::operator delete(p);
}

Hypervisor::FrameRec* Hypervisor::FrameRec::make(std::uint64_t header,
                                                 std::span<const TupleRec> tuples) {
    const std::size_t n = tuples.size();
    auto* r = new (pool_take(sizeof(FrameRec) + n * sizeof(TupleRec))) FrameRec;
    r->header = header;
    r->n = static_cast<std::uint32_t>(n);
    std::uninitialized_copy(tuples.begin(), tuples.end(), reinterpret_cast<TupleRec*>(r + 1));
    return r;
}

Hypervisor::FrameRec* Hypervisor::FrameRec::make_edited(std::uint64_t header,
                                                        std::span<const TupleRec> tuples,
                                                        std::size_t at, const TupleRec* add) {
    assert(at <= tuples.size() && (add != nullptr || at < tuples.size()));
    const std::size_t n = add != nullptr ? tuples.size() + 1 : tuples.size() - 1;
    auto* r = new (pool_take(sizeof(FrameRec) + n * sizeof(TupleRec))) FrameRec;
    r->header = header;
    r->n = static_cast<std::uint32_t>(n);
    auto* out = reinterpret_cast<TupleRec*>(r + 1);
    out = std::uninitialized_copy(tuples.begin(), tuples.begin() + static_cast<std::ptrdiff_t>(at),
                                  out);
    if (add != nullptr) *out++ = *add;
    const std::size_t rest = add != nullptr ? at : at + 1;
    std::uninitialized_copy(tuples.begin() + static_cast<std::ptrdiff_t>(rest), tuples.end(), out);
    return r;
}

void Hypervisor::FrameRec::dispose(const FrameRec* r) {
    if (r == nullptr) return;
    // trivially destructible: nothing to run
    pool_give(const_cast<FrameRec*>(r), sizeof(FrameRec) + r->n * sizeof(TupleRec));
}

void Hypervisor::FrameRec::retire(const FrameRec* r) {
    if (r == nullptr) return;
    impl::retire(const_cast<FrameRec*>(r),
                 [](void* p) { FrameRec::dispose(static_cast<const FrameRec*>(p)); });
}

Hypervisor::SyncNode* Hypervisor::SyncNode::make(spec::Bfn b) {
    auto* n = new (pool_take(sizeof(SyncNode))) SyncNode;
    n->bfn = b;
    return n;
}

void Hypervisor::SyncNode::dispose(SyncNode* n) {
    static_assert(std::is_trivially_destructible_v<SyncNode>);
    pool_give(n, sizeof(SyncNode));
}

// This thread's Works (see WorkLease). Thread-local: no synchronisation. A lease takes the Work
// of its nesting level, so that the steady state moves no pointer in or out of a container.
Hypervisor::WorkLease::Stack& Hypervisor::WorkLease::stack() {
    thread_local Stack s;
    return s;
}

Hypervisor::WorkLease::WorkLease() {
    Stack& s = stack();
    if (s.depth == s.works.size()) s.works.push_back(std::make_unique<Work>());
    w_ = s.works[s.depth++].get();
}

Hypervisor::WorkLease::~WorkLease() {
    for (FrameRec* r : w_->created) FrameRec::dispose(r);  // staged, never published
    assert(w_->to_put.empty() && w_->to_flush.empty());    // every op runs finish()
    w_->to_put.clear();
    w_->to_flush.clear();
    w_->reset();
    --stack().depth;
}

void Hypervisor::Work::reset() {
    t.reset();
    doomed = false;
    memo_map = nullptr;
    cells.clear();
    created.clear();
    replaced.clear();
    freed.clear();
    deferred.clear();
    flush.clear();
}

Hypervisor::DomainRec* Hypervisor::dom(DomId d) const {
    return d.v < doms_.size() ? doms_[d.v].get() : nullptr;
}

Hypervisor::Server* Hypervisor::server(DomId target, IoServId id) const {
    const DomainRec* t = dom(target);
    return t != nullptr ? server(*t, id) : nullptr;
}

Hypervisor::Server* Hypervisor::server(const DomainRec& t, IoServId id) {
    for (Server* s : t.servers)
        if (s->id == id) return s;
    return nullptr;
}

bool Hypervisor::is_xen(Mfn m) const {
    // Xen frames are made only by the control plane (xen_gfn) and stay Xen's: no validation.
    return header_now(m).state == FrameState::xen;
}

std::optional<Entry> Hypervisor::entry(Work& w, const DomainRec& c, Bfn b) {
    const RadixMap::Read rd = c.iommu.read(w.t, b.v);  // never allocates (radix.h)
    if (rd.leaf != nullptr) {
        w.memo_map = &c.iommu;
        w.memo_key = b.v;
        w.memo_leaf = rd.leaf;
    }
    const std::uint64_t v = rd.value;
    const std::uint64_t code = entry_code(v);
    if (code == 0) {
        // D18: the 1:1 map of a usable hardware domain in inclusive mode.
        if (!identity_gone(v) && c.hardware && c.usable && host_.mode == IommuMode::inclusive &&
            b.v < host_.frames && !is_xen(Mfn{b.v}))
            return Entry{Mfn{b.v}, kRw, EntryKind::identity};
        return std::nullopt;
    }
    if (code == kScratch) return Entry{Mfn{}, entry_perms(v), EntryKind::scratch};
    return Entry{entry_mfn(v), entry_perms(v), code_kind(code)};
}

Hypervisor::Cell& Hypervisor::cell(Work& w, Mfn m) {
    const auto found =
        std::find_if(w.cells.begin(), w.cells.end(), [&](const Cell& c) { return c.m == m.v; });
    if (found != w.cells.end()) return *found;
    Cell& c = w.cells.emplace_back();
    c.word = &cells_[m.v];
    c.m = m.v;
    c.old = w.t.read(*c.word);
    // The record read in w: published, so immutable, and not freed while the caller is pinned
    // (retired only after the commit that unlinks it).
    c.rec = record_of(c.old);
    c.f = cell_header(c.old);
    return c;
}

Hypervisor::FrameVal Hypervisor::header_now(Mfn m) const {
    return cell_header(mcas_read(cells_[m.v]));
}

void Hypervisor::stage_cells(Work& w) {
    for (Cell& c : w.cells) {
        if (!c.dirty) continue;
        const std::span<const TupleRec> t =
            c.tuples_edited    ? std::span<const TupleRec>{c.tuples.data(), c.tuples.size()}
            : c.rec != nullptr ? c.rec->t()
                               : std::span<const TupleRec>{};
        std::uint64_t v = 0;
        if (c.f.state == FrameState::free) {
            if (!t.empty()) {  // freed while tuples hold references: an inconsistent read
                w.doomed = true;
                return;
            }
        } else if (t.empty()) {
            v = pack_header(c.f) << 3 | kInline;
        } else {
            FrameRec* r = FrameRec::make(pack_header(c.f), t);
            w.created.push_back(r);
            v = as_word(r);
        }
        if (c.rec != nullptr) w.replaced.push_back(c.rec);
        w.t.write(*c.word, v);
    }
}

Hypervisor::TupleVec Hypervisor::tuples(Work& w, Mfn m) {
    const auto t = tuple_view(w, m);
    return {t.begin(), t.end()};
}

std::span<const Hypervisor::TupleRec> Hypervisor::tuple_view(Work& w, Mfn m) {
    // Valid until w stages another frame's cell (w.cells may move) or edits this one.
    const Cell& c = cell(w, m);
    if (c.tuples_edited) return {c.tuples.data(), c.tuples.size()};
    if (c.rec != nullptr) return c.rec->t();
    return {};
}

bool Hypervisor::claimed_at_identity(Work& w, DomId c, Bfn b) {
    return b.v < host_.frames && claims(tuple_view(w, Mfn{b.v}), b, c);
}

std::span<const Hypervisor::TupleRec>::iterator Hypervisor::own_tuple(std::span<const TupleRec> set,
                                                                      const UnmapForeignPage& op,
                                                                      DomId c) {
    return std::find_if(set.begin(), set.end(), [&](const TupleRec& r) {
        return r.bfn == op.bfn && r.domid == op.domid && r.ioserver == op.ioserver &&
               emulator_of(r) == c;  // F5: C's own tuple, by its emulator (D22), orphans too
    });
}

bool Hypervisor::claims(std::span<const TupleRec> set, Bfn b, DomId c) {
    return std::any_of(set.begin(), set.end(), [&](const TupleRec& r) {
        return r.bfn == b && emulator_of(r) == c;  // D22: orphans too (F12)
    });
}

bool Hypervisor::holds(std::span<const TupleRec> set, Bfn b, DomId domid, IoServId ioserver) {
    return std::any_of(set.begin(), set.end(), [&](const TupleRec& r) {
        return r.bfn == b && r.domid == domid && r.ioserver == ioserver;
    });
}

void Hypervisor::set_tuples(Work& w, Mfn m, TupleVec&& next) {
    const auto by_key = [](const TupleRec& a, const TupleRec& b) { return a.key() < b.key(); };
    // F8. Usually sorted already (a removal, or a new tuple above the others): test first.
    if (!std::is_sorted(next.begin(), next.end(), by_key))
        std::sort(next.begin(), next.end(), by_key);
    Cell& c = cell(w, m);
    c.tuples = std::move(next);
    c.tuples_edited = true;
    c.dirty = true;
}

void Hypervisor::get_ref(Work& w, Mfn m) {
    Cell& c = cell(w, m);
    FrameVal& f = c.f;
    // Xen's get_page: only on an owned frame whose count is not 0. The Txn also compares the
    // P2M leaf that led here, so the frame is still allocated at the commit. Seeing anything
    // else means this attempt read words from different instants: it cannot commit.
    // D19: the caller checked count < max_count (count_full); seeing it full here is an
    // inconsistent read too. So the count never passes max_count <= 2^32-1: it cannot carry
    // into the allocated and state bits above it.
    if (f.state != FrameState::owned || f.count == 0 || f.count >= host_.max_count) {
        w.doomed = true;
        return;
    }
    ++f.count;
    c.dirty = true;
}

void Hypervisor::put_ref(Work& w, Mfn m, bool allocation) {
    Cell& c = cell(w, m);
    FrameVal& f = c.f;
    if (f.state != FrameState::owned || f.count == 0 || (allocation && !f.allocated) ||
        (f.count == 1 && f.allocated && !allocation)) {
        w.doomed = true;  // an inconsistent read (see get_ref): this attempt cannot commit
        return;
    }
    if (allocation) f.allocated = false;
    c.dirty = true;
    if (--f.count == 0 && f.deferred == 0) {  // R8: freed when the count reaches 0 (step 7)
        f = FrameVal{};
        w.freed.push_back(m);
    }
}

void Hypervisor::defer_ref(Work& w, Mfn m) {
    Cell& c = cell(w, m);
    FrameVal& f = c.f;
    // The same inconsistent reads as put_ref's (the entry or tuple holding this reference
    // means count >= 1, and >= 2 while the frame is still allocated).
    if (f.state != FrameState::owned || f.count == 0 || (f.count == 1 && f.allocated)) {
        w.doomed = true;
        return;
    }
    if (f.deferred < kDeferredMax) {  // protocol step 5: count -> deferred, never freed here
        --f.count;
        ++f.deferred;
        w.deferred.push_back(Deferred{m, false});
    } else {
        // More than kDeferredMax references of one frame waiting for flushes at once (a
        // balloon swapping thousands of tuples of one frame): this one stays in the count
        // until its put. Still never freed early; only D19's count reads one too many meanwhile.
        w.deferred.push_back(Deferred{m, true});
    }
    c.dirty = true;
}

void Hypervisor::needs_flush(Work& w, const DomainRec& c) { needs_flush(w.flush, c); }

void Hypervisor::needs_flush(Small<const DomainRec*>& ctxs, const DomainRec& c) {
    if (!c.iotlb) return;  // not usable: no IOMMU, nothing cached (F13)
    if (std::find(ctxs.begin(), ctxs.end(), &c) == ctxs.end()) ctxs.push_back(&c);
}

void Hypervisor::finish(Work& w) {
    if (w.to_put.empty() && w.to_flush.empty()) return;
    // Used in place, emptied at the end: the commits below add nothing to them (commit() moves
    // an attempt's own defer_ref/needs_flush there, and a put does neither).
    Small<Deferred>& puts = w.to_put;
    const Small<const DomainRec*>& ctxs = w.to_flush;
    // Step 7: one MCAS over the frames, each losing all of its deferred references of this op.
    auto put_all = [&] {
        if (puts.empty()) return;
        // One frame's deferred references (an order-0 unmap's one, a balloon's swapped ones).
        const bool one_frame = puts.size() == 1
                                   ? !puts[0].via_count
                                   : std::all_of(puts.begin(), puts.end(), [&](const Deferred& d) {
                                         return d.m == puts[0].m && !d.via_count;
                                     });
        if (one_frame && put_deferred(w, puts[0].m, static_cast<std::uint32_t>(puts.size())))
            return;
        if (puts.size() > 1)  // one put (an order-0 unmap) needs no order
            std::sort(puts.begin(), puts.end(), [](const Deferred& a, const Deferred& b) {
                return std::tie(a.m.v, a.via_count) < std::tie(b.m.v, b.via_count);
            });
        for (;;) {
            for (std::size_t i = 0; i < puts.size();) {
                const Mfn m = puts[i].m;
                std::uint32_t deferred = 0, counted = 0;
                for (; i < puts.size() && puts[i].m == m; ++i)
                    ++(puts[i].via_count ? counted : deferred);
                Cell& c = cell(w, m);
                FrameVal& f = c.f;
                if (f.state != FrameState::owned || f.deferred < deferred || f.count < counted) {
                    w.doomed = true;  // an inconsistent read (see get_ref): retry
                    continue;
                }
                f.deferred -= deferred;
                f.count -= counted;
                c.dirty = true;
                if (f.count == 0 && f.deferred == 0) {  // R8: the last reference went
                    f = FrameVal{};
                    w.freed.push_back(m);
                }
            }
            if (commit(w)) break;
        }
    };
    if (PVIOMMU_MUTANT(10)) {
        put_all();  // planted bug: the deferred put before the flush
        // Widened window (as mutant 1's): populates take the frame, devices still DMA to it.
        // GCOVR_EXCL_START
        std::this_thread::sleep_for(std::chrono::microseconds(300));
        // GCOVR_EXCL_STOP
    }
    observe(FlushPoint::before_flush);
    for (const DomainRec* c : ctxs) c->iotlb->flush();  // step 6
    observe(FlushPoint::after_flush);
    if (!PVIOMMU_MUTANT(10)) put_all();  // step 7
    observe(FlushPoint::after_put);
    w.to_put.clear();
    w.to_flush.clear();
}

bool Hypervisor::put_deferred(Work& w, Mfn m, std::uint32_t k) {
    // The general put's Txn for k deferred references of one frame: one word read and written
    // (commit's one-word CAS), without staging. Anything but the expected state: the general
    // path.
    Word& cw = cells_[m.v];
    for (;;) {
        const std::uint64_t old = w.t.read(cw);
        const FrameRec* rec = record_of(old);
        FrameVal f = cell_header(old);
        if (f.state != FrameState::owned || f.deferred < k) break;
        f.deferred -= k;
        const bool freed = f.deferred == 0 && f.count == 0;  // R8: the last reference went
        if (freed && rec != nullptr) break;  // tuples without references: general path
        FrameRec* const made = rec != nullptr ? FrameRec::make(pack_header(f), rec->t()) : nullptr;
        w.t.write(cw, made != nullptr ? as_word(made) : freed ? 0 : pack_header(f) << 3 | kInline);
        if (commit_direct(w, made, rec)) {
            if (freed) hint_.freed(m.v);  // impl/frame_hint.h step 1
            return true;
        }
    }
    w.reset();
    return false;
}

bool Hypervisor::commit(Work& w) {
    // A doomed attempt read an impossible combination of words. Normally they were read at
    // different instants and cannot all still hold: the retry sees a consistent state. If they
    // do all still hold, the state itself breaks an invariant (Xen would BUG()): record it and
    // end the operation without writing, rather than retry forever.
    if (!w.doomed) stage_cells(w);  // one write per edited frame cell (may doom w)
    if (w.doomed) {
        for (FrameRec* r : w.created) FrameRec::dispose(r);  // never published
        w.t.drop_writes();
        const bool broken = w.t.commit();
        // relaxed: a diagnostic flag, read at quiescent points.
        if (broken) corrupt_.store(true, std::memory_order_relaxed);
        w.reset();
        return broken;
    }
    stall(FaultPoint::stall_before_commit);  // the words read may move before the MCAS
    const bool ok = w.t.commit();
    if (ok) {
        // Steps 5-6 committed: finish() flushes and puts them before the operation returns.
        w.to_put.insert(w.to_put.end(), w.deferred.begin(), w.deferred.end());
        for (const DomainRec* c : w.flush)
            if (std::find(w.to_flush.begin(), w.to_flush.end(), c) == w.to_flush.end())
                w.to_flush.push_back(c);
        for (const FrameRec* r : w.replaced) FrameRec::retire(r);
        for (Mfn m : w.freed) hint_.freed(m.v);  // impl/frame_hint.h step 1
    } else {
        for (FrameRec* r : w.created) FrameRec::dispose(r);
    }
    w.reset();
    return ok;
}

bool Hypervisor::take_fault(Work& w) {
    // The pending count is set only at quiescent points, so a 0 read outside the Txn stays 0
    // for this operation; a non-zero one is read and decremented inside it (D10, F9).
    if (mcas_read(fault_) == 0) return false;
    const std::uint64_t f = dec(w.t.read(fault_));
    if (f == 0) return false;
    w.t.write(fault_, enc(f - 1));
    return true;
}

std::optional<std::uint64_t> Hypervisor::unit_fault(Drawn& drawn, std::uint64_t units) {
    if (!drawn) drawn = faults_ != nullptr ? faults_->iommu_map_fails(units) : std::nullopt;
    return *drawn;
}

void Hypervisor::abandon(Work& w) {
    w.t.drop_writes();
    for (Cell& c : w.cells) {  // staged edits dropped: each cell back to what was read
        c.f = cell_header(c.old);
        c.tuples.clear();
        c.tuples_edited = false;
        c.dirty = false;
    }
    for (FrameRec* r : w.created) FrameRec::dispose(r);  // never published (none: staged later)
    w.created.clear();
    w.replaced.clear();
    w.freed.clear();
    w.deferred.clear();
    w.flush.clear();
}

bool Hypervisor::count_full(Work& w, Mfn m) { return cell(w, m).f.count >= host_.max_count; }

bool Hypervisor::over_quota(Work& w, const DomainRec& c, std::uint64_t more) {
    if (!c.quota || more == 0) return false;
    return dec(w.t.read(c.held)) + more > *c.quota;
}

void Hypervisor::charge(Work& w, const DomainRec& e, std::int64_t delta) {
    if (!e.quota || delta == 0) return;
    const std::uint64_t h = dec(w.t.read(e.held));
    w.t.write(e.held, enc(h + static_cast<std::uint64_t>(delta)));  // unsigned wrap = minus
}

std::optional<Mfn> Hypervisor::alloc_frame(DomId d, Gfn g, FrameState state) {
    RadixMap& p2m = dom(d)->p2m;
    WorkLease lease;
    Work& w = *lease;
    bool mapped = false;  // the gfn already has a frame: nothing (decided in a committed Txn)
    // impl/frame_hint.h steps 2-4; each attempt's Txn reads the P2M leaf (or its absent path,
    // RadixMap::read) and the frame, so the outcome is decided at one MCAS.
    const auto got = take_lowest_free(
        hint_, host_.frames, [&](std::uint64_t m) { return mcas_read(cells_[m]) == 0; },
        [&](std::uint64_t m) -> Take {
            if (p2m.read(w.t, g.v).value != 0) {  // the gfn has a frame: nothing
                if (!commit(w)) return Take::retry;
                mapped = true;
                return Take::stop;
            }
            stall(FaultPoint::stall_populate_scan);  // another populate may take it now
            Cell& c = cell(w, Mfn{m});
            if (c.old != 0) {  // taken since the scan read it
                w.reset();
                return Take::retry;
            }
            FrameVal f{state == FrameState::owned ? 1u : 0u, state == FrameState::owned, state,
                       d.v};
            if (state != FrameState::owned) f.owner = 0;
            c.f = f;
            c.dirty = true;
            // A write: the only place populate creates the gfn's radix path (if the read above
            // found it absent, this attempt's commit fails on the new node and retries once).
            Word& leaf = p2m.get(g.v);
            (void)w.t.read(leaf);
            w.t.write(leaf, pack_p2m(Mfn{m}));
            return commit(w) ? Take::taken : Take::retry;  // the frame or the leaf moved
        },
        [&] {
            // No free frame seen at or above the hint and no free since the scan started.
            (void)p2m.read(w.t, g.v);  // the gfn's leaf: "nothing" either way, validated
            return commit(w);
        });
    if (!got || mapped) return std::nullopt;
    return Mfn{*got};
}

bool Hypervisor::deliver(Server& s, Bfn b) {
    SyncNode* node = nullptr;
    WorkLease lease;
    Work& w = *lease;
    // Fault point ring_full: one draw per invalidate (as ref), whatever the ring's fill.
    const bool forced_full = faults_ != nullptr && faults_->ring_full();
    for (;;) {
        // R7: 2 free slots -> buffered (the ring's pointers are read in w either way, so the
        // "full" decision is part of this commit).
        if (!forced_full && s.ring->push(w.t, pack_slot(static_cast<std::uint32_t>(b.v)),
                                         pack_slot(static_cast<std::uint32_t>(b.v >> 32)))) {
            if (commit(w)) {
                SyncNode::dispose(node);  // never published
                return false;
            }
            continue;
        }
        // R7: ring full -> the synchronous channel (unbounded: nothing is dropped).
        if (PVIOMMU_MUTANT(2)) {
            w.reset();
            SyncNode::dispose(node);
            return false;
        }
        if (node == nullptr) node = SyncNode::make(b);
        auto* tail = as_ptr<SyncNode>(w.t.read(s.sync_tail));
        if (w.t.read(tail->next) != 0) {  // cannot happen: tail and next move in one MCAS
            w.reset();
            continue;
        }
        w.t.write(tail->next, as_word(node));
        w.t.write(s.sync_tail, as_word(node));
        if (commit(w)) return true;
    }
}

// ---------------------------------------------------------------------------------------------
// Control plane (quiescent points only)

bool Hypervisor::create_domain(DomId d, DomainRole role, bool iommu_hw, std::uint64_t ram) {
    std::lock_guard lock(control_mu_);
    EpochGuard g;
    std::uint64_t free = 0;
    for (std::uint64_t m = 0; m < host_.frames && free < ram; ++m)
        free += mcas_read(cells_[m]) == 0;
    if (free < ram) return false;  // D9
    auto rec = std::make_unique<DomainRec>();
    rec->hardware = role == DomainRole::hardware;
    rec->iommu_hw = iommu_hw;
    rec->usable =
        host_.iommu && iommu_hw && !(rec->hardware && host_.mode == IommuMode::passthrough);
    if (rec->usable) rec->iotlb = std::make_unique<Iotlb>();  // R11, R12 (D24): its own
    doms_[d.v] = std::move(rec);
    for (std::uint64_t gfn = 0; gfn < ram; ++gfn) (void)alloc_frame(d, Gfn{gfn}, FrameState::owned);
    return true;
}

void Hypervisor::grant_dm(DomId emulator, DomId target) {
    std::lock_guard lock(control_mu_);
    dom(emulator)->dm_over.insert(target);
}

void Hypervisor::create_ioserver(DomId target, IoServId id, DomId emulator, std::uint32_t slots) {
    std::lock_guard lock(control_mu_);
    auto s = std::make_unique<Server>();
    s->target = target;
    s->emulator = emulator;
    s->id = id;
    s->slots = slots;
    s->ring = std::make_unique<BufRing>(slots);
    auto* dummy = SyncNode::make(Bfn{});
    // relaxed: quiescent; the first data-path operation is ordered after us by quiescence.
    s->sync_head.store(as_word(dummy), std::memory_order_relaxed);
    s->sync_tail.store(as_word(dummy), std::memory_order_relaxed);
    dom(target)->servers.push_back(s.get());
    servers_[{target.v, id.v}] = std::move(s);
}

void Hypervisor::add_rmrr(DomId d, Bfn first, std::uint64_t count) {
    std::lock_guard lock(control_mu_);
    dom(d)->rmrr.push_back(Range{first, count});
}

bool Hypervisor::add_xen_gfn(DomId d, Gfn g) {
    std::lock_guard lock(control_mu_);
    EpochGuard guard;
    return alloc_frame(d, g, FrameState::xen).has_value();
}

void Hypervisor::arm_iommu_map_fault(std::uint32_t count) {
    std::lock_guard lock(control_mu_);
    EpochGuard g;
    WorkLease lease;
    Work& w = *lease;
    do {
        (void)w.t.read(fault_);
        w.t.write(fault_, enc(count));  // D10: sets, does not add
    } while (!commit(w));
}

void Hypervisor::set_quota(DomId d, std::uint32_t quota) {
    std::lock_guard lock(control_mu_);
    dom(d)->quota = quota;  // D20: d holds nothing yet, so held stays 0
}

void Hypervisor::delete_server(std::pair<std::uint16_t, std::uint16_t> key) {
    auto it = servers_.find(key);
    // F11: pending requests go with the server (~Server, when servers_ drops it).
    std::erase(dom(it->second->target)->servers, it->second.get());
    servers_.erase(it);
}

// R9 v2 step 1: the servers d serves, and every tuple d holds (orphans included): d's context
// dies with d, so no device of d reaches them. Then d's IOTLB is flushed and the references
// put (protocol steps 5-7).
void Hypervisor::destroy_drop_held(DomId d) {
    std::vector<std::pair<std::uint16_t, std::uint16_t>> served;
    for (const auto& [key, s] : servers_)
        if (s->emulator == d) served.push_back(key);
    for (const auto& key : served) delete_server(key);
    const DomainRec& dr = *dom(d);
    WorkLease lease;
    Work& w = *lease;
    for (std::uint64_t m = 0; m < host_.frames; ++m) {
        if (!is_record(mcas_read(cells_[m]))) continue;  // no tuples
        TupleVec keep;
        bool dropped = false;
        for (const TupleRec& r : tuples(w, Mfn{m})) {
            if (emulator_of(r) != d) {
                keep.push_back(r);
                continue;
            }
            dropped = true;
            defer_ref(w, Mfn{m});  // step 5
            charge(w, dr, -1);     // D20
        }
        if (!dropped) {
            w.reset();
            continue;
        }
        needs_flush(w, dr);
        set_tuples(w, Mfn{m}, std::move(keep));
        const bool ok = commit(w);
        assert(ok);  // quiescent: nothing races
        (void)ok;
    }
    finish(w);  // steps 6-7
}

// R9 v2 step 2 (D12 order): the servers whose target is d. A tuple of such a server goes, with
// its reference, only where its emulator E is usable and E's entry at the bfn is foreign; the
// bfn is then re-pointed at E's scratch page unless another tuple of E uses it. Every other
// one stays, an orphan, with its reference (D22): E's device may still reach the frame.
void Hypervisor::destroy_target_servers(DomId d) {
    std::set<std::pair<std::uint16_t, std::uint16_t>> doomed;
    for (const auto& [key, s] : servers_)
        if (s->target == d) doomed.insert(key);
    if (doomed.empty()) return;
    WorkLease lease;
    Work& w = *lease;
    // Every decision reads the entries before any re-point, as ref decides them all first.
    std::vector<std::pair<DomId, Bfn>> repoint;
    for (std::uint64_t m = 0; m < host_.frames; ++m) {
        if (!is_record(mcas_read(cells_[m]))) continue;  // no tuples
        TupleVec next;
        bool changed = false;
        for (const TupleRec& r : tuples(w, Mfn{m})) {
            if (r.orphan || !doomed.contains({r.domid.v, r.ioserver.v})) {
                next.push_back(r);  // an orphan is no server's tuple any more (D22)
                continue;
            }
            changed = true;
            const DomainRec& ed = *dom(emulator_of(r));
            const auto ent = ed.usable ? entry(w, ed, r.bfn) : std::nullopt;
            const bool foreign = ent && ent->kind == EntryKind::foreign;
            if (!foreign && !PVIOMMU_MUTANT(11)) {  // mutant 11: v1 dropped these too
                TupleRec o = r;
                o.orphan = true;  // R9 v2, F12: stays with its reference
                next.push_back(o);
                continue;
            }
            defer_ref(w, Mfn{m});  // step 5
            charge(w, ed, -1);     // D20: E's holding goes
            needs_flush(w, ed);
            if (foreign) repoint.emplace_back(emulator_of(r), r.bfn);
        }
        if (!changed) {
            w.reset();
            continue;
        }
        set_tuples(w, Mfn{m}, std::move(next));
        const bool ok = commit(w);
        assert(ok);
        (void)ok;
    }
    for (const auto& [e, b] : repoint) {  // foreign and no longer claimed -> E's scratch
        const DomainRec& ed = *dom(e);
        Word& leaf = ed.iommu.get(b.v);
        const std::uint64_t v = w.t.read(leaf);
        const bool used =  // orphans included (F12)
            entry_code(v) != kForeign || claims(tuple_view(w, entry_mfn(v)), b, e);
        if (used) {
            w.reset();
            continue;
        }
        put_entry(w.t, leaf, pack_entry(kScratch, entry_perms(v), Mfn{}));  // D7, R12
        const bool ok = commit(w);
        assert(ok);
        (void)ok;
    }
    for (const auto& key : doomed) delete_server(key);  // F11
    finish(w);  // steps 6-7: the emulators' IOTLBs, then the puts
}

// R9 v2 step 4: d's IOMMU context; its local entries' references are put after d's flush.
void Hypervisor::destroy_local_entries(DomId d) {
    const DomainRec& dr = *dom(d);
    std::vector<std::uint64_t> local;
    dr.iommu.for_each([&](std::uint64_t b, std::uint64_t v) {
        if (entry_code(v) == kLocal) local.push_back(b);
    });
    WorkLease lease;
    Work& w = *lease;
    for (const std::uint64_t b : local) {
        Word& leaf = dr.iommu.get(b);
        const std::uint64_t v = w.t.read(leaf);
        put_entry(w.t, leaf, 0);
        defer_ref(w, entry_mfn(v));  // step 5
        needs_flush(w, dr);
        const bool ok = commit(w);
        assert(ok);
        (void)ok;
    }
    finish(w);  // steps 6-7
}

void Hypervisor::destroy(DomId d) {
    std::lock_guard lock(control_mu_);
    EpochGuard g;
    DomainRec& dr = *dom(d);
    // Devices go before their domain (Xen deassigns them first): a section would outlive the
    // context it reads.
    assert(!dr.iotlb || !dr.iotlb->any_attached());
    destroy_drop_held(d);       // step 1
    destroy_target_servers(d);  // step 2
    // R9 v2 step 3: the P2M as balloon-out (R7), ascending gfn; Xen-backed entries simply go.
    // Only orphans are left on d's frames: no invalidation, no swap. Each balloon flushes and
    // puts what it swapped (none here) before the next.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> p2m;
    dr.p2m.for_each([&](std::uint64_t g, std::uint64_t v) { p2m.emplace_back(g, v); });
    for (const auto& [gfn, v] : p2m)
        if (!is_xen(*unpack_p2m(v))) (void)balloon(d, Gfn{gfn});
    destroy_local_entries(d);  // step 4
    doms_[d.v].reset();        // its radix trees, IOTLB and scratch page (D24)
    for (const auto& other : doms_)
        if (other) other->dm_over.erase(d);  // D8
}

// ---------------------------------------------------------------------------------------------
// Subops

Status Hypervisor::check_target(DomId c, DomId domid, IoServId ioserver) const {
    if (domid == kDomIdSelf || domid == c) return Status::eperm;  // R3: foreign only
    const DomainRec* t = dom(domid);
    if (t == nullptr) return Status::enxio;  // R3: live domid
    // R3: privilege (C is live). A scan, not dm_over.contains(): the vector holds the few
    // domains C is privileged over, and the scan is 10 instructions fewer than a binary search.
    if (const DomainRec& cd = *dom(c);
        !cd.hardware && std::find(cd.dm_over.begin(), cd.dm_over.end(), domid) == cd.dm_over.end())
        return Status::eperm;
    const Server* srv = server(*t, ioserver);
    if (srv == nullptr || srv->emulator != c) return Status::enodev;  // R3: C's server
    return Status::ok;
}

Status Hypervisor::query_caps(DomId c, QueryCaps& op) {
    // OUT: map_cap exactly when usable(C); order bits: max_order, 0 when not usable (R2).
    op.flags = dom(c)->usable ? Flags::with_order(host_.max_order, IOMMU_QUERY_map_cap) : Flags{};
    return Status::ok;
}

Status Hypervisor::map_page(DomId c, MapPage& op) {
    if (auto st = check_flags_and_order(op.flags, host_, {op.bfn.v, op.gfn.v}, false))
        return *st;  // R1, R2
    DomainRec& cd = *dom(c);
    if (!cd.usable) return Status::eperm;  // F6: usable(C)
    const std::uint64_t n = frames_of_order(op.flags);
    EpochGuard g;
    FaultScope fs(faults_.get());
    WorkLease lease;
    Work& w = *lease;
    Drawn drawn;  // fault iommu_map, once per operation
    for (;;) {
        Small<Mfn> mfns;
        const Status st = [&]() -> Status {
            for (std::uint64_t i = 0; i < n; ++i) {  // R6, F2: own P2M
                const auto m = unpack_p2m(cd.p2m.read(w.t, op.gfn.v + i).value);
                if (!m) return Status::enxio;
                mfns.push_back(*m);
            }
            for (Mfn m : mfns)
                if (is_xen(m)) return Status::eperm;  // R6: Xen frame
            for (const Range& r : cd.rmrr)
                if (r.meets(op.bfn, n)) return Status::eacces;  // R6: RMRR
            for (std::uint64_t i = 0; i < n; ++i) {             // R6: occupied
                const Bfn b{op.bfn.v + i};
                if (entry(w, cd, b) || claimed_at_identity(w, c, b)) return Status::eexist;
            }
            for (Mfn m : mfns)
                if (count_full(w, m)) return Status::eoverflow;  // D19: count
            if (over_quota(w, cd, n)) return Status::enomem;     // D20: C's quota
            if (take_fault(w)) return Status::eio;               // R6, F9: unit
            const auto fail_at = unit_fault(drawn, n);           // fault iommu_map
            for (std::uint64_t i = 0; i < n; ++i) {
                if (fail_at == i) {  // F10: all or nothing
                    abandon(w);
                    return Status::eio;
                }
                if (Word* leaf = w.leaf_to_write(cd.iommu, op.bfn.v + i, fail_at))
                    put_entry(w.t, *leaf, pack_entry(kLocal, op.flags.perms(), mfns[i]));
                get_ref(w, mfns[i]);  // R6: one ref each
            }
            charge(w, cd, static_cast<std::int64_t>(n));  // D20
            return Status::ok;
        }();
        if (commit(w)) return st;
    }
}

Status Hypervisor::unmap_page(DomId c, UnmapPage& op) {
    if (auto st = check_flags_and_order(op.flags, host_, {op.bfn.v}, false)) return *st;
    DomainRec& cd = *dom(c);
    if (!cd.usable) return Status::eperm;  // F6: usable(C)
    const std::uint64_t n = frames_of_order(op.flags);
    EpochGuard g;
    FaultScope fs(faults_.get());
    WorkLease lease;
    Work& w = *lease;
    for (;;) {
        const Status st = [&]() -> Status {
            Small<Entry> entries;
            for (std::uint64_t i = 0; i < n; ++i) {  // F10: all present
                const auto e = entry(w, cd, Bfn{op.bfn.v + i});
                if (!e) return Status::enoent;
                entries.push_back(*e);
            }
            for (const Entry& e : entries)  // R6, F10
                if (e.kind == EntryKind::foreign || e.kind == EntryKind::scratch)
                    return Status::eperm;
            // R6 v2, F10: a bfn a tuple of C claims. The entries are identity or local now, and
            // by INV-M2B-SET a tuple of C can claim only an identity bfn (map_page refuses a
            // claimed bfn, and a lookup registers only on the 1:1 map): a tuple at bfn b on
            // frame b, orphans included (F12).
            for (std::uint64_t i = 0; i < n; ++i)
                if (entries[i].kind == EntryKind::identity &&
                    claimed_at_identity(w, c, Bfn{op.bfn.v + i}))
                    return Status::ebusy;
            for (std::uint64_t i = 0; i < n; ++i) {
                Word& leaf = w.leaf(cd.iommu, op.bfn.v + i);
                if (entries[i].kind == EntryKind::identity) {
                    put_entry(w.t, leaf, 0, /*gone=*/true);  // drops nothing
                } else {
                    put_entry(w.t, leaf, 0);
                    defer_ref(w, entries[i].mfn);  // local: drops one, after the flush
                    charge(w, cd, -1);             // D20
                }
            }
            needs_flush(w, cd);  // step 6: C's IOTLB may cache the entries
            return Status::ok;
        }();
        if (commit(w)) {
            finish(w);  // steps 6-7
            return st;
        }
    }
}

// The direct order-0 map and unmap (issue 16, v2 step 2d). The general path stages every
// frame it touches in a Cell and every error row in a lambda, and costs about 2,400 instructions
// per map_foreign_page, of which the MCAS is about 600. The common case of an order-0
// map_foreign_page (a new tuple) and unmap_foreign_page (C's tuple on its foreign entry) reads
// and writes few words, so it builds its Txn by hand:
//   map:    reads the target's P2M leaf (-> m), C's IOMMU leaf at bfn (no entry, or C's foreign
//           entry to m with the call's perms: the tuple joins that mapping), the claim cell of
//           frame bfn (R6; only with no entry and bfn a frame other than m) and m's cell;
//           writes m's cell (a record with the tuple added, count + 1) and, unless the tuple
//           joins an entry, the leaf (the entry).
//   unmap:  reads C's IOMMU leaf (a foreign entry -> m) and m's cell (a record holding C's
//           tuple); writes the cell (the tuple out, its reference count -> deferred) and, if no
//           other tuple of C is at bfn, the leaf (no entry); then finish(): flush, put.
// These are the words and values the general path's Txn reads and writes for the same state
// (its write of an unchanged leaf is a read-only word too), and the commit is the same MCAS, so
// the linearization point (the MCAS's decision) and the argument for it are the general path's.
// Anything else (an error row, a re-map, another entry, a 1:1 entry, a full count or deferred
// field, a quota, a pending injected -EIO, a planted mutant, a failed commit) writes nothing
// and returns false: the general path then runs from scratch and decides. So the direct paths
// decide only outcomes `ok` that the general path would decide, and one error (v2 step 2f):
// map's -ENXIO on an empty P2M leaf, the general path's first row after R3's target checks,
// decided like it on that one read (validated by the commit); a fault plan's stall points
// apply to them, and map makes the plan's iommu_map draw where the general path makes it. The
// props suites (impl against ref, sequential, with fault plans, and linearizability, also with
// stalls), the stress tests and the random trace diff run through them.
bool Hypervisor::direct_allowed(const DomainRec& cd) const {
#ifdef PVIOMMU_MUTANTS
    if (selected_mutant() != 0) return false;  // the mutants live in the general path
#endif
    // fault_ is set only at quiescent points (take_fault): a 0 read here stays 0 for the op.
    return !cd.quota && mcas_read(fault_) == 0;
}

bool Hypervisor::commit_direct(Work& w, FrameRec* made, const FrameRec* replaced) {
    stall(FaultPoint::stall_before_commit);  // the words read may move before the MCAS
    const bool ok = w.t.commit();
    if (ok)
        FrameRec::retire(replaced);  // unlinked by the commit
    else
        FrameRec::dispose(made);  // never published
    w.reset();
    return ok;
}

std::optional<Status> Hypervisor::map_foreign_direct(DomId c, const DomainRec& cd,
                                                     const DomainRec& td, const MapForeignPage& op,
                                                     Work& w, Drawn& drawn) {
    if (frames_of_order(op.flags) != 1 || !direct_allowed(cd)) return std::nullopt;
    const Bfn b = op.bfn;
    for (const Range& r : cd.rmrr)
        if (r.meets(b, 1)) return std::nullopt;  // R3: -EACCES
    Word* const pl = td.p2m.find(op.gfn.v);
    if (pl == nullptr) return std::nullopt;  // R3: -ENXIO
    const auto m = unpack_p2m(w.t.read(*pl));
    stall(FaultPoint::stall_txn_between_reads);  // the P2M leaf and the cell may move apart
    // D18: a 1:1 entry may stand at a frame-numbered bfn of a hardware domain.
    const bool identity_rule = cd.hardware && host_.mode == IommuMode::inclusive;
    auto give_up = [&]() -> std::optional<Status> {
        w.reset();
        return std::nullopt;
    };
    if (!m) {  // R3: -ENXIO, the first row after the target's: decided on this leaf read alone
        if (commit_direct(w, nullptr, nullptr)) return Status::enxio;  // the read still holds
        return std::nullopt;
    }
    if (identity_rule && b.v < host_.frames) return give_up();
    Word* leaf = cd.iommu.find(b.v);
    const std::uint64_t lv = leaf != nullptr ? w.t.read(*leaf) : 0;
    // An entry at bfn is fine only if it is C's foreign entry to m with the call's perms: the
    // tuple joins an existing mapping (another server's, as in W2), no write of the leaf, no
    // flush (D3). Any other entry: -EEXIST or a permission change, general path.
    const bool joins =
        entry_code(lv) == kForeign && entry_mfn(lv) == *m && entry_perms(lv) == op.flags.perms();
    if (entry_code(lv) != 0 && !joins) return give_up();
    if (!joins && b.v != m->v && b.v < host_.frames) {  // R6: bfn claimed by a tuple of frame bfn
        const FrameRec* claim = record_of(w.t.read(cells_[b.v]));
        if (claim != nullptr && claims(claim->t(), b, c)) return give_up();  // -EEXIST
    }
    Word& cw = cells_[m->v];
    const std::uint64_t old = w.t.read(cw);
    const FrameRec* rec = record_of(old);
    FrameVal f = cell_header(old);
    const std::span<const TupleRec> set = rec != nullptr ? rec->t() : std::span<const TupleRec>{};
    // get_ref's precondition (an owned frame, count not 0) and D19 (count < max_count); a Xen
    // frame (R3: -EPERM) is not owned. A tuple already there without its entry: general path.
    if (f.state != FrameState::owned || f.count == 0 || f.count >= host_.max_count ||
        holds(set, b, op.domid, op.ioserver))
        return give_up();
    // The fault plan's iommu_map draw, at the general path's point of the check order (after
    // every error row and take_fault); drawn once per operation, so a general path that runs
    // next returns the -EIO it drew (F10).
    if (unit_fault(drawn, 1)) return give_up();
    if (leaf == nullptr) {  // no path yet: create it, now that the map will write it
        leaf = &cd.iommu.get(b.v);
        if (entry_code(w.t.read(*leaf)) != 0) return give_up();
    }
    const TupleRec add{b, op.domid, op.ioserver, c, op.flags.swap_mfn(), false};  // D22
    const auto at =
        std::upper_bound(set.begin(), set.end(), add, [](const TupleRec& x, const TupleRec& y) {
            return x.key() < y.key();  // F8: sorted
        });
    ++f.count;  // one reference for the tuple
    FrameRec* const made = FrameRec::make_edited(pack_header(f), set,
                                                 static_cast<std::size_t>(at - set.begin()), &add);
    w.t.write(cw, as_word(made));
    if (!joins) put_entry(w.t, *leaf, pack_entry(kForeign, op.flags.perms(), *m));  // D3
    if (!commit_direct(w, made, rec)) return std::nullopt;
    return Status::ok;  // F3: OUT bfn = bfn
}

bool Hypervisor::unmap_foreign_direct(DomId c, const DomainRec& cd, const UnmapForeignPage& op,
                                      Work& w) {
    if (!cd.usable || !direct_allowed(cd)) return false;
    Word* const leaf = cd.iommu.find(op.bfn.v);
    if (leaf == nullptr) return false;
    const std::uint64_t lv = w.t.read(*leaf);
    auto give_up = [&] {
        w.reset();
        return false;
    };
    if (entry_code(lv) != kForeign || entry_mfn(lv).v >= host_.frames) return give_up();
    const Mfn m = entry_mfn(lv);
    Word& cw = cells_[m.v];
    const std::uint64_t old = w.t.read(cw);
    const FrameRec* rec = record_of(old);
    if (rec == nullptr) return give_up();
    const std::span<const TupleRec> set = rec->t();
    const auto at = own_tuple(set, op, c);
    FrameVal f = unpack_header(rec->header);
    // defer_ref's precondition, with room in the deferred field (else the general path keeps
    // the reference in the count).
    if (at == set.end() || f.state != FrameState::owned || f.count == 0 ||
        (f.count == 1 && f.allocated) || f.deferred >= kDeferredMax)
        return give_up();
    // R5: another tuple of C at bfn keeps the entry.
    const bool still_used =
        claims({set.begin(), at}, op.bfn, c) || claims({std::next(at), set.end()}, op.bfn, c);
    --f.count;  // protocol step 5: the reference waits in deferred for C's flush
    ++f.deferred;
    FrameRec* const made =
        set.size() == 1
            ? nullptr
            : FrameRec::make_edited(pack_header(f), set, static_cast<std::size_t>(at - set.begin()),
                                    nullptr);
    w.t.write(cw, made != nullptr ? as_word(made) : pack_header(f) << 3 | kInline);
    if (!still_used) put_entry(w.t, *leaf, 0);
    if (!commit_direct(w, made, rec)) return false;
    w.to_put.push_back(Deferred{m, false});  // step 7, after
    needs_flush(w.to_flush, cd);             // step 6
    finish(w);
    return true;
}

// The direct balloon (issue 16, v2 step 2f). W3's balloon of a frame with a few swap-flagged
// tuples cost about 2,900 instructions before its deliveries, most of it the general path's
// staging (a copy of the tuples, a keep list, a Cell, set_tuples, stage_cells). Its Txn, built
// here by hand:
//   reads:  the P2M leaf of (d, g) (-> m, allocated), m's cell, and for each swap-flagged tuple
//           of a usable emulator e that emulator's IOMMU leaf at the tuple's bfn (RadixMap::read,
//           which validates an absent path as the general path's entry() does);
//   writes: the P2M leaf (0: R7), m's cell (allocation reference dropped; each swapped tuple
//           out, its reference to deferred: protocol step 5), and each swapped tuple's leaf to
//           e's scratch page with the entry's perms (R12) unless a kept tuple of e is at the
//           same bfn.
// The general path reads the leaf of every tuple of a usable emulator; its outcome depends only
// on those of swap-flagged tuples, so the others are not in this read set (fewer words
// compared, the same decision). The written words and values are the general path's for the
// same state, and the commit is one MCAS, so the linearization point is unchanged. Anything
// else (no frame or a Xen frame, an inconsistent header, more than kBalloonDirectMax tuples, a
// quota on a swapped tuple's emulator (D20), a full deferred field, a planted mutant, a failed
// commit) writes nothing and returns false: the general path runs from scratch and decides.
constexpr std::size_t kBalloonDirectMax = 8;

bool Hypervisor::balloon_direct(const RadixMap& p2m, Gfn g, Work& w, Mfn& mfn,
                                const FrameRec*& seen) {
#ifdef PVIOMMU_MUTANTS
    if (selected_mutant() != 0) return false;  // the mutants live in the general path
#endif
    auto give_up = [&] {
        w.reset();
        return false;
    };
    const RadixMap::Read leaf = p2m.read(w.t, g.v);  // never allocates
    const auto m = unpack_p2m(leaf.value);
    if (!m || is_xen(*m)) return give_up();  // R7 / F7: nothing happens (the general path)
    Word& cw = cells_[m->v];
    const std::uint64_t old = w.t.read(cw);
    const FrameRec* rec = record_of(old);
    FrameVal f = cell_header(old);
    const std::span<const TupleRec> set = rec != nullptr ? rec->t() : std::span<const TupleRec>{};
    // put_ref's precondition for the allocation reference.
    if (f.state != FrameState::owned || f.count == 0 || !f.allocated ||
        set.size() > kBalloonDirectMax)
        return give_up();
    // R7, D13: a swap-flagged tuple of a usable emulator with a foreign entry at its bfn goes.
    std::array<Word*, kBalloonDirectMax> leaves{};  // the swapped tuples' leaves, by index
    std::array<const DomainRec*, kBalloonDirectMax> emus{};
    std::uint32_t swapped = 0;
    for (std::size_t i = 0; i < set.size(); ++i) {
        const TupleRec& r = set[i];
        if (r.orphan || !r.swap) continue;  // R9 v2: an orphan has no server: kept
        const DomainRec& ed = *dom(emulator_of(r));
        if (!ed.usable) continue;
        if (ed.quota) return give_up();  // D20: the general path charges the quota word
        const RadixMap::Read el = ed.iommu.read(w.t, r.bfn.v);
        if (entry_code(el.value) != kForeign) continue;
        leaves[i] = el.leaf;
        emus[i] = &ed;
        ++swapped;
    }
    // R7: the allocation reference is dropped at once (put_ref); then each swapped tuple's
    // reference waits in deferred for its emulator's flush (defer_ref, step 5).
    f.allocated = false;
    --f.count;
    const bool freed = f.count == 0 && f.deferred == 0;  // R8: no tuple held a reference
    if ((freed && !set.empty()) || f.count < swapped || f.deferred + swapped > kDeferredMax)
        return give_up();  // an inconsistent read, or a full deferred field
    f.count -= swapped;
    f.deferred += swapped;
    std::array<TupleRec, kBalloonDirectMax> kept{};
    std::size_t nkept = 0;
    for (std::size_t i = 0; i < set.size(); ++i)
        if (leaves.at(i) == nullptr) kept.at(nkept++) = set[i];  // F8 order kept
    for (std::size_t i = 0; i < set.size(); ++i) {
        if (leaves.at(i) == nullptr) continue;
        const TupleRec& r = set[i];
        // R12: the emulator's own scratch page, with the entry's perms, unless a kept tuple
        // of the emulator still claims the bfn.
        if (!claims({kept.data(), nkept}, r.bfn, emulator_of(r)))
            put_entry(w.t, *leaves.at(i),
                      pack_entry(kScratch, entry_perms(w.t.read(*leaves.at(i))), Mfn{}));
    }
    FrameRec* made = nullptr;
    if (!freed && nkept != 0)
        made = FrameRec::make(pack_header(f), std::span<const TupleRec>{kept.data(), nkept});
    w.t.write(cw, made != nullptr ? as_word(made) : freed ? 0 : pack_header(f) << 3 | kInline);
    w.t.write(*leaf.leaf, 0);  // R7: the P2M entry goes
    if (!commit_direct(w, made, rec)) return false;
    if (freed) hint_.freed(m->v);  // impl/frame_hint.h step 1
    for (std::size_t i = 0; i < set.size(); ++i) {
        if (leaves.at(i) == nullptr) continue;
        w.to_put.push_back(Deferred{*m, false});  // step 7, after
        needs_flush(w.to_flush, *emus.at(i));     // step 6
    }
    mfn = *m;
    seen = rec;  // retired by the commit; the caller is pinned until its deliveries are done
    return true;
}

Status Hypervisor::map_foreign_page(DomId c, MapForeignPage& op) {
    if (auto st = check_flags_and_order(op.flags, host_, {op.bfn.v, op.gfn.v}, false))
        return *st;  // R1, R2
    DomainRec& cd = *dom(c);
    if (!cd.usable) return Status::eperm;  // R3: usable(C)
    if (const Status st = check_target(c, op.domid, op.ioserver); st != Status::ok)
        return st;  // R3: target
    DomainRec* td = dom(op.domid);
    const std::uint64_t n = frames_of_order(op.flags);
    EpochGuard g;
    FaultScope fs(faults_.get());
    WorkLease lease;
    Work& w = *lease;
    Drawn drawn;  // fault iommu_map, once per operation
    if (const auto st = map_foreign_direct(c, cd, *td, op, w, drawn)) return *st;
    for (;;) {
        Small<Mfn> mfns;
        Small<Mfn> late;  // mutant 1 only
        const Status st = [&]() -> Status {
            for (std::uint64_t i = 0; i < n; ++i) {  // R3, F2: gfns
                const auto m =
                    unpack_p2m(PVIOMMU_MUTANT(6) ? leaf_now(td->p2m, op.gfn.v + i)
                                                 : td->p2m.read(w.t, op.gfn.v + i).value);
                if (PVIOMMU_MUTANT(6))  // the window between P2M read and get_page, widened
                    std::this_thread::sleep_for(std::chrono::microseconds(300));
                if (!m) return Status::enxio;
                mfns.push_back(*m);
            }
            for (Mfn m : mfns)
                if (is_xen(m)) return Status::eperm;  // R3: Xen frame
            if (!(PVIOMMU_MUTANT(8) && n > 1))
                for (const Range& r : cd.rmrr)
                    if (r.meets(op.bfn, n)) return Status::eacces;  // R3: RMRR of C
            for (std::uint64_t i = 0; i < n; ++i) {                 // R3, F3: -EEXIST
                const Bfn b{op.bfn.v + i};
                const auto e = entry(w, cd, b);
                if (e && !(e->kind == EntryKind::foreign && e->mfn == mfns[i]))
                    return Status::eexist;
                if (!e && b.v != mfns[i].v && claimed_at_identity(w, c, b)) return Status::eexist;
            }
            std::uint64_t fresh = 0;  // new tuples
            for (std::uint64_t i = 0; i < n; ++i) {
                const Bfn b{op.bfn.v + i};
                if (holds(tuple_view(w, mfns[i]), b, op.domid, op.ioserver)) continue;
                ++fresh;
                if (count_full(w, mfns[i])) return Status::eoverflow;  // D19: count
            }
            if (over_quota(w, cd, fresh)) return Status::enomem;  // D20: C's quota
            if (take_fault(w)) return Status::eio;                // R3, F9: unit
            const auto fail_at = unit_fault(drawn, n);            // fault iommu_map
            charge(w, cd, static_cast<std::int64_t>(fresh));      // D20
            for (std::uint64_t i = 0; i < n; ++i) {
                if (fail_at == i) {  // F10: all or nothing
                    abandon(w);
                    return Status::eio;
                }
                const Bfn b{op.bfn.v + i};
                const auto old = entry(w, cd, b);
                if (old && old->perms != op.flags.perms())
                    needs_flush(w, cd);  // D3 narrows or widens a cached permission
                if (Word* leaf = w.leaf_to_write(cd.iommu, b.v, fail_at))
                    put_entry(w.t, *leaf, pack_entry(kForeign, op.flags.perms(), mfns[i]));  // D3
                const auto view = tuple_view(w, mfns[i]);
                if (!holds(view, b, op.domid, op.ioserver)) {  // R3: new tuple, its emulator (D22)
                    TupleVec set(view.begin(), view.end());    // copied only to add the tuple
                    set.push_back(
                        TupleRec{b, op.domid, op.ioserver, c, op.flags.swap_mfn(), false});
                    set_tuples(w, mfns[i], std::move(set));
                    if (PVIOMMU_MUTANT(1))
                        late.push_back(mfns[i]);
                    else
                        get_ref(w, mfns[i]);  // one ref each
                } else if (PVIOMMU_MUTANT(9)) {
                    get_ref(w, mfns[i]);
                }
            }
            return Status::ok;  // F3: OUT bfn = bfn
        }();
        if (commit(w)) {
            finish(w);  // a D3 permission change: the flush, nothing to put
            // Mutant 1's window, widened (as FoundationDB's BUGGIFY) so that two cores find it.
            // Planted-bug scaffolding: `late` stays empty unless mutant 1 runs.
            // GCOVR_EXCL_START
            if (!late.empty()) std::this_thread::sleep_for(std::chrono::microseconds(300));
            for (Mfn m : late) {  // mutant 1: the reference, after the tuple was published
                for (;;) {
                    const FrameVal f = cell(w, m).f;
                    if (f.state != FrameState::owned || f.count == 0) break;
                    get_ref(w, m);
                    if (commit(w)) break;
                }
                w.reset();
            }
            // GCOVR_EXCL_STOP
            return st;
        }
    }
}

// The common lookup, a server asking again for a frame it already holds a tuple on, changes
// nothing, so it needs no MCAS and no copy of the tuple set. Reads, in this order:
//   t1 the target's P2M leaf (-> mfn m), t2 m's cell (a FrameRec* s holding the tuple),
//   t3 the P2M leaf again, t4 the cell again.
// If t3 and t4 return what t1 and t2 did, the lookup linearizes at t3: the leaf holds m then,
// and the cell held s throughout [t2, t4], which contains t3. "Held throughout" needs the
// cell to be free of ABA while it holds a record: every write of a cell installs 0, an inline
// header (never equal to a record pointer: bit 2) or a freshly made FrameRec, and s cannot be
// freed (hence not reused at the same address) while this thread is pinned (caller's
// EpochGuard), because s is retired only after the commit that unlinks it. The P2M leaf may suffer
// ABA (balloon then populate of the same frame), which is why it is the word read at the
// linearization point, not the one whose constancy is relied on. Anything else (no tuple, a changed
// word) takes the MCAS path.
// Inlined into its one caller, whose frame it then shares (its own was 19 instructions per call).
[[gnu::always_inline]] inline bool Hypervisor::lookup_registered(const DomainRec& td,
                                                                 const LookupForeignPage& op,
                                                                 Bfn& out) {
    Word* const leaf = td.p2m.find(op.gfn.v);    // never allocates
    if (leaf == nullptr) return false;           // no frame: an error row, slow path
    const std::uint64_t p2m = mcas_read(*leaf);  // t1
    const auto m = unpack_p2m(p2m);
    // No is_xen test: a frame with a tuple is never Xen's (INV-NO-XEN: xen_gfn takes a free
    // frame, and map refuses Xen frames), so a Xen frame fails the tuple test below and takes
    // the slow path, which returns its -EPERM. (One load fewer, a DRAM miss at 1e6 frames.)
    if (!m) return false;  // an error row: slow path
    Word& cw = cells_[m->v];
    // A balloon may take the gfn between t1 and t2 and leave the tuple on the frame (a tuple
    // without swap stays): only t3 then tells. A stall here lets the suites widen this window.
    stall(FaultPoint::stall_txn_between_reads);
    const std::uint64_t set = mcas_read(cw);  // t2
    const FrameRec* rec = record_of(set);
    if (rec == nullptr) return false;  // no tuples
    const auto recs = rec->t();
    const auto it = std::find_if(recs.begin(), recs.end(), [&](const TupleRec& r) {
        return r.domid == op.domid && r.ioserver == op.ioserver;  // R4: lowest bfn (sorted)
    });
    if (it == recs.end()) return false;
    const Bfn found = it->bfn;
    stall(FaultPoint::stall_txn_between_reads);  // either word may move before the re-reads
    // t3, t4: plain loads compared with the logical values t1 and t2 read (neither has a
    // descriptor's tag bits), so an equal load is that logical value; a descriptor there reads
    // as a change and the MCAS path helps it. seq_cst as mcas_read's loads (a plain MOV on x86).
    if (leaf->load(std::memory_order_seq_cst) != p2m || cw.load(std::memory_order_seq_cst) != set)
        return false;
    out = found;
    return true;
}

Status Hypervisor::lookup_foreign_page(DomId c, LookupForeignPage& op) {
    if (auto st = check_flags_and_order(op.flags, host_, {}, true)) return *st;  // R1, R2
    DomainRec& cd = *dom(c);
    if (const Status st = check_target(c, op.domid, op.ioserver); st != Status::ok)
        return st;  // R4(R3): target
    DomainRec& td = *dom(op.domid);
    if (cd.usable) {
        EpochGuard g;
        FaultScope fs(faults_.get());
        if (Bfn b; lookup_registered(td, op, b)) {
            op.bfn = b;
            return Status::ok;
        }
    }
    return lookup_foreign_mcas(c, cd, td, op);
}

// Out of line, so that the common lookup above does not pay this path's frame (its Work lease,
// its lambda's captures: about 25 instructions of register saves and restores per call).
Status Hypervisor::lookup_foreign_mcas(DomId c, DomainRec& cd, DomainRec& td,
                                       LookupForeignPage& op) {
    EpochGuard g;
    FaultScope fs(faults_.get());
    WorkLease lease;
    Work& w = *lease;
    for (;;) {
        Bfn out{};
        const Status st = [&]() -> Status {
            const auto m = unpack_p2m(td.p2m.read(w.t, op.gfn.v).value);
            if (!m) return Status::enxio;          // R4(R3): gfn
            if (is_xen(*m)) return Status::eperm;  // R4(R3): Xen frame
            const auto view = tuple_view(w, *m);   // copied only to register a tuple
            const Bfn ident{m->v};
            if (!cd.usable) {
                if (op.bfn != kBfnInvalid) return Status::einval;  // R4, F4: last
                out = ident;                                       // bfn = mfn
                if (!holds(view, ident, op.domid, op.ioserver)) {
                    if (count_full(w, *m)) return Status::eoverflow;  // D19: count
                    if (over_quota(w, cd, 1)) return Status::enomem;  // D20: C's quota
                    TupleVec set(view.begin(), view.end());
                    set.push_back(TupleRec{ident, op.domid, op.ioserver, c, false, false});  // F4
                    set_tuples(w, *m, std::move(set));
                    get_ref(w, *m);
                    charge(w, cd, 1);
                }
                return Status::ok;
            }
            for (const TupleRec& r : view) {  // R4: lowest bfn
                if (r.domid == op.domid && r.ioserver == op.ioserver) {
                    out = r.bfn;
                    return Status::ok;
                }
            }
            const auto e = entry(w, cd, ident);
            if (e && e->kind == EntryKind::identity) {            // R4: 1:1 path
                if (count_full(w, *m)) return Status::eoverflow;  // D19: count
                if (over_quota(w, cd, 1)) return Status::enomem;  // D20: C's quota
                out = ident;
                TupleVec set(view.begin(), view.end());
                set.push_back(TupleRec{ident, op.domid, op.ioserver, c, false, false});
                set_tuples(w, *m, std::move(set));
                get_ref(w, *m);  // registers interest
                charge(w, cd, 1);
                return Status::ok;
            }
            return Status::enoent;
        }();
        if (commit(w)) {
            if (st == Status::ok) op.bfn = out;
            return st;
        }
    }
}

Status Hypervisor::unmap_foreign_page(DomId c, UnmapForeignPage& op) {
    if (auto st = check_flags_and_order(op.flags, host_, {}, true)) return *st;  // R1, R2
    DomainRec& cd = *dom(c);
    EpochGuard g;
    FaultScope fs(faults_.get());
    WorkLease lease;
    Work& w = *lease;
    if (unmap_foreign_direct(c, cd, op, w)) return Status::ok;
    for (;;) {
        const Status st = [&]() -> Status {
            // Not usable: no context. (Entry copied out of the optional: g++ 12 reports a false
            // maybe-uninitialized on the optional's payload otherwise.)
            const auto found = cd.usable ? entry(w, cd, op.bfn) : std::nullopt;
            const Entry ent = found.value_or(Entry{});
            const bool foreign = found.has_value() && ent.kind == EntryKind::foreign;
            const bool scratch = found.has_value() && ent.kind == EntryKind::scratch;
            // F5: C's own tuple, by the emulator it recorded (D22), orphans included (F12): no
            // server lookup, domid and ioserver are only its key. Its frame: the foreign
            // entry's, else bfn itself (a lookup's bfn = mfn; by INV-M2B-SET no other frame
            // can hold it).
            const Mfn m = foreign ? ent.mfn : Mfn{op.bfn.v};
            if (m.v < host_.frames) {
                const auto view = tuple_view(w, m);  // copied only to remove the tuple
                const auto at = own_tuple(view, op, c);
                if (at != view.end()) {
                    TupleVec set(view.begin(), view.end());
                    set.erase(set.begin() + (at - view.begin()));  // R5: tuple and ref
                    const bool still_used = claims({set.data(), set.size()}, op.bfn, c);
                    set_tuples(w, m, std::move(set));
                    defer_ref(w, m);    // step 5: put after C's flush
                    charge(w, cd, -1);  // D20
                    if (PVIOMMU_MUTANT(4) && cell(w, m).f.count >= 2) defer_ref(w, m);
                    if (foreign && !still_used)  // R5: last user
                        put_entry(w.t, w.leaf(cd.iommu, op.bfn.v), 0);
                    needs_flush(w, cd);  // step 6 (none if C is not usable)
                    return Status::ok;
                }
            }
            if (scratch) {  // R5, F5: scratch
                put_entry(w.t, w.leaf(cd.iommu, op.bfn.v), 0);
                needs_flush(w, cd);
                return Status::ok;
            }
            return Status::enoent;  // F5: anything else
        }();
        if (commit(w)) {
            finish(w);  // steps 6-7
            return st;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Events

BalloonOutcome Hypervisor::balloon(DomId d, Gfn g) {
    EpochGuard guard;
    FaultScope fs(faults_.get());
    const RadixMap& p2m = dom(d)->p2m;
    WorkLease lease;
    Work& w = *lease;
    Mfn mfn{};
    if (const FrameRec* rec = nullptr; balloon_direct(p2m, g, w, mfn, rec)) {
        finish(w);  // steps 6-7
        return announce(mfn, rec != nullptr ? rec->t() : std::span<const TupleRec>{});
    }
    TupleVec seen;
    for (;;) {
        const RadixMap::Read leaf = p2m.read(w.t, g.v);  // never allocates
        const auto m = unpack_p2m(leaf.value);
        if (!m || is_xen(*m)) {  // R7 / F7: nothing happens
            if (commit(w)) return {};
            continue;
        }
        mfn = *m;
        seen = tuples(w, *m);      // F8 order (sorted)
        w.t.write(*leaf.leaf, 0);  // R7: the P2M entry goes (a frame: the path exists)
        // R7, D13: swap-flagged tuples of usable holders with a foreign entry go at once.
        TupleVec keep;
        Small<std::pair<DomId, Entry>> swapped;
        Small<Bfn> swapped_bfn;
        for (const TupleRec& r : seen) {
            if (r.orphan) {  // R9 v2: an orphan has no server: no swap, no invalidate
                keep.push_back(r);
                continue;
            }
            const DomId e = emulator_of(r);
            const DomainRec& ed = *dom(e);
            const auto ent = ed.usable ? entry(w, ed, r.bfn) : std::nullopt;
            if (ed.usable && r.swap && ent && ent->kind == EntryKind::foreign) {
                swapped.emplace_back(e, *ent);
                swapped_bfn.push_back(r.bfn);
                if (PVIOMMU_MUTANT(7)) keep.push_back(r);
            } else {
                keep.push_back(r);
                if (PVIOMMU_MUTANT(5) && ent && ent->kind == EntryKind::foreign)
                    put_entry(w.t, ed.iommu.get(r.bfn.v), 0);
            }
        }
        for (std::size_t i = 0; i < swapped.size(); ++i) {
            const DomId e = swapped[i].first;
            const Entry ent = swapped[i].second;
            const Bfn b = swapped_bfn[i];
            const bool used = !PVIOMMU_MUTANT(7) && claims({keep.data(), keep.size()}, b, e);
            if (!used)  // R12: e's own scratch page
                put_entry(w.t, dom(e)->iommu.get(b.v), pack_entry(kScratch, ent.perms, Mfn{}));
            charge(w, *dom(e), -1);   // D20: the swapped tuple
            needs_flush(w, *dom(e));  // step 6: e's IOTLB caches the old translation
        }
        // R7: the allocation reference is dropped at once: no IOTLB caches it (an entry that
        // reaches the frame holds a reference of its own, in count or deferred).
        put_ref(w, *m, /*allocation=*/true);
        for (std::size_t i = 0; i < swapped.size(); ++i) defer_ref(w, *m);  // step 5
        if (!swapped.empty()) set_tuples(w, *m, std::move(keep));
        if (commit(w)) break;
    }
    finish(w);  // steps 6-7: the swapped emulators' IOTLBs, then the swapped references
    return announce(mfn, {seen.data(), seen.size()});
}

BalloonOutcome Hypervisor::announce(Mfn m, std::span<const TupleRec> seen) {
    // Step 9 of the protocol: one invalidate per tuple seen at the linearization point.
    BalloonOutcome out{m, 0, 0};
    const Server* first = nullptr;
    for (const TupleRec& r : seen) {
        if (r.orphan) continue;  // R9 v2: no server to tell
        Server& s = *server(r.domid, r.ioserver);
        if (first == nullptr) first = &s;
        stall(FaultPoint::stall_balloon_deliveries);  // drains see some, not all
        ++out.invalidates;
        if (PVIOMMU_MUTANT(3) && &s != first) continue;
        out.synchronous += deliver(s, r.bfn);
    }
    return out;
}

PopulateOutcome Hypervisor::populate(DomId d, Gfn g) {
    EpochGuard guard;
    FaultScope fs(faults_.get());
    return {alloc_frame(d, g, FrameState::owned)};  // R8: lowest free frame
}

// A drain reserves its result once, for up to this many requests (more grow the vector).
constexpr std::uint32_t kDrainReserve = 64;

std::vector<IoReq> Hypervisor::drain(DomId target, IoServId id, std::uint32_t max) {
    EpochGuard guard;
    FaultScope fs(faults_.get());
    Server& s = *server(target, id);
    WorkLease lease;
    Work& w = *lease;
    for (;;) {
        std::vector<IoReq> out;  // the interface's result: one allocation if anything is drained
        const auto add = [&](Bfn b) {
            if (out.empty()) out.reserve(std::min<std::uint32_t>(max, kDrainReserve));
            out.push_back(IoReq{PV_IOMMU_IOREQ_TYPE_INVALIDATE, b});
        };
        (void)s.ring->pop(w.t, max, [&](std::uint64_t lo, std::uint64_t hi) {  // D11: ring first
            add(Bfn{slot_data(lo) | std::uint64_t{slot_data(hi)} << 32});
        });
        auto* head = as_ptr<SyncNode>(w.t.read(s.sync_head));
        auto* cur = head;
        while (out.size() < max) {  // then synchronous
            auto* next = as_ptr<SyncNode>(w.t.read(cur->next));
            if (next == nullptr) break;
            add(next->bfn);
            cur = next;
        }
        if (cur != head) w.t.write(s.sync_head, as_word(cur));  // cur becomes the dummy
        if (commit(w)) {
            // The nodes before cur are ours now (unlinked by our commit; a node's next is set
            // once, by its successor's enqueue, so it still leads to cur): retired, then
            // recycled into the pool of the thread that frees them. No list of them is kept.
            for (SyncNode* n = head; n != cur;) {
                auto* next = as_ptr<SyncNode>(mcas_read(n->next));
                retire(n, [](void* p) { SyncNode::dispose(static_cast<SyncNode*>(p)); });
                n = next;
            }
            return out;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Devices (R11): simulated DMA through each usable context's IOTLB (impl/iotlb.h)

int Hypervisor::attach_device(DomId e) {
    const DomainRec* d = dom(e);
    return d != nullptr && d->iotlb ? d->iotlb->attach() : -1;
}

void Hypervisor::detach_device(DomId e, int dev) { dom(e)->iotlb->detach(dev); }

const std::atomic<std::uint64_t>* Hypervisor::scratch_page(DomId e) const {
    const DomainRec* d = dom(e);
    return d != nullptr && d->iotlb ? d->iotlb->scratch() : nullptr;
}

std::uint64_t Hypervisor::iotlb_flushes(DomId e) const {
    const DomainRec* d = dom(e);
    return d != nullptr && d->iotlb ? d->iotlb->flushes() : 0;
}

Hypervisor::Translation Hypervisor::device_walk(const DomainRec& c, Bfn b,
                                                std::uint64_t gen) const {
    // find(), not get(): a device walk never grows the radix. mcas_read (seq_cst, under the
    // section's EpochGuard): the leaf's value at some instant after the section announced its
    // generation, so after every removal that a flush of an older generation covers (I4).
    const Word* leaf = c.iommu.find(b.v);
    const std::uint64_t v = leaf != nullptr ? mcas_read(*const_cast<Word*>(leaf)) : 0;
    Translation t;
    switch (entry_code(v)) {
        case 0:
            // D18: the 1:1 rule, walked each time and never cached (it holds no reference).
            if (!identity_gone(v) && c.hardware && c.usable && host_.mode == IommuMode::inclusive &&
                b.v < host_.frames && !is_xen(Mfn{b.v})) {
                t.kind = Translation::Kind::identity;
                t.mfn = Mfn{b.v};
                t.perms = kRw;
            }
            return t;  // else a fault
        case kScratch:
            t.kind = Translation::Kind::scratch;
            t.perms = entry_perms(v);
            t.scratch = c.iotlb->scratch();  // R12: this context's own page
            break;
        default:
            t.kind = Translation::Kind::frame;
            t.mfn = entry_mfn(v);
            t.perms = entry_perms(v);
            break;
    }
    c.iotlb->fill(gen, b.v, v);  // I2: explicit entries only, tagged with the section's gen
    return t;
}

// dev: from attach_device(e), so e is live and usable (it has an IOTLB).
Hypervisor::DeviceSection::DeviceSection(const Hypervisor& hv, DomId e, int dev)
    : hv_(hv), ctx_(*hv.dom(e)), dev_(dev), gen_(ctx_.iotlb->enter(dev)) {}

Hypervisor::DeviceSection::~DeviceSection() { ctx_.iotlb->exit(dev_); }

Hypervisor::Translation Hypervisor::DeviceSection::translate(Bfn b) {
    Iotlb& tlb = *ctx_.iotlb;
    std::uint64_t v = 0;
    if (tlb.lookup(gen_, b.v, v)) {  // I2: a translation of this section's generation
        Translation t;
        t.cached = true;
        t.perms = entry_perms(v);
        if (entry_code(v) == kScratch) {
            t.kind = Translation::Kind::scratch;
            t.scratch = tlb.scratch();
        } else {
            t.kind = Translation::Kind::frame;
            t.mfn = entry_mfn(v);
        }
        return t;
    }
    return hv_.device_walk(ctx_, b, gen_);
}

std::vector<std::string> Hypervisor::check_no_free_while_cached(std::uint64_t* cached) const {
    EpochGuard g;
    std::vector<std::string> out;
    std::uint64_t seen = 0;
    for (std::size_t id = 0; id < doms_.size(); ++id) {
        const DomainRec* d = doms_[id].get();
        if (d == nullptr || !d->iotlb) continue;
        const Iotlb& tlb = *d->iotlb;
        const std::uint64_t gen = tlb.generation();
        tlb.for_each_cached(gen, [&](std::uint64_t bfn, std::uint64_t v) {
            if (entry_code(v) == kScratch) return;  // a scratch page is no frame (R12)
            ++seen;
            const Mfn m = entry_mfn(v);
            if (mcas_read(cells_[m.v]) != 0) return;  // not free
            // Free, and cached in the current generation: a violation if no flush started
            // since the slot was read (generation unchanged: seq_cst, read after the frame).
            // A flush that started meanwhile may have put the frame legitimately (step 7).
            if (tlb.generation() != gen) return;
            out.push_back("INV-NO-FREE-WHILE-CACHED: context " + std::to_string(id) +
                          " caches bfn=" + hex(bfn) + " -> mfn=" + hex(m.v) + " (generation " +
                          std::to_string(gen) + ") but the frame is free");
        });
    }
    if (cached != nullptr) *cached += seen;
    return out;
}

Hypervisor::FrameView Hypervisor::frame_view(Mfn m) const {
    EpochGuard g;
    const FrameVal f = header_now(m);
    return FrameView{f.state, DomId{f.owner}, f.count, f.deferred};
}

// ---------------------------------------------------------------------------------------------
// Observation (quiescent points only)

State Hypervisor::snapshot() const {
    EpochGuard g;
    State s;
    s.host = host_;
    for (std::uint64_t m = 0; m < host_.frames; ++m) {
        const std::uint64_t v = mcas_read(cells_[m]);
        if (v != 0) {
            const FrameVal f = cell_header(v);
            s.frames[Mfn{m}] = Frame{f.state, DomId{f.owner}, f.count, f.allocated};
        }
        if (const FrameRec* rec = record_of(v)) {
            auto& out = s.m2b[Mfn{m}];
            for (const TupleRec& r : rec->t())
                out[Tuple{r.bfn, r.domid, r.ioserver}] =
                    TupleInfo{r.swap, r.emulator, r.orphan};  // D22
        }
    }
    for (std::size_t id = 0; id < doms_.size(); ++id) {
        const DomainRec* d = doms_[id].get();
        if (d == nullptr) continue;
        Domain& out = s.domains[DomId{static_cast<std::uint16_t>(id)}];
        out.hardware = d->hardware;
        out.iommu_hw = d->iommu_hw;
        out.rmrr = d->rmrr;
        out.dm_over = {d->dm_over.begin(), d->dm_over.end()};
        out.quota = d->quota;
        d->p2m.for_each(
            [&](std::uint64_t g, std::uint64_t v) { out.p2m[Gfn{g}] = *unpack_p2m(v); });
        d->iommu.for_each([&](std::uint64_t b, std::uint64_t v) {
            const std::uint64_t code = entry_code(v);
            if (identity_gone(v)) out.removed_identity.insert(Bfn{b});
            if (code == 0) return;
            if (code == kScratch)
                out.iommu[Bfn{b}] = Entry{Mfn{}, entry_perms(v), EntryKind::scratch};
            else
                out.iommu[Bfn{b}] = Entry{entry_mfn(v), entry_perms(v), code_kind(code)};
        });
    }
    for (const auto& [key, srv] : servers_) {
        IoServer& out = s.servers[{DomId{key.first}, IoServId{key.second}}];
        out.emulator = srv->emulator;
        out.ring_slots = srv->slots;
        srv->ring->for_each([&](std::uint64_t lo, std::uint64_t hi) {
            out.buffered.push_back(IoReq{PV_IOMMU_IOREQ_TYPE_INVALIDATE,
                                         Bfn{slot_data(lo) | std::uint64_t{slot_data(hi)} << 32}});
        });
        auto* n = as_ptr<SyncNode>(mcas_read(srv->sync_head));
        while (auto* next = as_ptr<SyncNode>(mcas_read(n->next))) {
            out.sync.push_back(IoReq{PV_IOMMU_IOREQ_TYPE_INVALIDATE, next->bfn});
            n = next;
        }
    }
    s.fault_iommu_map = static_cast<std::uint32_t>(dec(mcas_read(fault_)));
    return s;
}

}  // namespace impl
