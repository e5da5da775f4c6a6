// impl/ring.h: an ioreq server's buffered ring (Xen's buffered_iopage): N 8-byte slots and a
// read and a write pointer, here as MCAS Words (impl/mcas.h) so that a request's "2 free slots?"
// test, its slots and its publication are one transaction with whatever else the caller reads
// (R7: the ring, else the synchronous channel, decided atomically; D11: a drain takes the ring
// then the channel in one commit). An invalidate takes two slots (a 64-bit payload, as
// buf_ioreq's). Written over impl::Atomic (through Word and Txn), so that the same code runs
// in the product and under Relacy (impl/relacy/ring_relacy.cpp).
//
// Pointers (issue 15): both live in ONE word, read 31 bits and write 31 bits, as Xen packs them
// in one 64-bit word that it updates with one cmpxchg; and they are canonical: after every
// change, read < N and read <= write <= read + N (when read reaches N both drop by N, Xen's
// "read_pointer >= IOREQ_BUFFER_SLOT_NUM" fix-up). A pointer's slot is pointer mod N, and
// pointers never wrap. Reason: free-running 32-bit counters (the earlier scheme) alias at the
// 2^32 wrap when N does not divide 2^32 (N = 511, the default): counter 2^32 - 1 and counter 0
// are consecutive requests' slots but (2^32 - 1) mod N and 0 mod N are not consecutive slots, so
// a later request overwrites a pending one.
//
// The word's values repeat (after N pushes and N pops it holds what it held), so the pointer
// word alone is not ABA-free: every Txn that moves it also reads, in the same Txn, every slot
// whose content it decides on (push: the two slots it fills; pop: the slots it returns), and
// the MCAS validates them all at one instant. A pop that read its slots outside its Txn could
// return a request a racing pop already took, after the word came back (planted in the Relacy
// build as RingMutant::pop_unvalidated).
//
// Memory ordering: none of its own; every access is an MCAS read or commit (seq_cst).
#pragma once

#include <cassert>
#include <cstdint>
#include <memory>

#include "impl/mcas.h"

namespace impl {

#ifdef PVIOMMU_RELACY
namespace relacy {
// Planted bugs of the ring for the Relacy build (impl/relacy/ring_relacy.cpp catches both).
enum class RingMutant : int {
    none = 0,
    free_running,     // canonicalisation dropped: free-running 31-bit counters, mod N
    pop_unvalidated,  // pop reads its slots outside its Txn (only the pointer word validated)
};
// Set only between Relacy runs (the test's own thread), read by the simulated threads.
inline RingMutant g_ring_mutant = RingMutant::none;
}  // namespace relacy
#endif

class BufRing {
public:
    // N < 2^30, so that read + N and write fit 31 bits. D5 allows 511 at most.
    static constexpr std::uint32_t kMaxSlots = (1u << 30) - 1;

    // start: both pointers begin there, as if `start` slots had already gone through (tests:
    // drive the ring across the 2^32 or 2^31 wrap). Any value below 2^31.
    explicit BufRing(std::uint32_t slots, std::uint32_t start = 0)
        : slots_(slots),
          slot_(std::make_unique<Word[]>(slots == 0 ? 1 : slots)),
          ptrs_(pack(Pointers{start & kMask, start & kMask})) {
        assert(slots <= kMaxSlots);
    }
    BufRing(const BufRing&) = delete;
    BufRing& operator=(const BufRing&) = delete;

    [[nodiscard]] std::uint32_t slots() const { return slots_; }

    // Stages in t one request (lo, hi: slot payloads, two low bits clear) if the ring has two
    // free slots, and returns true. Else returns false, having read the pointer word in t, so
    // that the "full" decision is validated by t's commit too.
    [[nodiscard]] bool push(Txn& t, std::uint64_t lo, std::uint64_t hi) {
        Pointers p = normal(unpack(t.read(ptrs_)));
        if (slots_ < 2 || slots_ - used(p) < 2) return false;
        Word& a = slot_[index(p.write)];
        Word& b = slot_[index(p.write + 1)];
        (void)t.read(a);  // a Txn writes only words it read
        (void)t.read(b);
        t.write(a, lo);
        t.write(b, hi);
        p.write = (p.write + 2) & kMask;
        t.write(ptrs_, pack(normal(p)));
        return true;
    }

