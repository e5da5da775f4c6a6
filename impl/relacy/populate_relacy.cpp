// impl/relacy/populate_relacy.cpp: populate's search and its hint (impl/frame_hint.h, the real
// header; issue 15, bug 3) under Relacy, over frame words that are real MCAS Words
// (impl/mcas.cpp in its Relacy build): take_lowest_free, the hint's generation and its bound,
// against frees, every interleaving the random scheduler reaches.
//
// Each iteration: frames 0 and 1 taken, 2 and 3 free, the bound at 0. Two threads populate
// (take_lowest_free, taking a frame with one Txn as Hypervisor::alloc_frame does) while a
// third frees frame 1 (one Txn, then FrameHint::freed, as Hypervisor::commit). Then, quiescent:
//   - the populates took distinct frames, each taken now;
//   - the hint's invariant: every free frame is at or above the bound;
//   - a sequential populate (no free races it) takes the lowest free frame, and reports none
//     only if no frame is free.
// Planted bug HintMutant::no_generation (bug 3's class; product mutant 12) must fail it: a
// populate that scanned past frame 1 raises the bound over it after the free.
#include <doctest/doctest.h>

#include <optional>
#include <string>

#include "impl/frame_hint.h"
#include "impl/mcas.h"
#include "impl/relacy/harness.h"

namespace {

using impl::enc;
using impl::EpochGuard;
using impl::FrameHint;
using impl::Take;
using impl::Txn;
using impl::Word;

constexpr std::uint64_t kFrames = 4;
constexpr std::uint64_t kTaken = enc(1);

// Hypervisor::alloc_frame's shape: scan with plain MCAS reads, take with one Txn.
std::optional<std::uint64_t> populate(Word* frames, FrameHint& hint) {
    EpochGuard g;
    return impl::take_lowest_free(
        hint, kFrames, [&](std::uint64_t m) { return impl::mcas_read(frames[m]) == 0; },
        [&](std::uint64_t m) -> Take {
            Txn t;
            if (t.read(frames[m]) != 0) return Take::retry;
            t.write(frames[m], kTaken);
            return t.commit() ? Take::taken : Take::retry;
        },
        [] { return true; });
}

// Hypervisor::put_ref + commit's shape: the frame made free by one MCAS, then the hint told.
void free_frame(Word* frames, FrameHint& hint, std::uint64_t m) {
    {
        EpochGuard g;
        for (;;) {
            Txn t;
            if (t.read(frames[m]) != kTaken) return;  // not ours to free (cannot happen here)
            t.write(frames[m], 0);
            if (t.commit()) break;
        }
    }
    hint.freed(m);
}

struct PopulateFree : rl::test_suite<PopulateFree, 3> {
    impl::relacy::CoreScope* core = nullptr;
    Word* frames = nullptr;
    FrameHint* hint = nullptr;
    std::optional<std::uint64_t> got[2];

    void before() {
        core = new impl::relacy::CoreScope;
        frames = new Word[kFrames];
        frames[0].store(kTaken, std::memory_order_relaxed);
        frames[1].store(kTaken, std::memory_order_relaxed);
        hint = new FrameHint;
        got[0] = got[1] = std::nullopt;
    }
    void thread(unsigned i) {
        if (i == 2)
            free_frame(frames, *hint, 1);
        else
            got[i] = populate(frames, *hint);
    }
    void after() {
        impl::epoch_quiesce();
        // Each populate took a frame (2 and 3 are free throughout), distinct ones.
        RL_ASSERT(got[0] && got[1] && *got[0] != *got[1]);
        std::uint64_t lowest = kFrames;
        {
            EpochGuard g;
            for (std::uint64_t m = 0; m < kFrames; ++m) {
                const std::uint64_t v = impl::mcas_read(frames[m]);
                RL_ASSERT((v & 3) == 0);  // no descriptor left
                if (v == 0 && lowest == kFrames) lowest = m;
            }
            for (const auto& m : got) RL_ASSERT(impl::mcas_read(frames[*m]) == kTaken);
        }
        RL_ASSERT(lowest == kFrames || lowest >= hint->read().bound());     // the hint's invariant
        const std::optional<std::uint64_t> next = populate(frames, *hint);  // no free races it
        RL_ASSERT(lowest == kFrames ? !next : next == lowest);              // R8: the lowest
        delete hint;
        delete[] frames;
        delete core;
    }
};

}  // namespace

namespace impl::relacy {

// The mutant sweep's check (main.cpp): the suite above, at the CI budget, with whatever hint
// mutant is planted (g_hint_mutant).
Verdict check_populate() {
    Verdict v;
    add(v, "populate/free", explore<PopulateFree>("populate/free", random_sizes(true)));
    return v;
}

}  // namespace impl::relacy

TEST_CASE("relacy: populate against a free takes the lowest free frame, loses none") {
    CHECK(
        impl::relacy::explore<PopulateFree>("populate/free", impl::relacy::random_sizes(false)).ok);
}

TEST_CASE("relacy: planted bug populate-hint-no-generation is caught") {
    impl::relacy::g_hint_mutant = impl::relacy::HintMutant::no_generation;
    const impl::relacy::Verdict v = impl::relacy::check_populate();
    impl::relacy::g_hint_mutant = impl::relacy::HintMutant::none;
    MESSAGE("populate-hint-no-generation: " << (v.caught ? "caught" : "MISSED") << " ("
                                            << v.schedules << " schedules, " << v.secs << " s)");
    CHECK(v.caught);
}
