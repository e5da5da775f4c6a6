// impl/frame_hint.h: populate's search for the lowest free frame (R8) and its allocation hint,
// written over impl::Atomic (impl/atomic.h) so that the same code runs in the product and under
// Relacy (impl/relacy/populate_relacy.cpp).
//
// The hint is a lower bound on the lowest free frame, so a scan need not start at frame 0. It
// must never pass a free frame: a frame left free below the hint is never found again (issue 15,
// bug 3: a populate that scanned past frame f, then took m > f and raised the hint to m + 1,
// lost f when f was freed in between at or above the old hint, which the free did not lower).
//
// Protocol (one 64-bit word: the free generation in bits 32-63, the bound in bits 0-31):
//  1. A free (after the MCAS that made frame m free) bumps the generation AND lowers the bound
//     to min(bound, m), in one CAS. Every free bumps it, also one at or above the bound.
//  2. populate reads the word (acquire), scans the frames upward from the bound and takes the
//     first free one with its own MCAS (the caller's take()).
//  3. Having taken m, it raises the word to (same generation, m + 1) with one CAS from exactly
//     the word it read in step 2. The CAS fails if any free ran step 1 since (the generation
//     moved) or another populate raised it: the word then stays as low as they left it.
//     Reason: the frames in [bound, m] were seen taken during the scan, but only "no free since
//     step 2" makes that still true now; a generation-less raise is bug 3.
//  4. A scan that found no free frame re-reads the word; if the generation moved, a frame may
//     have been freed behind the scan: it scans again instead of reporting none.
// Invariant: every free frame whose free has run step 1 is >= the bound. A free between its
// MCAS and its step 1 is still in flight; a populate racing it may miss that frame (the
// concurrency contract's relaxation (b)); once step 1 ran, the next populate finds it.
//
// Memory ordering: step 1's CAS is acq_rel and step 2's load acquire. Reason: a populate that
// reads a bound lowered by a free (or a later raise in the free's release sequence) must then
// see that frame free when it scans it; without the pairing it could read the lowered bound, see
// the frame's old (taken) word, take a higher frame and raise the bound past it: the frame is
// lost as in bug 3. (Relacy cannot show that one: its loads never read a store that has not
// executed yet, which the load-load reordering needs.) Step 3's CAS and step 4's load need no
// ordering beyond the word's own modification order (a CAS always compares against the latest
// value): relaxed and acquire.
//
// Overflow: the generation wraps after 2^32 frees; a populate whose scan spans exactly 2^32 frees
// would take a wrapped generation for "none" (a harmless stale bound at worst). Frames: < 2^32
// (D6 limits a host to 2^24).
#pragma once

#include <cstdint>
#include <optional>

#include "impl/atomic.h"
#include "impl/mutants.h"

namespace impl {

// impl/mutants.h id of the product build's planted bug populate-hint-no-generation.
inline constexpr int kMutantHintNoGeneration = 12;

#ifdef PVIOMMU_RELACY
namespace relacy {
// Planted bug of the hint for the Relacy build (impl/relacy/populate_relacy.cpp catches it).
enum class HintMutant : int {
    none = 0,
    no_generation,  // bug 3's class: frees lower the bound only below it, no generation
};
// Set only between Relacy runs (the test's own thread), read by the simulated threads.
inline HintMutant g_hint_mutant = HintMutant::none;
}  // namespace relacy
#endif

class FrameHint {
public:
    // What step 2 read.
    struct Seen {
        std::uint64_t word = 0;
        [[nodiscard]] std::uint64_t bound() const { return word & 0xffffffffu; }
        [[nodiscard]] std::uint32_t generation() const {
            return static_cast<std::uint32_t>(word >> 32);
        }
    };

    FrameHint() = default;
    FrameHint(const FrameHint&) = delete;
    FrameHint& operator=(const FrameHint&) = delete;