    // Stages in t the removal of the oldest min(max, pending) requests, calling f(lo, hi) for
    // each, oldest first. Returns how many.
    template <class F>
    std::uint32_t pop(Txn& t, std::uint32_t max, F&& f) {
        Pointers p = normal(unpack(t.read(ptrs_)));
        const std::uint32_t pending = used(p) / 2;
        const std::uint32_t k = max < pending ? max : pending;
        for (std::uint32_t i = 0; i < k; ++i) {
            const std::uint32_t at = p.read + 2 * i;
            f(slot_read(t, slot_[index(at)]), slot_read(t, slot_[index(at + 1)]));
        }
        if (k != 0) {
            p.read = (p.read + 2 * k) & kMask;
            t.write(ptrs_, pack(normal(p)));
        }
        return k;
    }

    // f(lo, hi) for every pending request, oldest first. Quiescent only (snapshots), under an
    // EpochGuard.
    template <class F>
    void for_each(F&& f) const {
        const Pointers p = unpack(mcas_read(ptrs_));
        for (std::uint32_t i = 0; i < used(p) / 2; ++i) {
            const std::uint32_t at = p.read + 2 * i;
            f(mcas_read(slot_[index(at)]), mcas_read(slot_[index(at + 1)]));
        }
    }

    // The pointers now (tests: canonical form). Under an EpochGuard.
    struct Pointers {
        std::uint32_t read = 0, write = 0;
    };
    [[nodiscard]] Pointers pointers() const { return unpack(mcas_read(ptrs_)); }

private:
    static constexpr std::uint32_t kMask = (1u << 31) - 1;  // a pointer's 31 bits

    static Pointers unpack(std::uint64_t v) {
        const std::uint64_t p = dec(v);
        return Pointers{static_cast<std::uint32_t>(p & kMask),
                        static_cast<std::uint32_t>((p >> 31) & kMask)};
    }
    static std::uint64_t pack(Pointers p) {
        return enc(std::uint64_t{p.read} | std::uint64_t{p.write} << 31);
    }
    [[nodiscard]] std::uint32_t used(Pointers p) const { return (p.write - p.read) & kMask; }
    [[nodiscard]] std::uint32_t index(std::uint32_t ptr) const {
        return (ptr & kMask) % slots_;  // canonical: ptr < 2N, one subtraction at most
    }
    // The canonical form: both pointers dropped by a multiple of N until read < N. (A start
    // above N, or the free-running planted bug, are the only non-canonical words.)
    [[nodiscard]] Pointers normal(Pointers p) const {
        if (free_running_mutant() || slots_ == 0 || p.read < slots_) return p;
        const std::uint32_t drop = p.read - p.read % slots_;
        return Pointers{p.read - drop, p.write - drop};
    }
    static std::uint64_t slot_read(Txn& t, Word& w) {
        if (pop_unvalidated_mutant()) return mcas_read(w);  // planted bug: not in t
        return t.read(w);
    }
    static bool free_running_mutant() {
#ifdef PVIOMMU_RELACY
        return relacy::g_ring_mutant == relacy::RingMutant::free_running;
#else
        return false;
#endif
    }
    static bool pop_unvalidated_mutant() {
#ifdef PVIOMMU_RELACY
        return relacy::g_ring_mutant == relacy::RingMutant::pop_unvalidated;
#else
        return false;
#endif
    }

    const std::uint32_t slots_;
    // Slot payloads and the packed pointers: MCAS-guarded (every change is one Txn's commit).
    std::unique_ptr<Word[]> slot_;
    mutable Word ptrs_;
};

}  // namespace impl
