// impl/iotlb.h: one usable IOMMU context's IOTLB (R11, D21) and scratch page (R12, D24).
//
// A device of the context's domain translates a bus address by looking it up here and, on a
// miss, by walking the context's IOMMU radix (impl::Hypervisor::DeviceSection does the walk and
// calls fill()). Only explicit entries (local, foreign, scratch) are cached; identity entries
// of the 1:1 rule are exempt: they hold no reference by design, so nothing is ever deferred on
// them and a device reads the rule afresh each time.
//
// The flush is an RCU-like grace period on device read sections. Numbered protocol:
//  I1. A device runs every translation and the DMA that uses it inside a read section:
//      enter() announces the flush generation it read in its reader slot, re-reads the
//      generation and announces again until both agree; exit() clears the slot.
//  I2. A section uses only cache slots tagged with its own generation, and tags what it fills
//      with that generation. So one increment of the generation invalidates every slot at once,
//      including a fill that a slow section makes after the increment from a walk it did
//      before (it is tagged with the old generation).
//  I3. flush() increments the generation, then waits until every reader slot is 0 or holds a
//      generation >= the new one: every section that started before the flush (and so may use
//      a translation cached, or walked, before the removal the flush covers) has finished.
//      Sections that started after it see the new generation, hence (I4) the removal.
//  I4. The hypervisor commits the removal (one MCAS) before flush(), and drops the references
//      the removal held (the deferred put) only after flush() returns (impl/hypervisor.cpp,
//      protocol steps 5-8).
//
// Memory orders (all named at each use):
//  - The generation increment is a seq_cst RMW and the announcement a seq_cst store followed
//    by a seq_cst load of the generation; the flusher's scan loads the slots seq_cst. This is
//    the store-load (Dekker) pattern: in the single total order of seq_cst operations either
//    the flusher's scan sees the announcement, or the device's re-read sees the new generation
//    and announces again. Nothing weaker than seq_cst orders a store before a later load.
//  - The device's walk (mcas_read, seq_cst) after reading the incremented generation sees the
//    removal: the removal's MCAS happened before the increment in the flusher's program order,
//    and the seq_cst RMW is a release that the device's seq_cst load of it acquires.
//  - exit() is a release store of 0, and the flusher's seq_cst slot load that reads it is an
//    acquire: the device's DMA (its reads and writes of the frame) happens before the deferred
//    put, hence before the frame is freed or handed out again by a populate.
//  - A cache slot is a seqlock of atomics (Boehm, "Can seqlocks get along with programming
//    language memory models?", MSPC 2012): the writer claims the sequence by a relaxed CAS to
//    odd, issues a release fence, stores the fields relaxed, and publishes the even sequence
//    with a release store; the reader loads the sequence acquire, the fields relaxed, issues
//    an acquire fence and re-loads the sequence relaxed. A torn read is discarded as a miss
//    (the cache is only a cache). Every field is an atomic, so no data race exists at all.
//
// Atomics: impl::Atomic (impl/atomic.h), so that this file runs under Relacy in the relacy
// build (impl/relacy/iotlb_relacy.cpp: devices DMA through it against a deferred put), with
// fewer slots, readers and scratch words there.
//
// Lifetime: created with its context (create_domain of a usable domain) and freed with it
// (destroy, quiescent). Devices must detach before their domain is destroyed (as Xen deassigns
// a device before tearing its domain down); destroy asserts it.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "impl/atomic.h"

namespace impl {

#ifdef PVIOMMU_RELACY
namespace relacy {
// Planted bugs of the IOTLB protocol (issue 15), for impl/relacy/iotlb_relacy.cpp.
enum class IotlbMutant : int {
    none = 0,
    put_before_flush,  // I4: the deferred put before the flush (the suite's hypervisor steps)
    enter_no_recheck,  // I1: the announcement without the re-read of the generation
    exit_relaxed,      // I1/I4: exit() a relaxed store: the DMA not ordered before the put
};
void plant_iotlb(IotlbMutant m);  // for every later iteration; none: the real code
[[nodiscard]] bool iotlb_planted(IotlbMutant m);
}  // namespace relacy
#endif

class Iotlb {
public:
    static constexpr unsigned kSlots = kRelacy ? 4 : 64;    // direct-mapped by bfn
    static constexpr unsigned kReaders = kRelacy ? 2 : 16;  // devices attached at once
    // R12, D24: the context's own scratch page, 4 KiB of Xen's memory, never shared.
    static constexpr std::size_t kScratchWords = kRelacy ? 2 : 512;