    // Step 2.
    [[nodiscard]] Seen read() const {
        return Seen{word_.load(std::memory_order_acquire)};  // see the file comment
    }
    // Step 3: m was taken by a scan that started from s.
    void raise(Seen s, std::uint64_t m) {
        std::uint64_t expected = s.word;
        const std::uint64_t next = (s.word & ~std::uint64_t{0xffffffffu}) | (m + 1);
        // relaxed: the CAS compares against the latest value whatever its order (see file).
        (void)word_.compare_exchange_strong(expected, next, std::memory_order_relaxed,
                                            std::memory_order_relaxed);
    }
    // Step 4: did a free run step 1 since s was read?
    [[nodiscard]] bool freed_since(const Seen& s) const {
        // acquire: as step 2 (the caller scans again if so).
        return Seen{word_.load(std::memory_order_acquire)}.generation() != s.generation();
    }
    // Step 1, after the MCAS that made frame m free.
    void freed(std::uint64_t m) {
        // cppcheck-suppress knownConditionTrueFalse ; constant per build, not per program
        if (no_generation_mutant()) {
            freed_without_generation(m);
            return;
        }
        std::uint64_t cur = word_.load(std::memory_order_relaxed);
        for (;;) {
            const Seen s{cur};
            const std::uint64_t gen = std::uint64_t{s.generation() + 1u} << 32;  // wraps (file)
            const std::uint64_t next = gen | (m < s.bound() ? m : s.bound());
            // acq_rel (see the file comment); relaxed on failure: the loop retries with the
            // fresh value.
            if (word_.compare_exchange_weak(cur, next, std::memory_order_acq_rel,
                                            std::memory_order_relaxed))
                return;
        }
    }

private:
    // The planted bug: bug 3's free, which lowered the bound only below it and bumped nothing.
    void freed_without_generation(std::uint64_t m) {
        std::uint64_t cur = word_.load(std::memory_order_relaxed);
        while (m < Seen{cur}.bound() &&
               !word_.compare_exchange_weak(cur, (cur & ~std::uint64_t{0xffffffffu}) | m,
                                            std::memory_order_acq_rel, std::memory_order_relaxed)) {
        }
    }
    static bool no_generation_mutant() {
#ifdef PVIOMMU_RELACY
        return relacy::g_hint_mutant == relacy::HintMutant::no_generation;
#else
        return PVIOMMU_MUTANT(kMutantHintNoGeneration);
#endif
    }

    // gen << 32 | bound. Guarded by its own CAS protocol (see the file comment).
    Atomic<std::uint64_t> word_{0};
};

// What take(m) did with a frame the scan saw free.
enum class Take : std::uint8_t {
    taken,  // committed: m is the caller's now
    retry,  // m or another word the caller read moved: scan again from a fresh hint
    stop,   // the caller decided on something else (for populate: the gfn has a frame)
};

// Steps 2-4: the lowest free frame of [0, frames), taken by take(m), or nullopt.
//   is_free(m): a cheap read of m's word (no transaction): is it free now?
//   take(m) -> Take: reads m again in the caller's transaction and commits the taking.
//   none() -> bool: commits the caller's "no free frame" decision (false: retry).
// With no free racing it, the frame taken is the lowest free one at the take's commit.
template <class IsFree, class TakeFn, class NoneFn>
[[nodiscard]] std::optional<std::uint64_t> take_lowest_free(FrameHint& hint, std::uint64_t frames,
                                                            IsFree&& is_free, TakeFn&& take,
                                                            NoneFn&& none) {
    for (;;) {
        const FrameHint::Seen s = hint.read();  // step 2
        bool again = false;
        for (std::uint64_t m = s.bound(); m < frames; ++m) {
            if (!is_free(m)) continue;
            const Take t = take(m);
            if (t == Take::taken) {
                hint.raise(s, m);  // step 3
                return m;
            }
            if (t == Take::stop) return std::nullopt;
            again = true;
            break;
        }
        if (again) continue;
        if (hint.freed_since(s)) continue;  // step 4: a free ran behind the scan
        if (none()) return std::nullopt;
    }
}

}  // namespace impl