    Iotlb() = default;
    Iotlb(const Iotlb&) = delete;
    Iotlb& operator=(const Iotlb&) = delete;

    // --- Device side.
    // Claims a reader slot for a device: its index, or -1 if all are taken.
    [[nodiscard]] int attach();
    void detach(int reader);
    // I1: starts a read section of `reader`; returns the section's generation.
    [[nodiscard]] std::uint64_t enter(int reader);
    void exit(int reader);  // I1: ends it
    // I2: the cached translation (an IOMMU leaf value) of bfn for a section of generation gen.
    [[nodiscard]] bool lookup(std::uint64_t gen, std::uint64_t bfn, std::uint64_t& leaf) const;
    // I2: caches leaf for bfn, tagged gen. Skipped if another fill of the slot is under way.
    void fill(std::uint64_t gen, std::uint64_t bfn, std::uint64_t leaf);
    [[nodiscard]] Atomic<std::uint64_t>* scratch() { return scratch_.data(); }
    [[nodiscard]] const Atomic<std::uint64_t>* scratch() const { return scratch_.data(); }

    // --- Hypervisor side.
    // I3: invalidates every cached translation and returns once every read section that
    // started before the call has ended.
    void flush();

    // --- Checks (INV-NO-FREE-WHILE-CACHED).
    [[nodiscard]] std::uint64_t generation() const {
        // seq_cst: the checker orders this load with its frame reads (see Hypervisor).
        return gen_.load(std::memory_order_seq_cst);
    }
    // Calls f(bfn, leaf) for every slot tagged with generation gen (a consistent read of each).
    template <class F>
    void for_each_cached(std::uint64_t gen, F&& f) const {
        for (const Slot& s : slots_) {
            std::uint64_t bfn = 0, tag = 0, leaf = 0;
            if (read_slot(s, bfn, tag, leaf) && tag == gen) f(bfn, leaf);
        }
    }
    // Flushes so far (tests: non-vacuity): every flush moves the generation by one, from 1.
    // relaxed: a statistic, read at quiescent points. (A counter of its own cost one more RMW
    // on a shared line per flush.)
    [[nodiscard]] std::uint64_t flushes() const { return gen_.load(std::memory_order_relaxed) - 1; }
    // True if any device is attached (destroy asserts none is). acquire: pairs with detach.
    [[nodiscard]] bool any_attached() const;

private:
    struct Slot {
        // The seqlock: odd while a fill writes the fields.
        Atomic<std::uint64_t> seq{0};
        // Guarded by seq (seqlock fields, written only by the fill that holds it odd).
        Atomic<std::uint64_t> bfn{0}, gen{0}, leaf{0};
    };
    static bool read_slot(const Slot& s, std::uint64_t& bfn, std::uint64_t& gen,
                          std::uint64_t& leaf);

    // The flush generation (I2, I3). Starts at 1: a reader slot of 0 means "no section". Only
    // flush() moves it, by one (so it also counts the flushes).
    Atomic<std::uint64_t> gen_{1};
    // Per reader: 0 outside a section, else the generation its section announced (I1).
    // Written by the device that owns the slot, read by flushers.
    std::array<Atomic<std::uint64_t>, kReaders> readers_{};
    // Per reader: whether a device owns it (claimed by CAS in attach, released by detach).
    std::array<Atomic<bool>, kReaders> claimed_{};
    std::array<Slot, kSlots> slots_{};
    // R12: written by devices (DMA to scratch) with atomic stores; Xen never reads it.
    std::array<Atomic<std::uint64_t>, kScratchWords> scratch_{};
};

}  // namespace impl
